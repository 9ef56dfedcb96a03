"""Copy detection from frame descriptors: which stored videos a query copies, and which seconds.

Every indexed video keeps one descriptor per sampled frame (about one a second, reelvec/frames.py):
the visual model's `descriptor` of that frame (its embedding whitened to modalities.FRAME_DIM, a
unit row), with its time. A query is answered in
three steps (docs/copies.md says why each is built so):

1. Candidates: each query frame's nearest stored frames vote for their videos (`vote`), so a short
   excerpt inside a long, unrelated video still brings that video in; a mean vector per video
   cannot see it.
2. Alignment (`align`): the query x reference frame-similarity matrix, then dynamic programming
   over it (a temporal network, as VCSL's TN): the best chain of frame matches that advances in
   time on both sides at a plausible speed, with gaps of up to MAX_GAP_S. Its ends are the copied segment on each side;
   a straight line fitted over the chain must have a slope (speed ratio) in SPEED_RANGE, which
   holds for speed changes at 1 fps where a per-step slope limit breaks. Up to MAX_SEGMENTS
   disjoint chains are taken, best first.
3. Decision: a pair's score is its best segment's score, the frames' mean similarity along the
   chain; scores are comparable across pairs, and a pair is a copy at score >= THRESHOLD when the
   score also stands MARGIN above the background of the copied seconds: how alike those query
   frames look to the other candidates anyway, as VSC's baseline normalizes frame similarities
   against a background set.
"""

import dataclasses

import numpy as np

from reelvec import errors
from reelvec.v1 import common_pb2
from reelvec.vectors import unit

# Frame pairs below this cosine never join a chain: unrelated frames sit below it, edited copies of
# one frame above. Chosen on EfficientNet-Lite0's rows; the whitened descriptors keep it, replayed on
# the held-out sets (docs/copies.md, "Whitening").
MATCH_MIN = 0.6
# The operating point: a chain's mean frame similarity at or above this is a copy.
THRESHOLD = 0.65
# ... and that far above what the query's copied seconds resemble anyway (`frame_background`):
# footage of one kind (one film, one game, generated textures) forms chains of 0.7-0.9 with
# unrelated videos of its kind, but then resembles several of them alike; a copy stands out from
# the rest. Chosen on Big Buck Bunny's edited clips (docs/copies.md, 4 and 6).
MARGIN = 0.12
BACKGROUND_RANK = 2
SAME = 0.95  # frames this alike along a chain are the same footage, whatever else resembles it
# A copy spans at least this many seconds of the query, or half the shorter video: shorter chains
# between clips of one film were its recurring graphics and assets (the same animated disc, the
# same rendered planet), as a channel's intro recurs in all its videos (docs/copies.md, 6).
MIN_COPY_S = 4.0
MIN_VOTERS = 2  # query frames that must find a video among their nearest for it to be aligned
MIN_MATCHES = 3  # frames a chain needs: one or two matching frames are a coincidence (a logo, a black card)
MAX_GAP_S = 3.0  # seconds a chain may skip on either side (cuts, dropped or changed frames)
SPEED_RANGE = (0.5, 2.0)  # reference seconds per query second, fitted over a whole chain
# ... and per move, wider: frames sampled about a second apart land up to half a step off the line
STEP_SPEED = (0.3, 3.0)
MAX_SEGMENTS = 3
ROW_CANDIDATES = 5  # each query frame matches at most this many reference frames
MAX_VIEWS = 16  # crops a query frame may bring (reelvec/frames.py makes 5)
# A view counts only by how far it beats this: the best of six crops is higher than one whole frame
# by chance alone, and crops of two clips of one film meet where their whole frames do not. On the
# debian held-out set 0.10-0.20 kept every picture-in-picture copy found and the false pairs at the
# whole frames' count (0 gave 2.3% false pairs); docs/copies.md, "Views".
VIEW_PENALTY = 0.12


