"""Faults on a stack of its own (issue 6): each service and Triton killed with SIGKILL while
searches and uploads go on. While a process is down, its callers get UNAVAILABLE within their
deadline, never a hang or another status; `reelvec up` starts it again on the same ports and data;
every upload that was acknowledged is still there, whole; and a gateway killed in the middle of
an upload leaves either the whole record or none."""

import os
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest

from reelvec import samples
from reelvec.v1 import common_pb2, gateway_pb2
from tests.integration.conftest import stack_of_its_own

pytestmark = pytest.mark.integration
DEADLINE = 30


@pytest.fixture(scope="module")
def fragile(tmp_path_factory):
    yield from stack_of_its_own(tmp_path_factory, "faults", REELVEC_MEDIA_SWEEP_SECONDS="1",
                                REELVEC_MEDIA_ORPHAN_SECONDS="2", REELVEC_COMPLETE_EVERY_SECONDS="1")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fault-clips")
    return [samples.make_video(folder / f"f{i}.mp4", seed=40 + i, seconds=2) for i in range(3)]


def index(stub, data: bytes, video_id: str):
    metadata = common_pb2.VideoMetadata(id=video_id, likes=5)
    return stub.Index(gateway_pb2.IndexRequest(video=data, metadata=metadata), timeout=DEADLINE)


