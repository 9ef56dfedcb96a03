"""gRPC server bootstrap shared by every service.

One `serve()` gives each service the same behaviour: grpc.aio, health and reflection, Prometheus
metrics, domain errors mapped to statuses, request ids in logs, and a graceful shutdown that first
reports NOT_SERVING, then drains in-flight calls for `grace_seconds`.
"""

import asyncio
import contextlib
import contextvars
import gc
import logging
import signal
import time
import types
import uuid
from typing import Awaitable, Callable, Iterable

import grpc
import prometheus_client
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from reelvec import errors, limits
from reelvec.tls import TLS

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
# time.monotonic() by which the caller of the call being handled stops waiting; None: no deadline.
# reelvec.channels gives internal calls no more than what is left of it.
caller_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("caller_deadline", default=None)

RPC_TOTAL = prometheus_client.Counter(
    "reelvec_rpc_requests_total", "RPCs handled, by method and status code", ["method", "code"]
)
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
RPC_LATENCY = prometheus_client.Histogram(
    "reelvec_rpc_latency_seconds", "RPC handling time, by method and status code", ["method", "code"], buckets=_BUCKETS
)
RPC_IN_FLIGHT = prometheus_client.Gauge("reelvec_rpc_in_flight", "RPCs being handled", ["method"])
# Where a call's time goes inside a service: "queued" (waiting for a decode or model slot),
# "decode", "model" (inference: Triton, Whisper, the text encoder), "features" (hand-made audio).
STAGE_SECONDS = prometheus_client.Histogram(
    "reelvec_stage_seconds", "time per stage of a call", ["stage"], buckets=_BUCKETS
)


