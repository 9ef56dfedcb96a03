"""A bounded soak test (docs/reliability.md): mixed traffic at a steady rate against a
gateway for a fixed time, reporting errors and latency percentiles per RPC and the memory of
every process of the stack over time.

    make soak [DURATION=300] [RATE=20]     # against a `make run` stack (its data dir: .data)

The mix, per call started at the steady rate: Search by id 50%, Search by text 20%, Predict by id
25%, Index 5%. Index uploads one of the stack's kept uploads again under a soak id, and deletes it
a little later, so the corpus ends as it started. Calls never pile up: at most `rate` x 5 are in
flight, and past that a tick is skipped and counted. Memory is the resident set of each process
(/proc/<pid>/status), sampled every second. Growth compares the median of the last third of the
run with that of the first third after warm-up (the first quarter is left out).
"""

import argparse
import asyncio
import dataclasses
import itertools
import json
import random
import sys
import time
from pathlib import Path

import grpc
import numpy as np

from reelvec import limits
from reelvec.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

DEADLINE = 30.0
MIX = (("Search id", 0.50), ("Search text", 0.20), ("Predict id", 0.25), ("Index", 0.05))
WORDS = ["pasta", "travel", "bike", "music", "dog", "recipe", "city", "beach"]


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


@dataclasses.dataclass
class Report:
    seconds: float
    rate: float
    latencies: dict[str, list[float]]
    errors: dict[str, dict[str, int]]
    skipped: int
    memory: dict[str, list[tuple[float, float]]]  # process -> (seconds, MiB)

    def growth(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, series in self.memory.items():
            kept = [mib for t, mib in series if t >= self.seconds / 4]
            third = max(1, len(kept) // 3)
            if len(kept) >= 3:
                first, last = float(np.median(kept[:third])), float(np.median(kept[-third:]))
                out[name] = {"first_mib": round(first, 1), "last_mib": round(last, 1), "growth_mib": round(last - first, 1)}
        return out

    def summary(self) -> dict:
        calls = {}
        for name, seen in self.latencies.items():
            ms = np.asarray(seen) * 1000
            calls[name] = {
                "ok": len(seen), "errors": self.errors.get(name, {}),
                **({f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)} if len(ms) else {}),
            }
        return {"seconds": round(self.seconds, 1), "rate": self.rate, "calls": calls, "skipped_ticks": self.skipped,
                "memory": self.growth()}

    def render(self) -> str:
        s = self.summary()
        lines = [f"soak: {s['seconds']} s at {s['rate']:g} calls/s, {s['skipped_ticks']} ticks skipped (too many in flight)",
                 "", f"{'rpc':<12} {'ok':>6} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"]
        for name, c in s["calls"].items():
            lines.append(f"{name:<12} {c['ok']:>6} {sum(c['errors'].values()):>7} {c.get('p50_ms', '-'):>8} "
                         f"{c.get('p95_ms', '-'):>8} {c.get('p99_ms', '-'):>8}")
        lines += ["", f"{'process':<12} {'MiB first':>10} {'MiB last':>10} {'growth':>8}"]
        for name, m in s["memory"].items():
            lines.append(f"{name:<12} {m['first_mib']:>10} {m['last_mib']:>10} {m['growth_mib']:>8}")
        return "\n".join(lines)


async def soak(gateway: str, pids: dict[str, int], seconds: float, rate: float, uploads: list[bytes],
               api_key: str = "", seed: int = 0) -> Report:
    rng = random.Random(seed)
    metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
    latencies = {name: [] for name, _ in MIX}
    errors: dict[str, dict[str, int]] = {}
    memory = {name: [] for name in pids}
    counter = itertools.count()
    async with grpc.aio.insecure_channel(gateway, options=limits.GRPC_OPTIONS) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        found = await stub.Search(gateway_pb2.SearchRequest(text="video", k=50), timeout=DEADLINE, metadata=metadata)
        ids = [h.id for h in found.hits]
        if not ids:
            raise ValueError(f"the gateway at {gateway} has no videos: index some first")

        async def one(kind: str) -> None:
            started = time.monotonic()
            try:
                if kind == "Search id":
                    await stub.Search(gateway_pb2.SearchRequest(id=rng.choice(ids), k=10), timeout=DEADLINE, metadata=metadata)
                elif kind == "Search text":
                    text = " ".join(rng.sample(WORDS, 2))
                    await stub.Search(gateway_pb2.SearchRequest(text=text, k=10), timeout=DEADLINE, metadata=metadata)
                elif kind == "Predict id":
                    await stub.Predict(gateway_pb2.PredictRequest(id=rng.choice(ids), k=5), timeout=DEADLINE, metadata=metadata)
                elif uploads:
                    video_id = f"soak-{next(counter)}"
                    request = gateway_pb2.IndexRequest(video=rng.choice(uploads),
                                                       metadata=common_pb2.VideoMetadata(id=video_id, likes=1))
                    await stub.Index(request, timeout=DEADLINE, metadata=metadata)
                    latencies[kind].append(time.monotonic() - started)
                    await stub.Delete(gateway_pb2.DeleteVideoRequest(id=video_id), timeout=DEADLINE, metadata=metadata)
                    return
                latencies[kind].append(time.monotonic() - started)
            except grpc.aio.AioRpcError as exc:
                errors.setdefault(kind, {}).setdefault(exc.code().name, 0)
                errors[kind][exc.code().name] += 1

        async def sample(start: float) -> None:
            while True:
                for name, pid in pids.items():
                    mib = rss_mib(pid)
                    if mib is not None:
                        memory[name].append((time.monotonic() - start, mib))
                await asyncio.sleep(1.0)

        start = time.monotonic()
        sampler = asyncio.ensure_future(sample(start))
        tasks: set[asyncio.Task] = set()
        skipped, tick = 0, 0
        kinds, weights = zip(*MIX)
        while time.monotonic() - start < seconds:
            tick += 1
            if len(tasks) >= rate * 5:
                skipped += 1
            else:
                task = asyncio.ensure_future(one(rng.choices(kinds, weights)[0]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(max(0.0, start + tick / rate - time.monotonic()))
        if tasks:
            await asyncio.wait(tasks, timeout=DEADLINE + 5)
        sampler.cancel()
    return Report(time.monotonic() - start, rate, latencies, errors, skipped, memory)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", default="127.0.0.1:50051")
    parser.add_argument("--data-dir", default=".data", help="the stack's data dir: pids from stack.json, uploads from media/")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--api-key", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)
    pids = {name: entry["pid"] for name, entry in json.loads((data_dir / "stack.json").read_text()).items()}
    uploads = [p.read_bytes() for p in sorted((data_dir / "media").glob("??/*"))[:4] if p.stat().st_size < 8 * 2**20]
    report = asyncio.run(soak(args.gateway, pids, args.seconds, args.rate, uploads, args.api_key))
    print(json.dumps(report.summary()) if args.json else report.render())
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
