"""Limits every reelvec server applies (reelvec/server.py, reelvec/channels.py), on real gRPC over
loopback: a cap on concurrent calls (RESOURCE_EXHAUSTED past it, health checks exempt) and the
caller's deadline carried into internal calls. The servicers here are minimal ones registered for
the test; the guard and channel code under test are the services' own."""

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from reelvec import channels, limits
from reelvec.server import ServiceGuard
from reelvec.tools.launcher import free_port

# gRPC servers in this process, on loopback ports; every call here has a deadline of seconds
pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SLOW = "/reelvec.v1.Test/Slow"
RELAY = "/reelvec.v1.Test/Relay"


async def start(handlers: dict, max_concurrent: int = 0):
    server = grpc.aio.server()
    guard = ServiceGuard(max_concurrent=max_concurrent)
    methods = {
        name: grpc.unary_unary_rpc_method_handler(guard.wrap(name, fn))
        for name, fn in ((full.rsplit("/", 1)[1], fn) for full, fn in handlers.items())
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("reelvec.v1.Test", methods),))
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, f"127.0.0.1:{port}"


def test_past_the_cap_calls_are_refused_at_once_and_health_checks_still_answer():
    async def slow(request, context):
        await asyncio.sleep(0.5)
        return b"done"

    async def run():
        server, address = await start({SLOW: slow}, max_concurrent=2)
        async with grpc.aio.insecure_channel(address) as channel:
            call = channel.unary_unary(SLOW)

            async def timed_call():
                started = time.monotonic()
                try:
                    return await call(b"", timeout=5)
                except grpc.aio.AioRpcError as exc:
                    exc.seconds = time.monotonic() - started
                    return exc

            results = await asyncio.gather(*(timed_call() for _ in range(5)))
            refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
            quick = all(r.seconds < 0.4 for r in refused)  # refused at once, not after the slow ones
            health_reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            after = await call(b"", timeout=5)  # the cap frees up as calls finish
        await server.stop(None)
        return results, refused, quick, health_reply, after

    results, refused, quick, health_reply, after = asyncio.run(run())
    assert results.count(b"done") == 2 and len(refused) == 3 and quick
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert "max_concurrent_rpcs" in refused[0].details()
    assert health_reply.status == health_pb2.HealthCheckResponse.SERVING and after == b"done"


def test_internal_calls_get_no_more_time_than_the_caller_has_left():
    seen = {}

    async def downstream(request, context):
        seen["remaining"] = context.time_remaining()
        await asyncio.sleep(3)
        return b"late"

    async def run():
        inner, inner_address = await start({SLOW: downstream})
        relay_channel = channels.open_channel(inner_address)

        async def relay(request, context):
            # a generous own timeout: the caller's 1 s must win
            return await channels.call("the downstream", relay_channel.unary_unary(SLOW), b"", timeout=60)

        outer, outer_address = await start({RELAY: relay})
        async with grpc.aio.insecure_channel(outer_address, options=limits.GRPC_OPTIONS) as channel:
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await channel.unary_unary(RELAY)(b"", timeout=1.0)
            elapsed = time.monotonic() - started
        await relay_channel.close()
        await outer.stop(None)
        await inner.stop(None)
        return info.value, elapsed

    error, elapsed = asyncio.run(run())
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and elapsed < 2.5
    # the caller's 1 s, not the relay's own 60 s (gRPC rounds the timeout it sends up a little)
    assert seen["remaining"] is not None and seen["remaining"] < 1.5
