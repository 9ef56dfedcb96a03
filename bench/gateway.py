"""Gateway: Search and Predict throughput and latency at 1-256 concurrent clients, against the real
stack (`reelvec up`), with the search service's own Query called directly as the no-gateway baseline.
Then the peak memory of every process after the load."""

import asyncio
import gc
import random
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

from bench import common
from reelvec import limits, modalities
from reelvec.fusion import fuse
from reelvec.tools import launcher
from reelvec.tools.local_stack import RunningStack
from reelvec.v1 import (
    common_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
    regressor_pb2,
    search_pb2,
    search_pb2_grpc,
)

CONCURRENCY = (1, 4, 16, 64, 256)
# The target: 1,000 Search requests/s with p99 < 50 ms at 64 clients. The closed-loop levels
# above run as fast as the stack answers, so at 64 clients the cores saturate and p99 measures the
# queue; this level offers exactly the target's rate, as a service level is stated.
PACED_CLIENTS, PACED_RATE = 64, 1000.0


def _record(index: int, rng: np.random.Generator, centres: dict[str, np.ndarray]) -> common_pb2.VideoRecord:
    cluster = int(rng.integers(len(centres[modalities.VISUAL])))
    vectors = {
        name: centres[name][cluster] + 0.6 * rng.normal(size=dim).astype(np.float32) / np.sqrt(dim)
        for name, dim in modalities.SOURCES.items()
    }
    vectors[modalities.FUSED] = fuse(vectors)
    followers = int(10 ** rng.uniform(2, 6))
    return common_pb2.VideoRecord(
        id=f"v{index}",
        metadata=common_pb2.VideoMetadata(
            id=f"v{index}", caption=f"clip {index}", hashtags=[f"tag{cluster}", f"tag{cluster % 7}"],
            likes=int(followers * rng.uniform(0.01, 0.1)), created_at=1_700_000_000 + index,
            author=common_pb2.AuthorStats(id=f"a{index % 50}", followers=followers, videos=int(rng.integers(1, 500))),
        ),
        duration=float(rng.uniform(5, 60)),
        embeddings=common_pb2.Embeddings(
            vectors={k: common_pb2.Vector(values=v.tolist()) for k, v in vectors.items()}
        ),
    )


async def _fill(search_address: str, count: int) -> None:
    rng = np.random.default_rng(0)
    centres = {name: rng.normal(size=(40, dim)).astype(np.float32) / np.sqrt(dim) for name, dim in modalities.SOURCES.items()}
    async with grpc.aio.insecure_channel(search_address, options=limits.GRPC_OPTIONS) as channel:
        stub = search_pb2_grpc.SearchStub(channel)
        queue = iter(range(count))

        async def worker():
            for index in queue:
                await stub.Upsert(search_pb2.UpsertRequest(video=_record(index, rng, centres)), timeout=30)

        await asyncio.gather(*(worker() for _ in range(8)))


async def _load(call, make_request, concurrency: int, seconds: float, max_requests: int):
    latencies, errors = [], 0
    stop_at = time.monotonic() + seconds

    async def client():
        nonlocal errors
        while time.monotonic() < stop_at and len(latencies) + errors < max_requests:
            start = time.perf_counter()
            try:
                await call(make_request(), timeout=30)
                latencies.append(time.perf_counter() - start)
            except grpc.aio.AioRpcError:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - start


async def _paced(call, make_request, clients: int, rate: float, seconds: float):
    """`clients` each sending on a fixed schedule, `rate` requests/s in all. A latency runs from the
    scheduled send, not the actual one: a reply that comes late delays the client's next send, and
    that wait counts too (no coordinated omission)."""
    latencies, errors = [], 0
    interval = clients / rate
    begin = time.perf_counter() + 0.05

    async def client(offset: float):
        nonlocal errors
        for i in range(int(seconds / interval)):
            due = begin + offset + i * interval
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            try:
                await call(make_request(), timeout=30)
                latencies.append(time.perf_counter() - due)
            except grpc.aio.AioRpcError:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(client(c * interval / clients) for c in range(clients)))
    return latencies, errors, time.perf_counter() - start


