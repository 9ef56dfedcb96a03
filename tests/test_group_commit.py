"""reelvec.group_commit on its own: which items travel together, when, and how outcomes come
back. The services' use of it is tested against the real search service (test_search_service.py)
and the real Whisper model (test_transcriber.py)."""

import asyncio
import time

import pytest

from reelvec.group_commit import GroupCommit


class Recorder:
    """run() that records each batch and holds it until released."""

    def __init__(self):
        self.batches: list[list] = []
        self.release = asyncio.Event()

    async def run(self, items):
        self.batches.append((time.monotonic(), list(items)))
        await self.release.wait()
        return [ValueError(f"bad {i}") if i == "bad" else i.upper() for i in items]


def test_a_lone_item_leaves_at_once_and_later_ones_wait_for_a_free_slot():
    async def scenario():
        r = Recorder()
        batches = GroupCommit(r.run, max_batch=3, max_calls=1)
        first = asyncio.ensure_future(batches.submit("a"))
        await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(batches.submit(x)) for x in "bcde"]
        await asyncio.sleep(0.01)
        assert [items for _, items in r.batches] == [["a"]]  # b-e wait: the only slot is busy
        r.release.set()
        return await asyncio.gather(first, *rest), [items for _, items in r.batches]

    answers, batches = asyncio.run(scenario())
    assert answers == ["A", "B", "C", "D", "E"]
    assert batches == [["a"], ["b", "c", "d"], ["e"]]  # at most max_batch per call, in order


def test_each_item_gets_its_own_error_and_a_failed_call_fails_them_all():
    async def scenario():
        r = Recorder()
        r.release.set()
        batches = GroupCommit(r.run, max_batch=8, max_calls=1)
        own = await asyncio.gather(*(batches.submit(x) for x in ["x", "bad", "y"]), return_exceptions=True)

        async def broken(items):
            raise RuntimeError("down")

        failing = GroupCommit(broken, max_batch=8, max_calls=1)
        whole = await asyncio.gather(*(failing.submit(x) for x in "ab"), return_exceptions=True)
        return own, whole

    own, whole = asyncio.run(scenario())
    assert own[0] == "X" and own[2] == "Y" and isinstance(own[1], ValueError) and str(own[1]) == "bad bad"
    assert all(isinstance(e, RuntimeError) and str(e) == "down" for e in whole)


@pytest.mark.parametrize("company", [True, False])
def test_with_linger_a_lone_item_waits_for_company_while_a_call_is_in_flight(company):
    async def scenario():
        r = Recorder()
        batches = GroupCommit(r.run, max_batch=8, max_calls=2, linger=0.3)
        busy = asyncio.ensure_future(batches.submit("a"))  # takes one slot and holds it
        await asyncio.sleep(0.01)
        started = time.monotonic()
        lone = [asyncio.ensure_future(batches.submit("b"))]
        await asyncio.sleep(0.05)
        if company:
            lone.append(asyncio.ensure_future(batches.submit("c")))
        await asyncio.sleep(0.5)
        r.release.set()
        await asyncio.gather(busy, *lone)
        return [(at - started, items) for at, items in r.batches[1:]]

    (waited, items), = asyncio.run(scenario())
    if company:  # without the linger b would have taken the free slot alone at once
        assert items == ["b", "c"]
    else:  # b left alone when the linger ran out (a lower bound: a slow machine only adds)
        assert items == ["b"] and waited >= 0.28