@dataclasses.dataclass(frozen=True)
class Track:
    """A video's frame descriptors: `times` [n] seconds ascending, `vectors` [n, dim] unit rows.
    A query may also carry `views` [n, v, dim]: crops of each frame (reelvec/frames.py `views`),
    so that a stored video shown small inside the query still meets its own frames. Only queries
    have them: stored tracks keep the whole frames."""

    times: np.ndarray
    vectors: np.ndarray
    views: np.ndarray | None = None

    @classmethod
    def of(cls, times, vectors, views=None) -> "Track":
        times = np.asarray(times, np.float64)
        vectors = unit(np.asarray(vectors, np.float32).reshape(len(times), -1), np.float32)
        if views is not None:
            views = unit(np.asarray(views, np.float32).reshape(len(times), -1, vectors.shape[1]), np.float32)
        return cls(times, vectors, views)

    @classmethod
    def from_proto(cls, frames: common_pb2.Frames) -> "Track":
        """INVALID_ARGUMENT, naming what is wrong, for descriptors that do not fit together."""
        n, dim = len(frames.times), frames.dim
        if not n:
            raise errors.InvalidInput("no frame descriptors: the video had no decodable frame")
        if dim <= 0 or len(frames.vectors) != n * dim:
            raise errors.InvalidInput(f"frames: {len(frames.vectors)} values for {n} times of dim {dim}")
        times = np.asarray(frames.times, np.float64)
        if not np.isfinite(times).all() or (np.diff(times) <= 0).any():
            raise errors.InvalidInput("frames: times must be finite and ascending")
        vectors = np.asarray(frames.vectors, np.float32).reshape(n, dim)
        views = None
        if frames.views_per_frame or len(frames.view_vectors):
            per = frames.views_per_frame
            if per <= 0 or per > MAX_VIEWS or len(frames.view_vectors) != n * per * dim:
                raise errors.InvalidInput(
                    f"frames: {len(frames.view_vectors)} view values for {n} times, {per} views a frame "
                    f"(1 to {MAX_VIEWS}) of dim {dim}")
            views = np.asarray(frames.view_vectors, np.float32).reshape(n, per, dim)
        if not np.isfinite(vectors).all() or (views is not None and not np.isfinite(views).all()):
            raise errors.InvalidInput("frames: vectors must be finite")
        return cls.of(times, vectors, views)

    def to_proto(self) -> common_pb2.Frames:
        frames = common_pb2.Frames(times=self.times.tolist(), vectors=self.vectors.ravel().tolist(),
                                   dim=self.vectors.shape[1])
        if self.views is not None:
            frames.view_vectors.extend(self.views.ravel().tolist())
            frames.views_per_frame = self.views.shape[1]
        return frames

    def whole(self) -> "Track":
        """The track without its views: what is stored."""
        return self if self.views is None else Track(self.times, self.vectors)

    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every descriptor to look up, [m, dim]: the whole frames first, then their views; the frame
        each is of [m]; what its similarities lose [m]: 0 for a whole frame, VIEW_PENALTY for a view."""
        n = len(self.times)
        if self.views is None:
            return self.vectors, np.arange(n), np.zeros(n)
        per = self.views.shape[1]
        return (np.concatenate([self.vectors, self.views.reshape(n * per, -1)]),
                np.concatenate([np.arange(n), np.repeat(np.arange(n), per)]),
                np.concatenate([np.zeros(n), np.full(n * per, VIEW_PENALTY)]))

    def similarity(self, ref: "Track") -> np.ndarray:
        """[n, m]: each of this track's frames against each of `ref`'s: the whole frame, or its best
        view less VIEW_PENALTY where that is higher."""
        similarity = self.vectors @ ref.vectors.T
        if self.views is not None:
            similarity = np.maximum(similarity, (self.views @ ref.vectors.T).max(axis=1) - VIEW_PENALTY)
        return similarity

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.times)

    def duration(self) -> float:
        """The seconds the frames stand for, from the first's slot to the last's."""
        return float(self.times[-1] - self.times[0]) + 2 * self.half_step() if len(self.times) else 0.0

    def half_step(self) -> float:
        """Half the spacing of the frames: each stands for that much time on either side."""
        return float(np.median(np.diff(self.times))) / 2 if len(self.times) > 1 else 0.5


@dataclasses.dataclass(frozen=True)
class Segment:
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float


@dataclasses.dataclass(frozen=True)
class Match:
    id: str
    score: float
    segments: tuple[Segment, ...]

    def to_proto(self) -> common_pb2.Copy:
        return common_pb2.Copy(id=self.id, score=self.score, segments=[
            common_pb2.CopiedSegment(**dataclasses.asdict(s)) for s in self.segments])

    def covered(self) -> float:
        """Seconds of the query inside the copied segments."""
        return sum(s.query_end - s.query_start for s in self.segments)


def _steps(query: Track, ref: Track) -> list[tuple[int, int]]:
    """The moves a chain may make, (query frames, reference frames) forward: at most MAX_GAP_S on
    either side, at a speed within STEP_SPEED. Never zero frames of the reference: on footage that
    hardly changes every frame matches every other, and a chain allowed to stand still on the
    reference would crawl along the whole query at a speed no copy has."""
    query_step, ref_step = 2 * query.half_step(), 2 * ref.half_step()
    rows = max(1, int(MAX_GAP_S / max(query_step, 1e-3)))
    cols = max(1, int(MAX_GAP_S / max(ref_step, 1e-3)))
    low, high = STEP_SPEED
    return [(di, dj) for di in range(1, rows + 1) for dj in range(1, cols + 1)
            if low <= dj * ref_step / (di * query_step) <= high]


def _matches(similarity: np.ndarray) -> np.ndarray:
    """The frame pairs that may join a chain: at least MATCH_MIN, and among the best of their row."""
    keep = similarity >= MATCH_MIN
    if similarity.shape[1] > ROW_CANDIDATES:
        kth = np.partition(similarity, -ROW_CANDIDATES, axis=1)[:, -ROW_CANDIDATES][:, None]
        keep &= similarity >= kth
    return keep


def _best_chain(cells: list[tuple[int, int]], weights: list[float], steps: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The chain of cells with the largest weight sum, each move one of `steps`. `cells`: the
    (query frame, reference frame) pairs that may join a chain, in row-major order, each of
    weight > 0. Only these are visited: a row holds at most ROW_CANDIDATES of them, where the
    matrix holds a row of every reference frame. Ties go to the earlier step, then to the earlier
    end cell. [] when there are no cells."""
    score: dict[tuple[int, int], float] = {}
    source: dict[tuple[int, int], tuple[int, int] | None] = {}
    end, end_score = None, 0.0
    for (i, j), weight in zip(cells, weights):
        best, previous = 0.0, None  # a chain may always start afresh
        for di, dj in steps:
            before = score.get((i - di, j - dj))
            if before is not None and before > best:
                best, previous = before, (i - di, j - dj)
        total = score[i, j] = weight + best
        source[i, j] = previous
        if total > end_score:
            end, end_score = (i, j), total
    chain = []
    while end is not None:
        chain.append(end)
        end = source[end]
    return chain[::-1]


