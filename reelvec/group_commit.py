"""Work items that arrive together, handled together, as in a database's group commit.

An item leaves on the event loop's next turn when fewer than `max_calls` batches are in flight,
so a lone item waits for nothing; otherwise it leaves with everything that arrived by the time one
of them finishes (up to `max_batch`). Under load the batches grow with the traffic. With `linger`,
a lone item that finds another batch already in flight waits up to that long for company before
taking a free slot: under steady load it would otherwise go alone each time a slot frees.

Used where one call for many items costs much less than one call each: the gateway's search queries
(services/gateway/query_batcher.py) and Whisper windows shared by short clips
(services/transcriber/packing.py).
"""

import asyncio
import contextvars
from typing import Awaitable, Callable, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    def __init__(self, run: Callable[[list[Item]], Awaitable[list[Result | Exception]]],
                 max_batch: int, max_calls: int, linger: float = 0.0):
        """`run(items)` returns one result per item, or the exception that item alone failed
        with; when it raises, every item of the batch fails with that."""
        self._run = run
        self._max_batch = max_batch
        self._max_calls = max_calls
        self._linger = linger
        self._waiting: list[tuple[Item, asyncio.Future]] = []
        self._flush_due = False
        self._lingering: asyncio.TimerHandle | None = None
        self._calls: set[asyncio.Task] = set()  # also keeps them alive: the loop holds only weak references

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._waiting.append((item, answer))
        if len(self._calls) < self._max_calls and not self._flush_due:
            self._flush_due = True
            # a context of its own: the batch belongs to no one caller (deadline, request id)
            loop.call_soon(self._flush, context=contextvars.Context())
        return await answer

    def _flush(self, _done: asyncio.Task | None = None, lingered: bool = False) -> None:
        if _done is not None:
            self._calls.discard(_done)
        self._flush_due = False
        while self._waiting and len(self._calls) < self._max_calls:
            if self._linger and self._calls and len(self._waiting) == 1 and not lingered:
                if self._lingering is None:
                    self._lingering = asyncio.get_running_loop().call_later(
                        self._linger, self._linger_over, context=contextvars.Context())
                return
            if self._lingering is not None:
                self._lingering.cancel()
                self._lingering = None
            batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
            call = asyncio.get_running_loop().create_task(self._call(batch), context=contextvars.Context())
            self._calls.add(call)
            call.add_done_callback(self._flush)  # the next batch leaves as this one finishes

    def _linger_over(self) -> None:
        self._lingering = None
        self._flush(lingered=True)

    async def _call(self, batch: list[tuple[Item, asyncio.Future]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as exc:  # the whole call failed: every item with it
            results = [exc] * len(batch)
        for (_, answer), result in zip(batch, results, strict=True):
            if answer.done():  # its caller was cancelled
                continue
            if isinstance(result, Exception):
                answer.set_exception(result)
            else:
                answer.set_result(result)