def _stubs(data_dir: Path) -> list[int]:
    """Triton Python backend stubs serving from this stack's data dir."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if proc.name.isdigit() and argv[0].endswith("triton_python_backend_stub") and str(data_dir) in " ".join(argv):
            found.append(int(proc.name))
    return found


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def wait_healthy(stack, clip: bytes, seconds: float = 180) -> float:
    """Seconds until an upload and a search both work again."""
    stub, started = stack.stub(), time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            index(stub, clip, "probe")
            stub.Search(gateway_pb2.SearchRequest(id="probe", k=1), timeout=DEADLINE)
            return time.monotonic() - started
        except grpc.RpcError:
            time.sleep(0.5)
    raise AssertionError("the stack did not recover")


def test_killed_processes_come_back_and_acknowledged_uploads_stay(fragile, clips):
    stub = fragile.stub()
    data = [c.read_bytes() for c in clips]
    acknowledged, failures, stop = [], [], threading.Event()

    def traffic():
        n = 0
        while not stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                index(stub, data[n % len(data)], f"fault-{n}")
                acknowledged.append(f"fault-{n}")
                stub.Search(gateway_pb2.SearchRequest(id=f"fault-{n}", k=3), timeout=DEADLINE)
            except grpc.RpcError as exc:
                failures.append((exc.code(), exc.details(), time.monotonic() - started))
                time.sleep(0.2)

    worker = threading.Thread(target=traffic)
    worker.start()
    recovered = {}
    try:
        wait_healthy(fragile, data[0])
        for name in ("search", "transcriber", "encoder", "triton"):
            before = fragile.pids()[name]
            os.kill(before, signal.SIGKILL)
            deadline = time.monotonic() + 60
            while fragile.pids()[name] == before:  # the supervisor writes the new pid
                assert time.monotonic() < deadline, f"{name} was not restarted"
                time.sleep(0.2)
            recovered[name] = wait_healthy(fragile, data[0])
    finally:
        stop.set()
        worker.join(timeout=120)
    assert set(recovered) == {"search", "transcriber", "encoder", "triton"}
    # the killed Triton's Python backend stubs went with it, not left running beside the new ones
    orphans = [pid for pid in _stubs(fragile.data_dir) if _parent(pid) == 1]
    assert orphans == [], orphans
    assert acknowledged, "no upload went through"
    assert {code for code, _, _ in failures} <= {grpc.StatusCode.UNAVAILABLE}, failures
    assert all(seconds < DEADLINE + 5 for _, _, seconds in failures)  # answered, never hung
    for video_id in acknowledged:  # nothing acknowledged was lost, and nothing is half there
        record = stub.Get(gateway_pb2.GetVideoRequest(id=video_id, with_vectors=True), timeout=DEADLINE)
        assert {"visual", "fused"} <= set(record.embeddings.vectors) and record.content_sha256
    deadline = time.monotonic() + 60  # uploads stored degraded while the transcriber was down get completed
    while any(stub.Get(gateway_pb2.GetVideoRequest(id=i), timeout=DEADLINE).incomplete for i in acknowledged):
        assert time.monotonic() < deadline, "degraded uploads were not completed"
        time.sleep(1)


def test_a_gateway_killed_during_an_upload_leaves_all_or_nothing(fragile, clips):
    data = clips[1].read_bytes()
    gateway = fragile.pids()["gateway"]
    outcome = {}

    def upload():
        try:
            outcome["response"] = index(fragile.stub(), data, "mid-crash")
        except grpc.RpcError as exc:
            outcome["error"] = exc.code()

    uploader = threading.Thread(target=upload)
    uploader.start()
    time.sleep(0.3)
    os.kill(gateway, signal.SIGKILL)
    uploader.join(timeout=DEADLINE + 5)
    assert outcome.get("error") == grpc.StatusCode.UNAVAILABLE or "response" in outcome
    wait_healthy(fragile, data)
    stub = fragile.stub()
    try:
        record = stub.Get(gateway_pb2.GetVideoRequest(id="mid-crash", with_vectors=True), timeout=DEADLINE)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND and "error" in outcome  # none: never acknowledged
    else:
        assert {"visual", "fused"} <= set(record.embeddings.vectors)  # whole
    index(stub, data, "mid-crash")  # and the same upload simply goes through again
    assert stub.Get(gateway_pb2.GetVideoRequest(id="mid-crash"), timeout=DEADLINE).id == "mid-crash"


def test_uploads_no_record_points_at_are_swept(fragile, clips):
    """What a crash between the upload and its record leaves (and half-written files) goes;
    uploads of stored videos stay."""
    import hashlib

    stub = fragile.stub()
    index(stub, clips[2].read_bytes(), "kept")
    kept = stub.Get(gateway_pb2.GetVideoRequest(id="kept"), timeout=DEADLINE).content_sha256
    media = fragile.data_dir / "media"
    orphan_bytes = b"an upload whose record never came"
    orphan_sha = hashlib.sha256(orphan_bytes).hexdigest()
    orphan = media / orphan_sha[:2] / orphan_sha
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(orphan_bytes)
    partial = media / kept[:2] / f".{kept}.99999.partial"
    partial.write_bytes(b"half")
    deadline = time.monotonic() + 30
    while orphan.exists() or partial.exists():
        assert time.monotonic() < deadline, "the sweep did not remove the orphan upload"
        time.sleep(0.5)
    assert (media / kept[:2] / kept).exists()
    time.sleep(3)  # several more sweeps: an upload with a record stays
    assert (media / kept[:2] / kept).exists()


def test_an_upload_while_the_transcriber_is_down_is_stored_degraded_then_completed(fragile, tmp_path):
    stub = fragile.stub()
    talk = samples.make_video(tmp_path / "talk.mp4", seed=7, seconds=3, speech="the quick brown fox").read_bytes()
    wait_healthy(fragile, talk)
    os.kill(fragile.pids()["transcriber"], signal.SIGKILL)
    response = index(stub, talk, "degraded")  # at once: the transcriber is only starting again
    assert list(response.incomplete) == ["transcript"] and "text" not in response.modalities
    stored = stub.Get(gateway_pb2.GetVideoRequest(id="degraded", with_vectors=True), timeout=DEADLINE)
    assert list(stored.incomplete) == ["transcript"] and stored.transcript == ""
    assert "text" not in stored.embeddings.vectors and "whisper" not in stored.model_versions
    deadline = time.monotonic() + 90
    while True:
        record = stub.Get(gateway_pb2.GetVideoRequest(id="degraded", with_vectors=True), timeout=DEADLINE)
        if not record.incomplete:
            break
        assert time.monotonic() < deadline, "the degraded upload was not completed"
        time.sleep(1)
    assert "fox" in record.transcript.lower() and "text" in record.embeddings.vectors
    assert "whisper" in record.model_versions
    assert record.embeddings.vectors["fused"].values != stored.embeddings.vectors["fused"].values  # fused again
    assert record.embeddings.vectors["visual"].values == stored.embeddings.vectors["visual"].values
