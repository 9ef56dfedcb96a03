"""Search: k-NN on the fused vector (what Predict searches) over clustered vectors (bench/vectors.py):
exact numpy brute force beside the embedded store as the service opens it, once per quantization of
the fused vector (float32 HNSW, int8, binary 1 and 2 bits; services/search/stores/quantization.py),
each with its build time, RAM and disk per video, recall@10 and latency; qdrant-client's local mode
at 10k (what a user picking `--store qdrant` without a server gets); and the frame descriptors of
copy detection, RAM and disk per video-minute.

Sizes: 10k (quick) or 10k and 100k; REELVEC_BENCH_SEARCH_SIZES=10000,100000,1000000 (or an
`args.search_sizes` string) picks others. REELVEC_BENCH_SEARCH_QUANTIZATIONS=none,int8,binary@8,
int8:disk,pq picks the variants (kind[@oversampling][:disk]). REELVEC_BENCH_SEARCH_EF=64,256 adds
rows that re-query each variant's build with other search-time hnsw_ef values: the knob that
trades recall for latency. REELVEC_BENCH_SEARCH_RESCORE=1,1.5,off re-queries each quantized build
(at each of those hnsw_ef, or the service's) rescoring that many candidates per hit, or none: with
the originals on disk, each rescored candidate is a read. REELVEC_BENCH_SEARCH_OPTIMIZE_EVERY=5000
indexes every 5,000 points, as the service's store does every `optimize_after` writes, instead of
in stages of millions; REELVEC_BENCH_SEARCH_MAX_SEGMENT_MB=0,16384 builds each variant once per
segment cap (the service's max_segment_mb; 0: Qdrant's default), since a query searches every
segment that the optimizer leaves. Queries run one at a time from one thread; an engine may use both
cores inside a query.
"""

import dataclasses
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from bench import common, footprint
from bench.vectors import Generator, Spec, neighbour_stats
from reelvec import config, modalities
from services.search.stores import quantization
from services.search.stores.quantization import Quantization

