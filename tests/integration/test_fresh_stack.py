"""A stack as `reelvec up` starts it by default (Whisper base, not the tiny.en of the shared stack)
on a data dir of its own, with DEBUG logs: the default model transcribes, a caller's request id
reaches the log of every service its call passes through, and Predict before any training says how
to train. No test here may train the likes model: the last one needs an untrained regressor."""

import json
import time
import uuid

import grpc
import pytest

from reelvec import samples
from reelvec.server import REQUEST_ID_KEY
from reelvec.v1 import common_pb2, gateway_pb2
from tests.integration.conftest import stack_of_its_own

pytestmark = pytest.mark.integration
SPOKEN = "the quick brown fox jumps over the lazy dog"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    yield from stack_of_its_own(tmp_path_factory, "fresh", whisper_model=None, REELVEC_LOG_LEVEL="DEBUG")


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> bytes:
    return samples.make_video(tmp_path_factory.mktemp("fresh-clips") / "talk.mp4", seed=31, seconds=4,
                              speech=SPOKEN).read_bytes()


def index(stack, data: bytes, video_id: str, request_id: str = ""):
    metadata = ((REQUEST_ID_KEY, request_id),) if request_id else None
    return stack.stub().Index(gateway_pb2.IndexRequest(video=data, metadata=common_pb2.VideoMetadata(id=video_id)),
                              timeout=300, metadata=metadata)


def logged_by(stack, request_id: str) -> dict[str, set[str]]:
    """Service -> the methods its log lines for `request_id` name (the guard's "handled" and
    "rejected" lines; a library's DEBUG lines carry the id too, but no method)."""
    found: dict[str, set[str]] = {}
    for log in (stack.data_dir / "logs").glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # Triton's own log is not JSON
            if isinstance(entry, dict) and entry.get("request_id") == request_id and "method" in entry:
                found.setdefault(entry["service"], set()).add(entry["method"])
    return found


def wait_logged(stack, request_id: str, services: set[str], seconds: float = 10) -> dict[str, set[str]]:
    deadline = time.monotonic() + seconds
    while not services <= set(found := logged_by(stack, request_id)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def test_the_default_whisper_model_transcribes_an_upload(fresh, talk):
    index(fresh, talk, "spoken")
    record = fresh.stub().Get(gateway_pb2.GetVideoRequest(id="spoken"), timeout=30)
    assert record.model_versions["whisper"] == "faster-whisper:base:int8"
    heard = set(record.transcript.lower().replace(".", " ").replace(",", " ").split())
    assert {"quick", "brown", "fox", "lazy", "dog"} <= heard, record.transcript
    assert record.language == "en"  # detected: base is multilingual, tiny.en is not


def test_a_request_id_reaches_the_log_of_every_service_a_call_passes(fresh, talk):
    upload = f"index-{uuid.uuid4().hex[:12]}"
    index(fresh, talk, "traced", request_id=upload)
    found = wait_logged(fresh, upload, {"gateway", "encoder", "transcriber", "search"})
    assert found.get("gateway") == {"Index"}, found
    assert "Encode" in found.get("encoder", set()) and "Transcribe" in found.get("transcriber", set()), found
    assert "Upsert" in found.get("search", set()), found
    assert "regressor" not in found  # the id marks this call only

    predict = f"predict-{uuid.uuid4().hex[:12]}"
    with pytest.raises(grpc.RpcError):  # no likes model yet: the regressor refuses, and logs it
        fresh.stub().Predict(gateway_pb2.PredictRequest(id="traced"), timeout=60, metadata=((REQUEST_ID_KEY, predict),))
    found = wait_logged(fresh, predict, {"gateway", "search", "regressor"})
    assert found.get("gateway") == {"Predict"} and "Analyze" in found.get("search", set()), found
    assert found.get("regressor") == {"Predict"}, found
    assert not {"encoder", "transcriber"} & set(found)  # a Predict by id embeds nothing


def test_predict_without_a_trained_model_says_how_to_train(fresh, talk, grpc_error):
    error = grpc_error(fresh.stub().Predict, gateway_pb2.PredictRequest(video=talk), timeout=300)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "reelvec train regressor" in error.details()
