"""`reelvec up --encoder-replicas 2`: the gateway's Index calls reach both encoder processes, an
upload still succeeds while one replica is down, and the replica the launcher restarts gets calls
again."""

import os
import signal
import time

import pytest

from bench.replicas import encodes
from reelvec import samples
from reelvec.tools import client, launcher
from reelvec.tools.local_stack import RunningStack
from reelvec.v1 import common_pb2, gateway_pb2

pytestmark = pytest.mark.integration
REPLICAS = ("encoder", "encoder-2")


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    running = RunningStack(tmp_path_factory.mktemp("replicas"), launcher.free_port(),
                           up_args=("--encoder-replicas", "2"), REELVEC_WHISPER_MODEL="tiny.en")
    running.start()
    yield running
    assert running.stop() == 0, "reelvec up did not stop cleanly on SIGTERM"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("replica-clips")
    return [samples.make_video(folder / f"r{i}.mp4", seed=60 + i, seconds=2).read_bytes() for i in range(3)]


def _index(stack, clips, count: int, tag: str) -> None:
    stub = client.connect(stack.gateway)
    for i in range(count):
        metadata = common_pb2.VideoMetadata(id=f"{tag}-{i}")
        response = stub.Index(gateway_pb2.IndexRequest(video=clips[i % len(clips)], metadata=metadata), timeout=60)
        assert response.id == f"{tag}-{i}"


def _calls(stack) -> dict[str, float]:
    state = stack.state()
    return {name: encodes(state[name]["metrics"]) for name in REPLICAS}


def test_both_replicas_are_their_own_processes(replicated):
    pids = replicated.pids()
    assert pids["encoder"] != pids["encoder-2"]


def test_indexes_are_spread_over_both_replicas(replicated, clips):
    before = _calls(replicated)
    _index(replicated, clips, 6, "spread")
    after = _calls(replicated)
    spread = {name: after[name] - before[name] for name in REPLICAS}
    assert sum(spread.values()) == 6
    assert min(spread.values()) >= 2, spread


def test_a_killed_replica_costs_no_upload_and_gets_calls_once_restarted(replicated, clips):
    killed = replicated.pids()["encoder-2"]
    os.kill(killed, signal.SIGKILL)
    _index(replicated, clips, 4, "one-down")  # the other replica answers all of them
    deadline = time.monotonic() + 120
    while replicated.pids()["encoder-2"] == killed or not launcher._is_serving(
            replicated.state()["encoder-2"]["address"]):
        assert time.monotonic() < deadline, "encoder-2 was not restarted"
        time.sleep(0.5)
    # the channel reconnects to the restarted replica on its own backoff; uploads go on meanwhile
    deadline = time.monotonic() + 120
    round_ = 0
    while _calls(replicated)["encoder-2"] == 0:  # a new process: its counter starts at 0
        assert time.monotonic() < deadline, "the gateway never called the restarted replica"
        _index(replicated, clips, 2, f"back-{round_}")
        round_ += 1