K = 10
FUSED = modalities.FUSED
SIZES_ENV, EF_ENV = "REELVEC_BENCH_SEARCH_SIZES", "REELVEC_BENCH_SEARCH_EF"
RESCORE_ENV, NOT_RESCORED = "REELVEC_BENCH_SEARCH_RESCORE", "off"
EVERY_ENV, SEGMENTS_ENV = "REELVEC_BENCH_SEARCH_OPTIMIZE_EVERY", "REELVEC_BENCH_SEARCH_MAX_SEGMENT_MB"
VARIANTS_ENV, BUDGET_ENV = "REELVEC_BENCH_SEARCH_QUANTIZATIONS", "REELVEC_BENCH_SEARCH_BUDGET_S"
# Product quantization is left to VARIANTS_ENV: its codebooks took 409 s to train at 10k on 2 cores,
# where the others build in 3-20 s.
VARIANTS = "none,int8,binary,binary2"
# Once a size has spent this long, its remaining variants are skipped (and say so), so that `make
# bench` stays bounded on 2 shared cores whatever the variants asked: at 100k the four default
# variants took 11 minutes on a busy day. REELVEC_BENCH_SEARCH_BUDGET_S=0 lifts it (1M and above).
QUICK_BUDGET_S, FULL_BUDGET_S = 300.0, 900.0
LOCAL_MODE_MAX = 10_000  # qdrant-client local mode is pure-Python brute force: slow beyond that
LOCAL_MODE_BUDGET_S = 120.0  # stop its queries after this long and report what was measured
# Bigger corpora are not held: every pass (the ground truth, each variant's load) generates them
# again, chunk by chunk, about 4 minutes a pass at 4M. Held in a file they took 7.4 GB of disk a
# million beside the shard being built, and at 4M the two did not fit on this machine's disk.
HELD_MAX = 200_000
# The exact baseline scans a float32 matrix in memory: it is timed over the first million rows at
# most (7.4 GB) and its latency scaled to the corpus, since a scan is linear in the rows it reads.
EXACT_TIMED_MAX = 1_000_000
# Beyond this the store is opened with the fused vector alone. The service's store also allocates
# the visual, audio and text storages for every point, zeros where absent: at 1M that is ~40 GB of
# shard, more than the disk here holds. A query reads only the fused vector's storage and graph,
# so latency and recall are the service's; disk and memory are not (docs/benchmarks.md).
FUSED_ONLY_ABOVE = 200_000
BATCH = 256  # points per upsert call while loading
# An optimize needs free disk for twice the segments it rewrites: at 4M loaded at once Edge refused
# (56.95 GiB needed, 46.92 free beside the loaded 28 GiB). Indexing after every 2M keeps each rewrite
# to 2M vectors (up to 2M the build is one load and one optimize, as before); the segments already
# indexed are far past Qdrant's merge size, so they are not rewritten again.
STAGE_ROWS = 2_000_000
FLUSH_EVERY = 64  # batches
# Untimed queries before the store's timed ones. Right after optimize() the new segments' pages are
# not in memory yet, and whichever row ran first paid for faulting them in (seen at 100k with 200
# warm-up queries: p50 1.96 ms for the first row, 1.61 ms for the same settings re-run later).
WARMUP = 500
# A build needs its segments and, while the optimizer rewrites them, the new ones beside them:
# about twice the stored vectors, plus the WAL's preallocated files and the service's disk reserve.
BUILD_DISK_FACTOR, BUILD_DISK_SPARE = 2.5, 2 << 30
# The copy-detection frames (reelvec/copies.py): about one descriptor a second of video.
FRAMES_PER_SECOND, FRAME_VIDEO_SECONDS = 1, 60
TEN_MILLION = 10_000_000


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
    key: str = ""  # its metrics' name in latest.json, "" for none
    ram_per_video: float | None = None
    ram_originals_on_disk: float | None = None  # the same shard's, had its originals been on disk
    disk_per_video: float | None = None
    segments: int | None = None  # what each query searched

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


def rescorings(raw: str | None, q: Quantization) -> list[Quantization]:
    """The search-time variants of a quantized build that RESCORE_ENV names ("1.5,off"), in order.
    A mode may come again, its own included: alternating two ("2,1.5,2,1.5") shows whether a
    difference between them is theirs or the page cache warming from one row to the next."""
    if not raw or not q.quantized:
        return []
    return [dataclasses.replace(q, rescore=False) if mode.strip() == NOT_RESCORED
            else dataclasses.replace(q, oversampling=float(mode), rescore=True)
            for mode in raw.split(",") if mode.strip()]


def _sizes(args) -> list[int]:
    chosen = _ints(getattr(args, "search_sizes", None) or os.environ.get(SIZES_ENV))
    return chosen or ([10_000] if args.quick else [10_000, 100_000])


def parse_variant(spec: str) -> Quantization:
    """kind[@oversampling][:disk], e.g. binary@8:disk; errors say what is accepted."""
    spec, _, place = spec.strip().partition(":")
    kind, _, oversampling = spec.partition("@")
    if place not in ("", quantization.DISK):
        raise ValueError(f"{VARIANTS_ENV}: {spec}:{place}: only ':disk' may follow a variant")
    originals = quantization.DISK if place else quantization.MEMORY
    return Quantization(kind, float(oversampling or 0), originals=originals)


def _variants(args) -> list[Quantization]:
    raw = getattr(args, "search_quantizations", None) or os.environ.get(VARIANTS_ENV) or VARIANTS
    return [parse_variant(spec) for spec in raw.split(",") if spec.strip()]


def _budget_s(args) -> float | None:
    raw = os.environ.get(BUDGET_ENV)
    if raw:
        return float(raw) or None
    return QUICK_BUDGET_S if args.quick else FULL_BUDGET_S


