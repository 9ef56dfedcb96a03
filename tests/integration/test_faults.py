"""Faults under traffic: each process SIGKILLed while calls go on. While a process is
down, its callers get UNAVAILABLE within their deadline (or, for the transcriber, a degraded Index),
never a hang or another status; `reelvec up` starts it again on the same ports and data; every
upload that was acknowledged is still there, whole; a gateway killed in the middle of an upload
leaves either the whole record or none; and a process that keeps exiting stops the stack.

Each kill must reach calls: a kill that lands while no call needs the process proves nothing, so it
is repeated (at most KILL_TRIES times, under the launcher's crash-loop limit) until calls saw it.
The services, Triton and the gateway are killed on a stack of their own; the regressor and the web
process on the shared stack, which each test leaves serving again."""

import dataclasses
import http.client
import json
import os
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import grpc
import pytest

from reelvec import samples
from reelvec.tools import launcher
from reelvec.tools.local_stack import RunningStack
from reelvec.v1 import common_pb2, gateway_pb2
from tests.integration.conftest import stack_of_its_own

pytestmark = pytest.mark.integration
DEADLINE = 30
KILL_TRIES = 3


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


@dataclasses.dataclass
class Call:
    kind: str
    start: float
    end: float
    outcome: str  # "ok", "degraded", a gRPC status name, "UNAVAILABLE" for a refused HTTP connection, "hang"
    details: str = ""


class Traffic:
    """Calls in a loop, one thread per kind, until the block ends; each call recorded with when it
    started and ended and how. A loop's function gets the call's number and returns "ok" or
    "degraded"; what it raises is the outcome."""

    def __init__(self, **loops: Callable[[int], str]):
        self.calls: list[Call] = []
        self._kinds = set(loops)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(kind, fn), daemon=True) for kind, fn in loops.items()]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=DEADLINE + 30)

    def _loop(self, kind: str, call: Callable[[int], str]) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            start = time.monotonic()
            details = ""
            try:
                outcome = call(n)
            except grpc.RpcError as exc:
                outcome, details = exc.code().name, exc.details() or ""
            except urllib.error.HTTPError as exc:
                outcome, details = f"HTTP {exc.code}", exc.reason
            except (OSError, http.client.HTTPException) as exc:  # refused or dropped: the web process is gone
                reason = getattr(exc, "reason", exc)
                outcome = "hang" if isinstance(reason, TimeoutError) else "UNAVAILABLE"
                details = repr(reason)
            self.calls.append(Call(kind, start, time.monotonic(), outcome, details))
            if outcome not in ("ok", "degraded"):
                time.sleep(0.1)

    def settle(self, since: float) -> None:
        """Waits until the calls that started before `since` have ended and every loop has made a
        call after it."""
        deadline = time.monotonic() + 2 * DEADLINE + 5
        while {c.kind for c in self.after(since)} != self._kinds:
            assert time.monotonic() < deadline, "a call did not end within its deadline"
            time.sleep(0.1)

    def after(self, since: float) -> list[Call]:
        return [c for c in list(self.calls) if c.start > since]

    def reached(self, killed_at: float, back_at: float, outcomes: set[str]) -> list[Call]:
        """Calls a kill at `killed_at` reached: in flight then, or started before the process was
        back at `back_at`, and ended as one of `outcomes`."""
        return [c for c in list(self.calls) if c.outcome in outcomes and c.end >= killed_at and c.start <= back_at]

    def failures(self) -> list[Call]:
        return [c for c in self.calls if c.outcome not in ("ok", "degraded")]


def kill_under_traffic(stack, name: str, traffic: Traffic, outcomes: set[str],
                       recovered: Callable[[], object]) -> tuple[list[Call], float]:
    """SIGKILLs `name` and waits for the launcher to restart it and for `recovered()` to pass;
    again while no call saw the outage. The calls that saw it, and when it was over."""
    for _ in range(KILL_TRIES):
        before = stack.pids()[name]
        killed_at = time.monotonic()
        os.kill(before, signal.SIGKILL)
        deadline = killed_at + 60
        while stack.pids()[name] == before:  # the supervisor writes the new pid
            assert time.monotonic() < deadline, f"{name} was not restarted"
            time.sleep(0.2)
        recovered()
        back_at = time.monotonic()
        traffic.settle(back_at)
        reached = traffic.reached(killed_at, back_at, outcomes)
        if reached:
            print(f"{name}: {len(reached)} calls saw the kill")
            return reached, back_at
        print(f"{name}: the kill reached no call; again")
    raise AssertionError(f"{KILL_TRIES} kills of {name} reached no call: the traffic never needed it while it was down")


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
    acknowledged = []

    def upload(n: int) -> str:
        response = index(stub, data[n % len(data)], f"fault-{n}")
        acknowledged.append(response.id)
        return "degraded" if response.incomplete else "ok"

    def search(n: int) -> str:  # by text (transcriber and search), then by id (search)
        if n % 2 or not acknowledged:
            stub.Search(gateway_pb2.SearchRequest(text="a short clip", k=3), timeout=DEADLINE)
        else:
            stub.Search(gateway_pb2.SearchRequest(id=acknowledged[-1], k=3), timeout=DEADLINE)
        return "ok"

    # what a caller of the killed process sees: the transcriber down degrades an Index instead
    seen = {"search": {"UNAVAILABLE"}, "transcriber": {"degraded", "UNAVAILABLE"},
            "encoder": {"UNAVAILABLE"}, "triton": {"UNAVAILABLE"}}
    wait_healthy(fragile, data[0])
    reached = {}
    with Traffic(upload=upload, search=search) as traffic:
        for name, outcomes in seen.items():
            reached[name], _ = kill_under_traffic(fragile, name, traffic, outcomes,
                                                  lambda: wait_healthy(fragile, data[0]))
    assert set(reached) == set(seen)
    # the killed Triton's Python backend stubs went with it, not left running beside the new ones
    orphans = [pid for pid in _stubs(fragile.data_dir) if _parent(pid) == 1]
    assert orphans == [], orphans
    failures = traffic.failures()
    assert acknowledged, "no upload went through"
    assert {c.outcome for c in failures} <= {"UNAVAILABLE"}, failures
    assert all(c.end - c.start < DEADLINE + 5 for c in traffic.calls)  # answered, never hung
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


