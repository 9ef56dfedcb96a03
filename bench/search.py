"""Search: k-NN on the fused vector (what Predict searches) over clustered vectors (bench/vectors.py),
the embedded store as the service opens it versus exact numpy brute force, and qdrant-client's local
mode at 10k (what a user picking `--store qdrant` without a server gets).

Sizes: 10k (quick) or 10k and 100k; REELVEC_BENCH_SEARCH_SIZES=10000,100000,1000000 (or an
`args.search_sizes` string) picks others. REELVEC_BENCH_SEARCH_EF=64,256 adds rows that re-query
the built store with other search-time hnsw_ef values (the service's oversampling kept): the knob
that trades recall for latency. Queries run one at a time from one thread; an engine may use both
cores inside a query.
"""

import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common
from bench.vectors import Generator, Spec, neighbour_stats
from reelvec import config, modalities

K = 10
FUSED = modalities.FUSED
SIZES_ENV, EF_ENV = "REELVEC_BENCH_SEARCH_SIZES", "REELVEC_BENCH_SEARCH_EF"
LOCAL_MODE_MAX = 10_000  # qdrant-client local mode is pure-Python brute force: slow beyond that
LOCAL_MODE_BUDGET_S = 120.0  # stop its queries after this long and report what was measured
MEMMAP_ABOVE = 200_000  # bigger corpora live in a file-backed array: 1M x 1859 is 7.4 GB
# Beyond this the store is opened with the fused vector alone. The service's store also allocates
# the visual, audio and text storages for every point, zeros where absent: at 1M that is ~40 GB of
# shard, more than the disk here holds. A query reads only the fused vector's storage and graph,
# so latency and recall are the service's; disk and memory are not (docs/benchmarks.md).
FUSED_ONLY_ABOVE = MEMMAP_ABOVE
BATCH = 256  # points per upsert call while loading
FLUSH_EVERY = 64  # batches
# Untimed queries before the store's timed ones. Right after optimize() the new segments' pages are
# not in memory yet, and whichever row ran first paid for faulting them in (seen at 100k with 200
# warm-up queries: p50 1.96 ms for the first row, 1.61 ms for the same settings re-run later).
WARMUP = 500


@dataclasses.dataclass
class Workload:
    queries: np.ndarray  # timed
    warmup: np.ndarray  # other held-out points, untimed
    truth: np.ndarray  # exact top-K ids per timed query


@dataclasses.dataclass
class Result:
    engine: str
    build_s: float | None
    latencies_s: list[float]
    recall: float

    @property
    def p50_p99(self) -> tuple[float, float]:
        return common.percentiles(self.latencies_s)

    @property
    def qps(self) -> float:
        return len(self.latencies_s) / sum(self.latencies_s)