def describe(q: Quantization, default: Quantization) -> str:
    if not q.quantized:
        name = "float32 HNSW"
    else:
        name = f"{q.kind} + rescore x{q.candidates_per_hit:g}" if q.rescore else f"{q.kind}, not rescored"
    if q.originals == quantization.DISK:
        name += ", originals on disk"
    return f"qdrant-edge {name}" + (" (service default)" if q == default else "")


def _metric_name(q: Quantization) -> str:
    over = f"_x{q.oversampling:g}" if q.oversampling else ""
    return q.kind + over + ("_disk" if q.originals == quantization.DISK else "")


@dataclasses.dataclass
class Corpus:
    """The first n vectors of the generator, held in memory up to HELD_MAX and generated again on
    every pass beyond."""

    generator: Generator
    n: int
    held: np.ndarray | None = None

    @classmethod
    def of(cls, generator: Generator, n: int) -> "Corpus":
        return cls(generator, n, generator.corpus(n) if n <= HELD_MAX else None)

    def __len__(self) -> int:
        return self.n

    def blocks(self, rows: int = 32768) -> Iterator[tuple[int, np.ndarray]]:
        """(offset, rows) in order, once over the corpus."""
        if self.held is not None:
            for start in range(0, self.n, rows):
                yield start, self.held[start : start + rows]
        else:
            for start, vectors, _ in self.generator.chunks(self.n):
                yield start, vectors

    def prefix(self, m: int) -> np.ndarray:
        """The first min(m, n) rows, in memory."""
        return self.held[:m] if self.held is not None else self.generator.corpus(min(m, self.n))


def exact_topk(blocks: Iterable[tuple[int, np.ndarray]], queries: np.ndarray, k: int = K) -> np.ndarray:
    """Ground truth: ids of the k most similar rows per query, in one pass over the corpus's blocks
    (so a generated 4M corpus is made once, not once per query)."""
    best = np.empty((len(queries), 0), np.float32)
    best_ids = np.empty((len(queries), 0), np.int64)
    for start, rows in blocks:
        block = queries @ rows.T
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