def _wait_until(check: Callable[[], object], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            check()
            return
        except (grpc.RpcError, OSError, http.client.HTTPException):
            assert time.monotonic() < deadline, f"{what} did not come back"
            time.sleep(0.3)


def test_a_killed_regressor_comes_back_with_its_model_while_searches_go_on(stack, trained):
    stub = stack.stub()
    before = stub.Predict(gateway_pb2.PredictRequest(id="food_0"), timeout=DEADLINE)

    def predict(n: int) -> str:
        stub.Predict(gateway_pb2.PredictRequest(id="music_0", k=3), timeout=DEADLINE)
        return "ok"

    def search(n: int) -> str:
        stub.Search(gateway_pb2.SearchRequest(id="food_0", k=3), timeout=DEADLINE)
        return "ok"

    with Traffic(predict=predict, search=search) as traffic:
        reached, back_at = kill_under_traffic(stack, "regressor", traffic, {"UNAVAILABLE"}, lambda: _wait_until(
            lambda: stub.Predict(gateway_pb2.PredictRequest(id="food_0"), timeout=DEADLINE), "Predict"))
    assert all(c.kind == "predict" and "regressor" in c.details for c in reached), reached
    failures = traffic.failures()
    assert {(c.kind, c.outcome) for c in failures} == {("predict", "UNAVAILABLE")}, failures  # searches unaffected
    assert all(c.end - c.start < DEADLINE + 5 for c in traffic.calls)  # answered, never hung
    assert {c.outcome for c in traffic.after(back_at)} == {"ok"}  # and later calls succeed
    after = stub.Predict(gateway_pb2.PredictRequest(id="food_0"), timeout=DEADLINE)
    # the restarted regressor loaded the trained model from its data dir
    assert after.model_versions["likes"] == before.model_versions["likes"]
    assert after.likes == pytest.approx(before.likes)


def test_a_killed_web_process_comes_back_and_the_page_answers_again(stack, indexed):
    def page(n: int) -> str:
        with urllib.request.urlopen(f"{stack.web}/api/search?text=pasta%20recipe", timeout=DEADLINE) as response:
            assert json.load(response)["hits"]
        return "ok"

    def search(n: int) -> str:
        stack.stub().Search(gateway_pb2.SearchRequest(text="pasta recipe", k=3), timeout=DEADLINE)
        return "ok"

    with Traffic(page=page, search=search) as traffic:
        _, back_at = kill_under_traffic(stack, "web", traffic, {"UNAVAILABLE"},
                                        lambda: _wait_until(lambda: page(0), "the web page"))
    failures = traffic.failures()
    # refused or cut connections while it was down; never an error page, a hang, or a failed gRPC call
    assert {(c.kind, c.outcome) for c in failures} == {("page", "UNAVAILABLE")}, failures
    assert all(c.end - c.start < DEADLINE + 5 for c in traffic.calls)
    assert {c.outcome for c in traffic.after(back_at)} == {"ok"}  # and later calls succeed


@pytest.mark.timeout(300)
def test_a_process_that_keeps_exiting_stops_the_stack(tmp_path):
    """The web process's port taken by another process: each restart exits at once, and past
    launcher.MAX_RESTARTS exits within CRASH_WINDOW the launcher stops everything and exits 1."""
    running = RunningStack(tmp_path / "data", launcher.free_port(), REELVEC_WHISPER_MODEL="tiny.en")
    running.start()
    try:
        pids = running.pids()
        os.kill(pids["web"], signal.SIGKILL)
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            deadline = time.monotonic() + 5
            while True:  # the port is free once the kernel has closed the killed process's socket
                try:
                    squatter.bind(("127.0.0.1", running.web_port))
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the web port did not come free"
                    time.sleep(0.02)
            squatter.listen()
            code = running.process.wait(timeout=240)
    finally:
        if running.process.poll() is None:
            running.stop()
    assert code == 1
    deadline = time.monotonic() + 10  # the launcher's last lines, read by RunningStack's pump thread
    pattern = (rf"error: web keeps exiting \(code \d+, more than {launcher.MAX_RESTARTS} times in "
               rf"{launcher.CRASH_WINDOW:.0f} s\); stopping the stack")
    while not re.search(pattern, "".join(running.output)):
        assert time.monotonic() < deadline, "".join(running.output)[-3000:]
        time.sleep(0.1)
    output = "".join(running.output)
    assert output.count("warning: web exited") == launcher.MAX_RESTARTS, output[-3000:]
    # everything else was stopped with it, Triton's backend stubs included
    survivors = [name for name, pid in pids.items() if Path(f"/proc/{pid}").exists()]
    assert survivors == [] and _stubs(running.data_dir) == [], survivors