def _slope(xs: np.ndarray, ys: np.ndarray) -> float:
    if np.ptp(xs) == 0:
        return 0.0 if np.ptp(ys) == 0 else np.inf
    return float(np.polyfit(xs, ys, 1)[0])


def align(query: Track, ref: Track, similarity: np.ndarray | None = None) -> list[Segment]:
    """The copied segments between two videos, best first; [] when nothing lines up.
    `similarity`: query.similarity(ref), when the caller has it already."""
    if not len(query) or not len(ref):
        return []
    similarity = query.similarity(ref) if similarity is None else similarity
    keep = _matches(similarity)
    if keep.sum() < MIN_MATCHES:
        return []
    rows, cols = np.nonzero(keep)  # row-major, as _best_chain walks them
    # weights centred on MATCH_MIN: a chain grows while its frames match better than chance
    weights = similarity[rows, cols] - MATCH_MIN + 1e-3
    steps = _steps(query, ref)
    hq, hr = query.half_step(), ref.half_step()
    segments = []
    for _ in range(MAX_SEGMENTS):
        chain = _best_chain(list(zip(rows.tolist(), cols.tolist())), weights.tolist(), steps)
        if len(chain) < MIN_MATCHES:
            break
        chain_rows, chain_cols = (np.array(axis) for axis in zip(*chain))
        # the next chain may not reuse these seconds of either video
        free = ((rows < chain_rows.min()) | (rows > chain_rows.max())) & (
            (cols < chain_cols.min()) | (cols > chain_cols.max()))
        rows, cols, weights = rows[free], cols[free], weights[free]
        qt, rt = query.times[chain_rows], ref.times[chain_cols]
        if not SPEED_RANGE[0] <= _slope(qt, rt) <= SPEED_RANGE[1]:
            continue
        segments.append(Segment(
            query_start=max(0.0, float(qt[0]) - hq), query_end=float(qt[-1]) + hq,
            ref_start=max(0.0, float(rt[0]) - hr), ref_end=float(rt[-1]) + hr,
            score=float(similarity[chain_rows, chain_cols].mean()),
        ))
    return sorted(segments, key=lambda s: -s.score)