@contextlib.contextmanager
def timed(stage: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        STAGE_SECONDS.labels(stage).observe(time.perf_counter() - start)


class ServiceGuard:
    """What every reelvec RPC goes through: timing and counting, domain errors mapped onto gRPC
    statuses, the request id and the caller's deadline set for the call, a cap on concurrent
    calls, and `authorize(method, metadata)`, when given, which raises a ReelvecError to refuse
    the call. Health checks and reflection stay outside it, open and uncapped for probes.

    It wraps each servicer method once, at registration. A grpc.aio ServerInterceptor does the
    same work but builds a new handler on every call, which cost 0.1 ms of CPU per call here
    (docs/benchmarks.md): a sixth of a whole Search."""

    def __init__(self, authorize: Callable[[str, dict], None] | None = None, max_concurrent: int = 0):
        """`max_concurrent`: calls handled at once past which a call gets RESOURCE_EXHAUSTED at
        once instead of queueing without bound (0: no cap)."""
        self._authorize = authorize
        self._max_concurrent = max_concurrent
        self._in_flight = 0

    def servicer(self, servicer, service: ServiceDescriptor):
        """An object with `service`'s methods, each the servicer's own guarded, for the generated
        add_*Servicer_to_server."""
        return types.SimpleNamespace(**{m.name: self.wrap(m.name, getattr(servicer, m.name)) for m in service.methods})

    def wrap(self, method: str, behaviour: Callable[[object, grpc.aio.ServicerContext], Awaitable]):
        """`behaviour(request or request iterator, context)` guarded; unary response only."""
        in_flight = RPC_IN_FLIGHT.labels(method)
        finished: dict[grpc.StatusCode, tuple] = {}

        async def guarded(request, context):
            incoming = dict(context.invocation_metadata() or ())
            request_id.set(incoming.get(REQUEST_ID_KEY) or uuid.uuid4().hex[:16])
            remaining = context.time_remaining()
            caller_deadline.set(None if remaining is None else time.monotonic() + remaining)
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            in_flight.inc()
            self._in_flight += 1
            try:
                if self._max_concurrent and self._in_flight > self._max_concurrent:
                    raise errors.ResourceExhausted(f"{self._max_concurrent} calls are in progress here already "
                                                   "(max_concurrent_rpcs): retry with backoff")
                if self._authorize is not None:
                    self._authorize(method, incoming)
                return await behaviour(request, context)
            except errors.ReelvecError as exc:
                code = exc.code
                log.info("rejected", extra={"method": method, "code": code.name, "reason": str(exc)})
                await context.abort(code, str(exc))
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:  # a bug: log it whole, answer without internals
                code = grpc.StatusCode.INTERNAL
                log.exception("unhandled error", extra={"method": method})
                await context.abort(code, f"internal error in {method}: {type(exc).__name__}")
            finally:
                self._in_flight -= 1
                in_flight.dec()
                counted = finished.get(code)
                if counted is None:  # labels() locks and looks up: once per method and code
                    counted = finished[code] = (RPC_TOTAL.labels(method, code.name), RPC_LATENCY.labels(method, code.name))
                counted[0].inc()
                counted[1].observe(time.perf_counter() - start)
                if log.isEnabledFor(logging.DEBUG):  # a line per call, so that a request id finds it in every log
                    log.debug("handled", extra={"method": method, "code": code.name,
                                                "ms": round((time.perf_counter() - start) * 1000, 1)})

        return guarded


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        rid = request_id.get()
        if rid:
            record.request_id = rid
        return True


def register(pb2, pb2_grpc, name: str, servicer) -> Callable[[grpc.aio.Server, ServiceGuard], list[str]]:
    """The `add_services` for serve() of a process with one servicer, e.g.
    register(gateway_pb2, gateway_pb2_grpc, "Gateway", servicer)."""

    def add(grpc_server: grpc.aio.Server, guard: ServiceGuard) -> list[str]:
        service = pb2.DESCRIPTOR.services_by_name[name]
        getattr(pb2_grpc, f"add_{name}Servicer_to_server")(guard.servicer(servicer, service), grpc_server)
        return [service.full_name]

    return add


def server_options(settings) -> list[tuple[str, int]]:
    """`settings`: a config.ServerSettings."""
    # so_reuseport off: a second server on a busy port must fail, not silently share it
    options = [*limits.server_options(settings.max_video_mb), ("grpc.so_reuseport", 0)]
    if settings.max_connection_age_seconds > 0:
        # no grace option: gRPC then lets the calls in flight finish however long they take
        options.append(("grpc.max_connection_age_ms", round(settings.max_connection_age_seconds * 1000)))
    return options


async def serve(
    settings,
    add_services: Callable[[grpc.aio.Server, ServiceGuard], Iterable[str]],
    warmup: Callable[[], Awaitable[None]] | None = None,
    cleanup: Callable[[], Awaitable[None]] | None = None,
    authorize: Callable[[str, dict], None] | None = None,
) -> None:
    """Runs a server until SIGTERM/SIGINT. `add_services` registers servicers, guarded by the
    given ServiceGuard, and returns their full names; `warmup` loads models before the health
    status turns SERVING; `authorize` checks every call's metadata (ServiceGuard)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(_RequestIdFilter())
    server = grpc.aio.server(options=server_options(settings))
    names = list(add_services(server, ServiceGuard(authorize, settings.max_concurrent_rpcs)))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    address = f"{settings.host}:{settings.port}"
    credentials = TLS.of(settings).server_credentials()
    bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if bound == 0:
        raise SystemExit(f"cannot bind {address}")
    if settings.metrics_port:
        prometheus_client.start_http_server(settings.metrics_port, addr=settings.host)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    await server.start()
    for name in ("", *names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    if warmup is not None:
        await warmup()
    # What start-up built (modules, models, the store) lives as long as the process. Frozen, the
    # collector stops walking it: the search process's full collections, every ~1.5 s under load,
    # stalled every call in flight for 60-90 ms, which was the whole gateway p99 (docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    for name in ("", *names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving", extra={"address": address, "services": names})

    await stop.wait()
    log.info("draining", extra={"grace_seconds": settings.grace_seconds})
    await health_servicer.enter_graceful_shutdown()
    await server.stop(settings.grace_seconds)
    if cleanup is not None:
        await cleanup()
    log.info("stopped")
