"""A gateway with a keys file in its data dir, as a real process: calls without a key, with the
wrong scope or over their rate get UNAUTHENTICATED, PERMISSION_DENIED and RESOURCE_EXHAUSTED;
health checks stay open for probes; the CLI sends its key. No downstream runs: a call that passes
the key check reaches the input checks (INVALID_ARGUMENT), which is what these tests look for."""

import signal
import subprocess
import sys
import time

import grpc
import pytest

from reelvec.tools import client, launcher
from reelvec.v1 import gateway_pb2
from services.gateway.auth import KeyStore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    data = tmp_path_factory.mktemp("guarded")
    store = KeyStore(data / "api-keys.json")
    keys = {scope: store.create(scope)[0] for scope in ("read", "write")}
    keys["slow"] = store.create("read", rate=0.5, burst=1)[0]
    port = launcher.free_port()
    nowhere = [f"--{name}-url=127.0.0.1:{launcher.free_port()}" for name in ("encoder", "transcriber", "search", "regressor")]
    log = open(data / "gateway.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "services.gateway", "--port", str(port), "--data-dir", str(data),
                                "--require-api-keys", "true", "--search-timeout", "2", "--log-level", "DEBUG", *nowhere],
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not launcher._is_serving(f"127.0.0.1:{port}"):  # the health check needs no key
        assert process.poll() is None and time.monotonic() < deadline, "gateway did not start"
        time.sleep(0.2)
    yield f"127.0.0.1:{port}", keys, data / "gateway.log"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    log.close()


def code_of(call, request) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    return info.value.code(), info.value.details()


def test_keys_scopes_and_limits_are_enforced(guarded):
    address, keys, _ = guarded
    bad_k = gateway_pb2.SearchRequest(id="x", k=1000)
    assert code_of(client.connect(address, "").Search, bad_k)[0] == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(client.connect(address, "rvk_deadbeef_nope").Search, bad_k)[0] == grpc.StatusCode.UNAUTHENTICATED
    reader = client.connect(address, keys["read"])
    assert code_of(reader.Search, bad_k)[0] == grpc.StatusCode.INVALID_ARGUMENT  # past the key check
    code, details = code_of(reader.Index, gateway_pb2.IndexRequest(video=b""))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "write" in details
    writer = client.connect(address, keys["write"])
    assert code_of(writer.Index, gateway_pb2.IndexRequest(video=b""))[0] == grpc.StatusCode.INVALID_ARGUMENT
    slow = client.connect(address, keys["slow"])
    assert code_of(slow.Search, bad_k)[0] == grpc.StatusCode.INVALID_ARGUMENT
    code, details = code_of(slow.Search, bad_k)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "retry in" in details


def test_the_cli_sends_its_key(guarded):
    address, keys, _ = guarded
    run = [sys.executable, "-m", "reelvec.tools.cli", "search", "--id", "x", "--k", "1000", "--gateway", address]
    without = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert without.returncode == 1 and "UNAUTHENTICATED" in without.stderr and "--api-key" in without.stderr
    with_key = subprocess.run([*run, "--api-key", keys["read"]], capture_output=True, text=True, timeout=60)
    assert with_key.returncode == 1 and "INVALID_ARGUMENT" in with_key.stderr


def test_keys_never_reach_the_log(guarded):
    address, keys, log = guarded
    with pytest.raises(grpc.RpcError):  # a refusal is logged (at DEBUG level everything is): the key is not
        client.connect(address, keys["read"]).Index(gateway_pb2.IndexRequest(video=b""), timeout=10)
    text = log.read_text()
    assert "rejected" in text and "PERMISSION_DENIED" in text
    assert not any(key.split("_", 2)[2] in text for key in keys.values())  # the 43-character secret part


def test_require_api_keys_refuses_to_start_without_a_keys_file(tmp_path):
    result = subprocess.run([sys.executable, "-m", "services.gateway", "--port", str(launcher.free_port()),
                             "--data-dir", str(tmp_path), "--require-api-keys", "true"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "reelvec keys create" in result.stderr