def vote(frame_hits, limit: int) -> list[str]:
    """The videos whose frames came back most for the query's frames, at most `limit`, best first.
    `frame_hits`: per query frame, (video id, score) pairs of its nearest stored frames. A video's
    vote is the sum over query frames of its best frame's similarity above MATCH_MIN; one that only
    MIN_VOTERS - 1 query frames voted for is no candidate: a lone frame above chance is a
    coincidence, and aligning every such video made the slowest queries."""
    votes: dict[str, float] = {}
    voters: dict[str, int] = {}
    for hits in frame_hits:
        best: dict[str, float] = {}
        for video_id, score in hits:
            if score >= MATCH_MIN and score > best.get(video_id, -1.0):
                best[video_id] = score
        for video_id, score in best.items():
            votes[video_id] = votes.get(video_id, 0.0) + score - MATCH_MIN + 1e-3
            voters[video_id] = voters.get(video_id, 0) + 1
    kept = [v for v in votes if voters[v] >= MIN_VOTERS]
    return sorted(kept, key=lambda v: -votes[v])[:limit]


def frame_background(best: np.ndarray) -> np.ndarray:
    """What each query frame resembles anyway, per candidate: `best` [candidates, query frames],
    each frame's best similarity to each candidate; row c of the result is, frame by frame, the
    BACKGROUND_RANK-th best of the other candidates (0 where there are fewer). The rank tolerates
    a source stored twice."""
    n = len(best)
    if n <= BACKGROUND_RANK:
        return np.zeros_like(best)
    rows = np.arange(n)
    return np.stack([np.sort(best[rows != c], axis=0)[-BACKGROUND_RANK] for c in range(n)])


def weigh(query: Track, candidates: dict[str, Track]) -> dict[str, tuple[list[Segment], float, float]]:
    """What the decision weighs for each candidate: its segments with the query, best first; the
    background behind the best, the mean of frame_background over the query frames that segment
    spans (0 without a segment); and the shorter video's duration."""
    ids = list(candidates)
    similarities = [query.similarity(candidates[video_id]) for video_id in ids]
    background = frame_background(np.stack([s.max(axis=1) for s in similarities])) if ids else None
    length = query.duration()
    weighed = {}
    for c, video_id in enumerate(ids):
        segments = align(query, candidates[video_id], similarities[c])
        behind = 0.0
        if segments:
            span = (query.times >= segments[0].query_start) & (query.times <= segments[0].query_end)
            behind = float(background[c][span].mean()) if span.any() else 0.0
        weighed[video_id] = (segments, behind, min(length, candidates[video_id].duration()))
    return weighed


def decide(segments: list[Segment], behind: float, shorter: float, threshold: float = THRESHOLD) -> bool:
    """A copy: a chain scoring at least `threshold`, either SAME or at least MARGIN above the
    background `behind`, and spanning MIN_COPY_S of the query or half the `shorter` video."""
    if not segments or segments[0].score < threshold:
        return False
    best = segments[0]
    if best.query_end - best.query_start < min(MIN_COPY_S, shorter / 2):
        return False
    return best.score >= SAME or best.score - behind >= MARGIN


def find(query: Track, candidates: dict[str, Track], threshold: float = THRESHOLD) -> list[Match]:
    """The candidates the decision calls copies of the query, best first."""
    found = [Match(video_id, segments[0].score, tuple(segments))
             for video_id, (segments, behind, shorter) in weigh(query, candidates).items()
             if decide(segments, behind, shorter, threshold)]
    return sorted(found, key=lambda m: (-m.score, m.id))
