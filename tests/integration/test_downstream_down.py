"""A gateway whose downstream services are not running answers UNAVAILABLE fast, naming the service,
and keeps serving; SIGTERM then stops it cleanly."""

import signal
import subprocess
import sys
import time

import grpc
import pytest

from reelvec import samples
from reelvec.tools import client, launcher
from reelvec.v1 import common_pb2, gateway_pb2

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lonely_gateway(tmp_path_factory):
    port = launcher.free_port()
    nowhere = [f"--{name}-url=127.0.0.1:{launcher.free_port()}" for name in ("encoder", "transcriber", "search", "regressor")]
    process = subprocess.Popen(
        [sys.executable, "-m", "services.gateway", "--port", str(port), "--encode-timeout", "5",
         "--transcribe-timeout", "5", "--search-timeout", "3", *nowhere],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not launcher._is_serving(f"127.0.0.1:{port}"):
        assert process.poll() is None and time.monotonic() < deadline, "gateway did not start"
        time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_unavailable_downstream_gives_unavailable_not_a_hang(lonely_gateway, tmp_path):
    stub = client.connect(lonely_gateway)
    video = samples.make_video(tmp_path / "clip.mp4", seconds=1).read_bytes()
    for call, request in (
        (stub.Index, gateway_pb2.IndexRequest(video=video, metadata=common_pb2.VideoMetadata(id="x"))),
        (stub.Search, gateway_pb2.SearchRequest(id="x")),
    ):
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            call(request, timeout=30)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert any(name in info.value.details() for name in ("encoder", "transcriber", "search"))
        assert time.monotonic() - start < 15


def test_input_errors_are_caught_before_any_downstream_call(lonely_gateway):
    stub = client.connect(lonely_gateway)
    with pytest.raises(grpc.RpcError) as info:
        stub.Index(gateway_pb2.IndexRequest(video=b""), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "empty" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.Search(gateway_pb2.SearchRequest(id="x", k=1000), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "k must be" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.Index(gateway_pb2.IndexRequest(video=b"abc", metadata=common_pb2.VideoMetadata(id="no spaces allowed")), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "id" in info.value.details()