def _label(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k"


def _ints(raw: str | None) -> list[int]:
    return [int(float(s)) for s in raw.split(",") if s.strip()] if raw else []


def _sizes(args) -> list[int]:
    chosen = _ints(getattr(args, "search_sizes", None) or os.environ.get(SIZES_ENV))
    return chosen or ([10_000] if args.quick else [10_000, 100_000])


def exact_topk(corpus: np.ndarray, queries: np.ndarray, k: int = K, rows: int = 32768) -> np.ndarray:
    """Ground truth: ids of the k most similar rows per query, in one pass over the corpus (so a
    memmapped 1M corpus is read once, not once per query)."""
    best = np.empty((len(queries), 0), np.float32)
    best_ids = np.empty((len(queries), 0), np.int64)
    for start in range(0, len(corpus), rows):
        block = queries @ corpus[start : start + rows].T
        block_ids = np.broadcast_to(np.arange(start, start + block.shape[1]), block.shape)
        scores, ids = np.hstack([best, block]), np.hstack([best_ids, block_ids])
        keep = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best, best_ids = np.take_along_axis(scores, keep, 1), np.take_along_axis(ids, keep, 1)
    return best_ids


def _measure(search, w: Workload, warmup: int, limit: int | None = None, budget_s: float | None = None):
    """search(query) -> ids; returns latencies and recall@K over the queries that ran."""
    for q in w.warmup[:warmup]:
        search(q)
    latencies, found = [], 0
    started = time.perf_counter()
    for q, truth in zip(w.queries[:limit], w.truth):
        t = time.perf_counter()
        ids = search(q)
        latencies.append(time.perf_counter() - t)
        found += len(set(ids) & set(truth.tolist()))
        if budget_s is not None and time.perf_counter() - started > budget_s:
            break
    return latencies, found / (K * len(latencies))


def _exact(corpus: np.ndarray, w: Workload) -> Result:
    def search(q):
        scores = corpus @ q  # rows are unit length: this is cosine
        top = np.argpartition(-scores, K - 1)[:K]
        return top[np.argsort(-scores[top])].tolist()

    # a 1M-row scan reads 7.4 GB per query: 100 queries still give the percentiles
    limit = max(100, 10**8 // len(corpus))
    return Result("exact numpy (baseline)", None, *_measure(search, w, warmup=10, limit=limit))


def _load_edge(store, corpus: np.ndarray) -> None:
    import qdrant_edge as qe

    from services.search.stores import base

    # Batched through the shard (the service upserts one video per call): the same points
    # EdgeStore.upsert writes, without timing 100k gRPC-sized calls as "build".
    for batch, start in enumerate(range(0, len(corpus), BATCH), 1):
        points = [
            qe.Point(base.point_id(str(i)), {FUSED: corpus[i].tolist()}, {base.VIDEO_ID: str(i)})
            for i in range(start, min(start + BATCH, len(corpus)))
        ]
        store._shard.update(qe.UpdateOperation.upsert_points(points))
        if batch % FLUSH_EVERY == 0:
            store.flush()  # as the service's store does every few seconds: the WAL stays small


def _edge(corpus: np.ndarray, w: Workload, folder: Path, efs: list[int], settings):
    import qdrant_edge as qe

    from services.search.catalog import open_edge_store
    from services.search.stores import base, edge

    # Opened exactly as the service opens it, so a settings change there is what gets measured;
    # only the idle watcher is off, because the benchmark calls optimize() itself.
    dims = {FUSED: modalities.DIMS[FUSED]} if len(corpus) > FUSED_ONLY_ABOVE else modalities.DIMS
    store = open_edge_store(dataclasses.replace(settings, optimize_after=0), folder, dims)
    try:
        with common.Timer() as load:
            _load_edge(store, corpus)
        with common.Timer() as index:
            store.optimize()
        assert store.indexed_vectors_count >= len(corpus), "optimize() left vectors unindexed"

        def served(q):
            return [int(h.id) for h in store.search(FUSED, q.tolist(), None, K, False)]

        results = [Result("qdrant-edge (reelvec)", load.wall + index.wall, *_measure(served, w, WARMUP))]
        for ef in efs:
            params = edge._search_params(ef)

            def tuned(q, params=params):
                query = qe.Query.Nearest(q.tolist(), using=FUSED)
                request = qe.QueryRequest(limit=K, query=query, with_payload=[base.VIDEO_ID], params=params)
                return [int(p.payload[base.VIDEO_ID]) for p in store._shard.query(request)]

            results.append(Result(f"qdrant-edge hnsw_ef={ef}", None, *_measure(tuned, w, WARMUP)))
        return results, (load.wall, index.wall, store._shard.info().segments_count)
    finally:
        store.close()


def _local_mode(corpus: np.ndarray, w: Workload, folder: Path) -> Result:
    from qdrant_client import models

    from services.search.stores import base
    from services.search.stores.qdrant import QdrantStore

    store = QdrantStore("bench", modalities.DIMS, path=str(folder))
    try:
        with common.Timer() as load:
            for start in range(0, len(corpus), BATCH):
                points = [
                    models.PointStruct(
                        id=str(base.point_id(str(i))),
                        vector={FUSED: corpus[i].tolist()},
                        payload={base.VIDEO_ID: str(i)},
                    )
                    for i in range(start, min(start + BATCH, len(corpus)))
                ]
                store._client.upsert("bench", points, wait=True)

        def search(q):
            return [int(h.id) for h in store.search(FUSED, q.tolist(), None, K, False)]

        measured = _measure(search, w, warmup=10, budget_s=LOCAL_MODE_BUDGET_S)
        return Result("qdrant-client local mode", load.wall, *measured)
    finally:
        store.close()


def _corpus(generator: Generator, n: int, folder: Path) -> np.ndarray:
    if n <= MEMMAP_ABOVE:
        return generator.corpus(n)
    out = np.lib.format.open_memmap(folder / "corpus.npy", "w+", np.float32, (n, generator.spec.dim))
    return generator.corpus(n, out)


def run(args) -> common.Section:
    from services.search.settings import SearchSettings

    # REELVEC_HNSW_M and the service's other search settings apply here as they do to the service
    settings = config.load(SearchSettings, [])
    spec, sizes = Spec(), _sizes(args)
    efs = _ints(os.environ.get(EF_ENV))
    generator = Generator(spec)
    count = 200 if args.quick else 1000
    queries = generator.queries(count + WARMUP)
    section = common.Section(
        f"Search (fused {spec.dim}-d, clustered, top-{K}, {count} held-out queries, one at a time)",
        ["engine", "vectors", "build s", "p50 ms", "p99 ms", "QPS", f"recall@{K}"],
    )
    load_at_start = os.getloadavg()[0]
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="reelvec-bench-search-") as work:
            work = Path(work)
            corpus = _corpus(generator, n, work)
            w = Workload(queries[:count], queries[count:], exact_topk(corpus, queries[:count]))
            stats = neighbour_stats(corpus)
            edge, (load_s, index_s, segments) = _edge(corpus, w, work / "edge", efs, settings)
            results = [_exact(corpus, w), *edge]
            if n <= LOCAL_MODE_MAX:
                results.append(_local_mode(corpus, w, work / "qdrant"))
            del corpus
        _report(section, n, results)
        section.notes.append(
            f"{_label(n)}: load {load_s:.1f} s + optimize (HNSW build) {index_s:.1f} s into {segments} "
            f"segments; corpus nearest-neighbour cosine {stats['nn_cosine']:.2f}, random pair "
            f"{stats['random_cosine']:.2f} (uniform random vectors: ~0.09 and 0.00); "
            f"peak RSS so far {common.peak_rss_mb():,.0f} MiB"
        )
    section.notes += [
        f"vectors: {spec}",
        "exact: float32 matrix @ query + argpartition (BLAS may use both cores); qdrant-edge: the "
        "service's EdgeStore (int8 copy of the fused vector, rescored) and its search call, graph m "
        f"{settings.hnsw_m}, ef_construct {settings.hnsw_ef_construct}, search hnsw_ef {settings.hnsw_ef}; load "
        f"average {load_at_start:.1f} on {os.cpu_count()} CPUs at the start (shared: p99 moves with it)",
        f"1M: {SIZES_ENV}=1000000 (12 min and 25 GB of disk on 2 cores: docs/benchmarks.md, Search)",
    ]
    if any(n > FUSED_ONLY_ABOVE for n in sizes):
        section.notes.append(f"above {_label(FUSED_ONLY_ABOVE)}: the store holds the fused vector alone "
                             "(latency and recall as the service's; disk and memory less)")
    return section


def _report(section: common.Section, n: int, results: list[Result]) -> None:
    label = _label(n)
    keys = {
        "exact numpy (baseline)": f"exact_{label}",
        "qdrant-edge (reelvec)": label,
        "qdrant-client local mode": f"qdrant_local_{label}",
    }
    for r in results:
        p50, p99 = r.p50_p99
        build = r.build_s if r.build_s is not None else "-"
        section.rows.append([r.engine, f"{n:,}", build, p50, p99, r.qps, f"{r.recall:.3f}"])
        if r.engine in keys:
            key = keys[r.engine]
            section.metrics |= {
                f"search_p50_ms_{key}": p50,
                f"search_p99_ms_{key}": p99,
                f"search_qps_{key}": r.qps,
                f"search_recall10_{key}": r.recall,
            }
            if r.build_s is not None:
                section.metrics[f"search_build_s_{key}"] = r.build_s
    exact, served = results[0], results[1]
    section.metrics[f"search_speedup_vs_exact_{label}"] = served.qps / exact.qps