def _exact(timed: np.ndarray, w: Workload, n: int) -> Result:
    """The brute force timed over `timed`, the corpus's first rows, and scaled to n of them."""
    def search(q):
        scores = timed @ q  # rows are unit length: this is cosine
        top = np.argpartition(-scores, K - 1)[:K]
        return top[np.argsort(-scores[top])].tolist()

    # a 1M-row scan reads 7.4 GB per query: 100 queries still give the percentiles
    limit = max(100, 10**8 // len(timed))
    latencies, recall = _measure(search, w, warmup=10, limit=limit)
    scale = n / len(timed)
    engine = "exact numpy (baseline)"
    if scale > 1:  # the first rows miss most of the truth; the scan over all of them is exact_topk's
        engine += f", timed over the first {_label(len(timed))} x {scale:g}"
        recall = 1.0
    # RAM: the float32 matrix it scans, 4 bytes a dimension
    return Result(engine, None, [t * scale for t in latencies], recall, key="exact",
                  ram_per_video=4.0 * timed.shape[1], disk_per_video=4.0 * timed.shape[1])


def _build_edge(store, corpus: Corpus, every: int = STAGE_ROWS) -> tuple[float, float]:
    """Loads the corpus and indexes it, `every` rows at a time; (load s, optimize s)."""
    import qdrant_edge as qe

    from services.search.stores import base

    # Batched through the shard (the service upserts one video per call): the same points
    # EdgeStore.upsert writes, without timing 100k gRPC-sized calls as "build".
    batches = 0
    load_s = optimize_s = 0.0
    started, stage_end = time.perf_counter(), every
    for offset, rows in corpus.blocks():
        for start in range(0, len(rows), BATCH):
            stop = min(start + BATCH, len(rows))
            points = [
                qe.Point(base.point_id(str(offset + i)), {FUSED: rows[i].tolist()}, {base.VIDEO_ID: str(offset + i)})
                for i in range(start, stop)
            ]
            store._shard.update(qe.UpdateOperation.upsert_points(points))
            batches += 1
            if batches % FLUSH_EVERY == 0:
                store.flush()  # as the service's store does every few seconds: the WAL stays small
            if offset + stop >= stage_end or offset + stop == len(corpus):
                load_s += time.perf_counter() - started
                with common.Timer() as index:
                    store.optimize()  # ends with a flush: the segments on disk are complete
                optimize_s += index.wall
                started, stage_end = time.perf_counter(), stage_end + every
    return load_s, optimize_s


def _layout(settings, every: int) -> tuple[str, str]:
    """How a build's segments were laid out, as (label suffix, metric suffix); the default's: empty."""
    label, key = "", ""
    if every != STAGE_ROWS:
        label, key = f", indexed every {every:,}", f"_every{every}"
    if settings.max_segment_mb:
        label, key = label + f", segments up to {settings.max_segment_mb:,} MB", key + f"_seg{settings.max_segment_mb}mb"
    return label, key


def _edge(corpus: Corpus, w: Workload, folder: Path, q: Quantization, efs: list[int], settings,
          every: int = STAGE_ROWS):
    import qdrant_edge as qe

    from services.search.catalog import open_edge_store
    from services.search.stores import base, edge

    # Opened exactly as the service opens a collection with this quantization, so a settings change
    # there is what gets measured; only the idle watcher is off: the benchmark calls optimize().
    dims = {FUSED: modalities.DIMS[FUSED]} if len(corpus) > FUSED_ONLY_ABOVE else modalities.DIMS
    store = open_edge_store(dataclasses.replace(settings, optimize_after=0), folder, dims, q)
    default = Quantization.of(settings)
    try:
        load_s, optimize_s = _build_edge(store, corpus, every)
        assert store.indexed_vectors_count >= len(corpus), "optimize() left vectors unindexed"
        parts = footprint.of_vector(folder, FUSED)
        resident = q.originals == quantization.MEMORY or not q.quantized

        def served(query):
            return [int(h.id) for h in store.search(FUSED, query.tolist(), None, K, False)]

        layout, layout_key = _layout(settings, every)
        row = Result(describe(q, default) + layout, load_s + optimize_s, *_measure(served, w, WARMUP),
                     key=_metric_name(q) + layout_key, ram_per_video=parts.ram(resident) / len(corpus),
                     ram_originals_on_disk=parts.ram(not q.quantized) / len(corpus),
                     disk_per_video=parts.disk / len(corpus), segments=store._shard.info().segments_count)
        results = [row]
        modes = rescorings(os.environ.get(RESCORE_ENV), q)
        # Re-queries of this build: no rebuild, seconds each. Quantization's rescoring and
        # oversampling are search-time parameters, so they are re-queried like hnsw_ef.
        for ef, mode in [(ef, q) for ef in efs] + [(ef, m) for ef in efs or [settings.hnsw_ef] for m in modes]:
            params = edge._search_params(ef, mode)

            def tuned(query, params=params):
                nearest = qe.Query.Nearest(query.tolist(), using=FUSED)
                request = qe.QueryRequest(limit=K, query=nearest, with_payload=[base.VIDEO_ID], params=params)
                return [int(p.payload[base.VIDEO_ID]) for p in store._shard.query(request)]

            engine = row.engine if mode == q else describe(mode, default) + layout
            results.append(Result(f"{engine} hnsw_ef={ef}", None, *_measure(tuned, w, WARMUP)))
        return results, (load_s, optimize_s, row.segments)
    finally:
        store.close()


def _local_mode(corpus: np.ndarray, w: Workload, folder: Path, budget_s: float) -> Result:
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

        measured = _measure(search, w, warmup=10, budget_s=budget_s)
        return Result("qdrant-client local mode", load.wall, *measured, key="qdrant_local")
    finally:
        store.close()


def _disk_needed(n: int, dims: int) -> int:
    return int(n * 4 * dims * BUILD_DISK_FACTOR) + BUILD_DISK_SPARE


def _frames(settings, folder: Path, videos: int) -> dict:
    """The frames shard after `videos` one-minute videos are upserted as the service writes them
    (frame points and one track point each) and indexed: its parts per video-minute."""
    from reelvec import copies
    from services.search.stores import base
    from services.search.stores.edge import EdgeStore

    per_video = FRAMES_PER_SECOND * FRAME_VIDEO_SECONDS
    rows = Generator(Spec(dim=modalities.FRAME_DIM, seed=7)).corpus(videos * per_video)
    # A threshold of 1 kB indexes every segment, as a corpus of real size would be.
    store = EdgeStore(folder, modalities.DIMS, optimize_after=0, indexing_threshold_kb=1,
                      hnsw_m=settings.hnsw_m, hnsw_ef_construct=settings.hnsw_ef_construct)
    try:
        with common.Timer() as build:
            times = np.arange(per_video, dtype=np.float64) / FRAMES_PER_SECOND
            for v in range(videos):
                track = copies.Track.of(times, rows[v * per_video : (v + 1) * per_video])
                store.upsert(base.StoredVideo(str(v), {}, {}, frames=track))
            store.optimize()
    finally:
        store.close()
    parts = footprint.of_vector(folder / "frames", base.FRAME)
    minutes = videos * FRAME_VIDEO_SECONDS / 60
    return {"minutes": minutes, "frames": len(rows), "build_s": build.wall,
            "ram_resident": parts.ram(True) / minutes, "ram_on_disk": parts.ram(False) / minutes,
            "disk": parts.disk / minutes, "parts": {k: v / minutes for k, v in parts.parts.items()}}


def run(args) -> common.Section:
    from services.search.settings import SearchSettings

    # REELVEC_HNSW_M and the service's other search settings apply here as they do to the service
    settings = config.load(SearchSettings, [])
    spec, sizes, variants = Spec(), _sizes(args), _variants(args)
    efs = _ints(os.environ.get(EF_ENV))
    every = int(os.environ.get(EVERY_ENV) or 0) or STAGE_ROWS
    layouts = [dataclasses.replace(settings, max_segment_mb=mb) for mb in _ints(os.environ.get(SEGMENTS_ENV))] or [settings]
    budget = _budget_s(args)
    generator = Generator(spec)
    count = 200 if args.quick else 1000
    queries = generator.queries(count + WARMUP)
    section = common.Section(
        f"Search (fused {spec.dim}-d, clustered, top-{K}, {count} held-out queries, one at a time)",
        ["engine", "vectors", "build s", "RAM B/video", "originals on disk", "disk B/video", "p50 ms", "p99 ms",
         "QPS", f"recall@{K}"],
    )
    load_at_start = os.getloadavg()[0]
    measured: dict[int, list[Result]] = {}
    for n in sizes:
        started = time.monotonic()
        skipped = []
        with tempfile.TemporaryDirectory(prefix="reelvec-bench-search-") as work:
            work = Path(work)
            corpus = Corpus.of(generator, n)
            w = Workload(queries[:count], queries[count:], exact_topk(corpus.blocks(), queries[:count]))
            timed = corpus.prefix(EXACT_TIMED_MAX)
            stats = neighbour_stats(timed)
            results, builds = [_exact(timed, w, n)], []
            del timed  # 7.4 GB at 1M: not kept beside the builds
            stored_dims = spec.dim if n > FUSED_ONLY_ABOVE else sum(modalities.DIMS.values())
            for q, laid_out in [(q, laid_out) for q in variants for laid_out in layouts]:
                free = shutil.disk_usage(work).free
                if budget is not None and time.monotonic() - started > budget:
                    skipped.append(f"{describe(q, Quantization.of(settings))} (the {budget:.0f} s budget was spent)")
                    continue
                if free < _disk_needed(n, stored_dims):
                    skipped.append(f"{describe(q, Quantization.of(settings))} (needs about "
                                   f"{_disk_needed(n, stored_dims) / 2**30:.0f} GiB of disk, {free / 2**30:.0f} free)")
                    continue
                folder = work / f"edge-{_metric_name(q)}{_layout(laid_out, every)[1]}"
                rows, build = _edge(corpus, w, folder, q, efs, laid_out, every)
                shutil.rmtree(folder)  # before the next variant: at 1M each shard is 8-9 GB
                results += rows
                builds.append((rows[0].engine, *build))
            if n <= LOCAL_MODE_MAX:
                local_budget = LOCAL_MODE_BUDGET_S / 4 if args.quick else LOCAL_MODE_BUDGET_S
                results.append(_local_mode(corpus.prefix(n), w, work / "qdrant", local_budget))
            del corpus
        measured[n] = results
        sampled = f" (over its first {_label(EXACT_TIMED_MAX)})" if n > EXACT_TIMED_MAX else ""
        _report(section, n, results, Quantization.of(settings))
        section.notes.append(
            f"{_label(n)}: corpus nearest-neighbour cosine {stats['nn_cosine']:.2f}{sampled}, random pair "
            f"{stats['random_cosine']:.2f} (uniform random vectors: ~0.09 and 0.00); builds (load + optimize, "
            "segments): " + "; ".join(f"{engine}: {load:.1f} + {index:.1f} s, {segments}"
                                      for engine, load, index, segments in builds)
            + f"; peak RSS so far {common.peak_rss_mb():,.0f} MiB")
        section.notes += [f"{_label(n)}: skipped {what}" for what in skipped]
    with tempfile.TemporaryDirectory(prefix="reelvec-bench-frames-") as work:
        frames = _frames(settings, Path(work), videos=20 if args.quick else 100)
    _report_frames(section, frames)
    section.notes += [
        f"vectors: {spec}",
        "RAM B/video: what a query touches, from the shard's files after the build: the compressed copy, "
        "the graph, the id tracker and payload indexes, and the float32 originals where they are kept in "
        "memory (or no compressed copy exists); originals on disk: the same shard's RAM without them (the "
        "arithmetic, not a second build: the files are the same); disk B/video: every segment file of the fused vector and "
        "the shared ones (other vectors' storages and the WAL left out); exact numpy: its float32 matrix",
        "exact: float32 matrix @ query + argpartition (BLAS may use both cores); qdrant-edge: the "
        "service's EdgeStore with the fused vector quantized as named, rescored on the float32 originals, "
        f"graph m {settings.hnsw_m}, ef_construct {settings.hnsw_ef_construct}, search hnsw_ef "
        f"{settings.hnsw_ef}; load average {load_at_start:.1f} on {os.cpu_count()} CPUs at the start "
        "(shared: p99 moves with it)",
        f"1M: {SIZES_ENV}=1000000 (each variant builds its own shard, one at a time, deleted before the "
        "next: docs/search.md, Quantization, has the time and disk it takes)",
    ]
    if len(measured) > 1 and max(measured) >= 1_000_000:
        section.notes += extrapolate(measured)
    if any(n > FUSED_ONLY_ABOVE for n in sizes):
        section.notes.append(f"above {_label(FUSED_ONLY_ABOVE)}: the store holds the fused vector alone "
                             "(latency and recall as the service's; disk and memory less)")
    return section


def extrapolate(measured: dict[int, list[Result]]) -> list[str]:
    """10M from the largest measured size: RAM per video as measured there (the compressed copy and
    the graph grow linearly), build time as n log n, p99 as log n (the hops of a graph walk). Recall
    is not extrapolated: the trend over the sizes is printed for the reader to judge."""
    largest = max(measured)
    grow = TEN_MILLION * math.log(TEN_MILLION) / (largest * math.log(largest))
    hops = math.log(TEN_MILLION) / math.log(largest)
    notes = []
    for r in measured[largest]:
        if r.build_s is None or r.ram_per_video is None:
            continue
        trend = ", ".join(f"{_label(n)} {x.recall:.3f}" for n in sorted(measured) for x in measured[n] if x.engine == r.engine)
        _, p99 = r.p50_p99
        notes.append(
            f"10M, extrapolated from {_label(largest)} ({r.engine}): RAM {r.ram_per_video:,.0f} B x 10M = "
            f"{r.ram_per_video * TEN_MILLION / 2**30:,.1f} GiB; build {r.build_s:,.0f} s x {grow:.1f} (n log n) = "
            f"{r.build_s * grow / 3600:,.1f} h; p99 {p99:.2f} ms x {hops:.2f} (log n) = {p99 * hops:.2f} ms; "
            f"recall@10 by size: {trend}")
    return notes


def _report(section: common.Section, n: int, results: list[Result], default: Quantization) -> None:
    label = _label(n)
    for r in results:
        p50, p99 = r.p50_p99
        build = r.build_s if r.build_s is not None else "-"
        ram, slim, disk = (x if x is not None else "-" for x in (r.ram_per_video, r.ram_originals_on_disk, r.disk_per_video))
        section.rows.append([r.engine, f"{n:,}", build, ram, slim, disk, p50, p99, r.qps, f"{r.recall:.3f}"])
        if not r.key:
            continue
        keys = [f"{r.key}_{label}"]
        if r.key == _metric_name(default):
            keys.append(label)  # the service's store, under the names earlier runs used
        for key in keys:
            section.metrics |= {
                f"search_p50_ms_{key}": p50,
                f"search_p99_ms_{key}": p99,
                f"search_qps_{key}": r.qps,
                f"search_recall10_{key}": r.recall,
            }
            if r.build_s is not None:
                section.metrics[f"search_build_s_{key}"] = r.build_s
            if r.segments is not None:
                section.metrics[f"search_segments_{key}"] = r.segments
            if r.ram_per_video is not None:
                section.metrics[f"search_ram_bytes_per_video_{key}"] = r.ram_per_video
            if r.ram_originals_on_disk is not None:
                section.metrics[f"search_ram_bytes_per_video_originals_on_disk_{key}"] = r.ram_originals_on_disk
    served = next((r for r in results if r.key == _metric_name(default)), None)
    if served is not None:
        section.metrics[f"search_speedup_vs_exact_{label}"] = served.qps / results[0].qps


def _report_frames(section: common.Section, frames: dict) -> None:
    what = f"{frames['minutes']:,.0f} video-minutes"
    per_minute = "frame descriptors (copies), per video-minute"

    def kib(size: float) -> str:  # per video-minute, not per video: the unit goes in the cell
        return f"{size / 1024:,.0f} KiB/min"

    section.rows += [
        [f"{per_minute} (int8 copy, originals as stored)", what, frames["build_s"], kib(frames["ram_resident"]),
         kib(frames["ram_on_disk"]), kib(frames["disk"]), "-", "-", "-", "-"],
    ]
    section.metrics |= {"search_frames_ram_bytes_per_minute": frames["ram_resident"],
                        "search_frames_ram_bytes_per_minute_originals_on_disk": frames["ram_on_disk"],
                        "search_frames_disk_bytes_per_minute": frames["disk"]}
    parts = ", ".join(f"{name} {size / 1024:,.0f} KiB" for name, size in frames["parts"].items())
    section.notes.append(
        f"frame descriptors: {frames['frames']:,} frames of {modalities.FRAME_DIM}-d at "
        f"{FRAMES_PER_SECOND} a second, written as the service writes them (a frame point each, int8 copy, and one "
        f"track point a video holding the rows again); per video-minute: {parts} (payload: the track points' rows)")
