"""TLS and mutual TLS as real processes (reelvec/tls.py): a search service that wants client
certificates, and a gateway that serves TLS to its callers and calls the search service with its
own certificate. Certificates come from openssl at test time: a CA, a server and a client
certificate for 127.0.0.1, and a second CA whose certificate must be refused."""

import signal
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from reelvec.tools import client, launcher
from reelvec.v1 import gateway_pb2, search_pb2, search_pb2_grpc

pytestmark = pytest.mark.integration


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "rogue-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ca}",
                "-keyout", str(d / f"{ca}.key"), "-out", str(d / f"{ca}.pem"))
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ca in (("server", "ca"), ("client", "ca"), ("rogue", "rogue-ca")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(d / f"{name}.key"),
                "-out", str(d / f"{name}.csr"))
        openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / f"{ca}.pem"), "-CAkey", str(d / f"{ca}.key"),
                "-CAcreateserial", "-days", "2", "-extfile", str(d / "san.cnf"), "-out", str(d / f"{name}.pem"))
    return d


def credentials(pki, client_name: str | None, ca: str = "ca") -> grpc.ChannelCredentials:
    key = (pki / f"{client_name}.key").read_bytes() if client_name else None
    cert = (pki / f"{client_name}.pem").read_bytes() if client_name else None
    return grpc.ssl_channel_credentials((pki / f"{ca}.pem").read_bytes(), key, cert)


def serving(address: str, creds: grpc.ChannelCredentials, process, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        with grpc.secure_channel(address, creds) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
        time.sleep(0.3)
    raise AssertionError(f"{address} not serving over TLS")


@pytest.fixture(scope="module")
def tls_stack(pki, tmp_path_factory):
    search_port, gateway_port = launcher.free_port(), launcher.free_port()
    search = subprocess.Popen([
        sys.executable, "-m", "services.search", "--port", str(search_port),
        "--data-dir", str(tmp_path_factory.mktemp("search")),
        "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
        "--tls-client-ca", str(pki / "ca.pem"),  # mutual TLS
    ])
    nowhere = [f"--{name}-url=127.0.0.1:{launcher.free_port()}" for name in ("encoder", "transcriber", "regressor")]
    gateway = subprocess.Popen([
        sys.executable, "-m", "services.gateway", "--port", str(gateway_port),
        "--data-dir", str(tmp_path_factory.mktemp("gateway")), f"--search-url=127.0.0.1:{search_port}", *nowhere,
        "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),  # what callers see
        "--tls-ca", str(pki / "ca.pem"),  # and, with the same certificate, how it calls the search service
    ])
    try:
        serving(f"127.0.0.1:{search_port}", credentials(pki, "client"), search)
        serving(f"127.0.0.1:{gateway_port}", credentials(pki, None), gateway)
        yield f"127.0.0.1:{search_port}", f"127.0.0.1:{gateway_port}"
    finally:
        for process in (gateway, search):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def list_collections(address: str, creds: grpc.ChannelCredentials | None):
    channel = grpc.secure_channel(address, creds) if creds else grpc.insecure_channel(address)
    with channel:
        return search_pb2_grpc.SearchStub(channel).ListCollections(search_pb2.ListCollectionsRequest(), timeout=5)


def test_mutual_tls_lets_in_only_certificates_of_its_ca(pki, tls_stack):
    search, _ = tls_stack
    assert list_collections(search, credentials(pki, "client")).alias == "videos"
    for refused in (None, credentials(pki, None), credentials(pki, "rogue")):
        with pytest.raises(grpc.RpcError) as info:
            list_collections(search, refused)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake fails: no call at all


def test_the_gateway_serves_tls_and_calls_inside_with_its_certificate(pki, tls_stack, monkeypatch):
    _, gateway = tls_stack
    monkeypatch.setenv("REELVEC_TLS_CA", str(pki / "ca.pem"))
    with pytest.raises(grpc.RpcError) as info:  # reached the search service over mutual TLS
        client.connect(gateway).Get(gateway_pb2.GetVideoRequest(id="nobody"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "nobody" in info.value.details()
    monkeypatch.delenv("REELVEC_TLS_CA")
    with pytest.raises(grpc.RpcError) as info:  # plaintext to a TLS port
        client.connect(gateway).Get(gateway_pb2.GetVideoRequest(id="nobody"), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
