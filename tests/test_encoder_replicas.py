"""Several encoder replicas behind one gateway: `reelvec up --encoder-replicas N` starts N encoder
processes and gives the gateway one target naming them all, and a reelvec channel to such a target
spreads its calls over every replica (round-robin), not only the first that answers. In Kubernetes
the target is a headless Service's DNS name, and the encoder's connections age out so that the
gateways look the name up again and reach pods added since."""

import asyncio
import collections

import grpc
import pytest
from checkout import ROOT
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from reelvec import channels, config
from reelvec import server as reelvec_server
from reelvec.tools import launcher
from reelvec.tools.deploy.render import kustomize


def _gateway_flag(stack: launcher.Stack, flag: str) -> str:
    gateway = next(c for c in stack.children if c.name == "gateway")
    return next(arg.split("=", 1)[1] for arg in gateway.argv if arg.startswith(f"--{flag}="))


def test_two_replicas_are_two_encoder_processes_and_the_gateway_names_both(tmp_path):
    stack = launcher.Stack(tmp_path, launcher.free_port(), launcher.free_port(), encoder_replicas=2)
    stack.plan()
    encoders = [c for c in stack.children if c.argv[1:3] == ["-m", "services.encoder"]]
    assert [c.name for c in encoders] == ["encoder", "encoder-2"]
    assert encoders[0].address != encoders[1].address
    assert encoders[0].metrics_port != encoders[1].metrics_port
    assert _gateway_flag(stack, "encoder-url") == f"ipv4:{encoders[0].address},{encoders[1].address}"
    # dependency order on stop: the gateway (after them in the list) stops before both
    names = [c.name for c in stack.children]
    assert names.index("gateway") > names.index("encoder-2")


def test_one_replica_keeps_the_plain_address(tmp_path):
    stack = launcher.Stack(tmp_path, launcher.free_port(), launcher.free_port())
    stack.plan()
    encoder = next(c for c in stack.children if c.name == "encoder")
    assert _gateway_flag(stack, "encoder-url") == encoder.address
    assert not any(c.name.startswith("encoder-") for c in stack.children)


def test_the_ports_a_stack_is_given_are_not_handed_to_its_services(tmp_path, monkeypatch):
    """`reelvec up` gets its gateway and web ports from a caller in another process, before anything
    listens on them. Here the candidates come in order from 1024, so without the reservation the
    stack's own picks would take both."""
    monkeypatch.setattr(launcher, "_ephemeral_range", lambda: (2049, 60999))  # candidates 1024-2048
    monkeypatch.setattr(launcher.random, "shuffle", lambda ports: None)
    monkeypatch.setattr(launcher, "_handed_out", set())
    gateway, web = 1025, 1027
    stack = launcher.Stack(tmp_path, gateway, web)
    stack.plan()
    taken = [c.address.rsplit(":", 1)[1] for c in stack.children if c.name not in ("gateway", "web")]
    taken += [c.metrics_port for c in stack.children]
    assert {str(port) for port in taken}.isdisjoint({str(gateway), str(web)})


def test_no_replicas_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        launcher.encoder_names(0)


class _Counting(health.HealthServicer):
    """A real gRPC service that counts the calls it answered."""

    def __init__(self, calls: collections.Counter, name: str):
        super().__init__()
        self.calls, self.name = calls, name
        self.set("", health_pb2.HealthCheckResponse.SERVING)

    def Check(self, request, context):
        self.calls[self.name] += 1
        return super().Check(request, context)


async def _spread(replicas: int, calls: int) -> collections.Counter:
    counted: collections.Counter = collections.Counter()
    servers, addresses = [], []
    for i in range(replicas):
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(_Counting(counted, f"replica{i}"), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        addresses.append(f"127.0.0.1:{port}")
    try:
        async with channels.open_channel(launcher.replicas_target(addresses)) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for _ in range(calls):
                await channels.call("replica", stub.Check, health_pb2.HealthCheckRequest(), timeout=10)
    finally:
        for server in servers:
            await server.stop(None)
    return counted


def test_a_channel_to_two_replicas_sends_calls_to_both():
    counted = asyncio.run(_spread(2, 20))
    assert sum(counted.values()) == 20
    assert counted["replica0"] >= 5 and counted["replica1"] >= 5, counted


def test_a_channel_to_one_replica_still_answers():
    assert asyncio.run(_spread(1, 3)) == {"replica0": 3}


class _Peers(health.HealthServicer):
    """Records the client address (so the connection) each call came on."""

    def __init__(self, peers: set):
        super().__init__()
        self.peers = peers
        self.set("", health_pb2.HealthCheckResponse.SERVING)

    def Check(self, request, context):
        self.peers.add(context.peer())
        return super().Check(request, context)


async def _connections(age_seconds: float, seconds: float) -> set:
    """The connections one channel's calls came on over `seconds` to a server built as
    reelvec.server builds them; every call must succeed."""
    peers: set = set()
    settings = config.ServerSettings(max_connection_age_seconds=age_seconds)
    server = grpc.aio.server(options=reelvec_server.server_options(settings))
    health_pb2_grpc.add_HealthServicer_to_server(_Peers(peers), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with channels.open_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            deadline = asyncio.get_running_loop().time() + seconds
            while asyncio.get_running_loop().time() < deadline:
                await channels.call("server", stub.Check, health_pb2.HealthCheckRequest(), timeout=10)
                await asyncio.sleep(0.05)
    finally:
        await server.stop(None)
    return peers


def test_connections_age_out_when_asked_and_calls_go_on():
    # a new connection is what makes a client read a DNS name's addresses again (new replicas)
    assert len(asyncio.run(_connections(0.5, 3.0))) >= 2
    assert len(asyncio.run(_connections(0, 1.5))) == 1


def test_the_manifests_let_gateways_reach_every_encoder_pod():
    docs = kustomize(ROOT / "deploy" / "k8s" / "overlays" / "cpu")
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "encoder")
    assert service["spec"].get("clusterIP") == "None"  # DNS gives every pod, not one virtual IP
    encoder = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "encoder")
    args = encoder["spec"]["template"]["spec"]["containers"][0]["args"]
    assert float(args[args.index("--max-connection-age-seconds") + 1]) > 0
    settings = next(d for d in docs if d["kind"] == "ConfigMap" and "REELVEC_ENCODER_URL" in d.get("data", {}))
    assert "," not in settings["data"]["REELVEC_ENCODER_URL"]  # one DNS name, resolved to the pods