async def _measure(stack: RunningStack, search_address: str, count: int, seconds: float, section):
    ids = [f"v{i}" for i in range(count)]
    pick = random.Random(1).choice
    options = limits.GRPC_OPTIONS
    async with grpc.aio.insecure_channel(stack.gateway, options=options) as gw_channel, \
            grpc.aio.insecure_channel(search_address, options=options) as search_channel:
        gateway = gateway_pb2_grpc.GatewayStub(gw_channel)
        search = search_pb2_grpc.SearchStub(search_channel)
        await gateway.TrainRegressor(regressor_pb2.TrainRequest(), timeout=600)
        # The load generator's own collector once paused it 114-117 ms in 24 s of paced load, and
        # every request in flight counted the pause: freeze what set-up built, as the servers do.
        gc.collect()
        gc.freeze()
        targets = {
            "Search via gateway": (gateway.Search, lambda: gateway_pb2.SearchRequest(id=pick(ids), k=10)),
            "Query on search service (no gateway)": (search.Query, lambda: search_pb2.QueryRequest(id=pick(ids), k=10)),
            "Predict via gateway": (gateway.Predict, lambda: gateway_pb2.PredictRequest(id=pick(ids), k=10)),
        }
        pids = stack.pids()

        async def level(name, concurrency, run):
            before = common.cpu_by_process(pids)
            latencies, errors, wall = await run
            spent = {process: cpu / max(len(latencies), 1) for process, cpu in common.cpu_spent(before, pids).items()}
            p50, p99 = common.percentiles(latencies) if latencies else (float("nan"),) * 2
            rps = len(latencies) / wall
            section.rows.append([name, concurrency, rps, p50, p99, 1e3 * sum(spent.values()), errors])
            return rps, p99, spent

        for name, (call, make) in targets.items():
            for concurrency in CONCURRENCY:
                rps, p99, spent = await level(name, concurrency, _load(call, make, concurrency, seconds, 20_000))
                prefix = name.split()[0].lower()
                if name.endswith("no gateway)"):
                    prefix = "direct_query"
                section.metrics[f"gateway_{prefix}_rps_c{concurrency}"] = rps
                section.metrics[f"gateway_{prefix}_p99_ms_c{concurrency}"] = p99
                if concurrency == 64:  # where the CPU goes when the cores are the limit
                    shares = sorted(((cpu, process) for process, cpu in spent.items() if cpu * rps > 0.02), reverse=True)
                    section.notes.append(f"{name}, 64 clients, CPU µs per request: "
                                         + ", ".join(f"{process} {1e6 * cpu:.0f}" for cpu, process in shares))
            if name == "Search via gateway":
                paced = f"{name}, paced at {PACED_RATE:,.0f}/s"
                _, p99, _ = await level(paced, PACED_CLIENTS, _paced(call, make, PACED_CLIENTS, PACED_RATE, seconds))
                section.metrics["gateway_search_p99_ms_paced"] = p99


def run(args) -> list[common.Section]:
    count = 1000 if args.quick else 5000
    seconds = 2.0 if args.quick else 6.0
    load = common.Section(
        f"Gateway RPCs ({count} stored videos, by-id queries, k=10)",
        ["RPC", "clients", "requests/s", "p50 ms", "p99 ms", "CPU ms/request", "errors"],
    )
    memory = common.Section("Memory after load", ["process", "peak RSS MiB"])
    with tempfile.TemporaryDirectory() as data:
        stack = RunningStack(Path(data), launcher.free_port(), REELVEC_WHISPER_MODEL="tiny.en")
        stack.start()
        try:
            state = stack.state()
            asyncio.run(_fill(state["search"]["address"], count))
            asyncio.run(_measure(stack, state["search"]["address"], count, seconds, load))
            for name, pid in stack.pids().items():
                peak = max(common.peak_rss_mb(p) for p in common.descendants(pid))
                memory.rows.append([name, peak])
                memory.metrics[f"memory_peak_mib_{name}"] = peak
        finally:
            stack.stop()
    load.metrics["gateway_search_rps"] = load.metrics["gateway_search_rps_c64"]
    load.metrics["gateway_search_p99_ms"] = load.metrics["gateway_search_p99_ms_c64"]
    load.notes.append("client: one grpc.aio process on the same 2 cores as the stack; Triton and the models idle")
    load.notes.append(f"paced: {PACED_CLIENTS} clients sending on a fixed schedule, {PACED_RATE:,.0f} requests/s in "
                      "all (the target rate); its latencies run from the scheduled send")
    load.notes.append("CPU ms/request: every process of the stack and the client over the run, per request "
                      "(at few clients it includes what idle threads spend while requests are in flight)")
    memory.notes.append("Triton's row is the largest of the server and its Python backend stub")
    return [load, memory]
