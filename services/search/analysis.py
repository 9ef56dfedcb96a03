"""What the corpus says about one video: similar videos, originality, near-duplicate, hashtags,
and the stored videos it copies (or that copy it), with the seconds copied.

Formulas (docs/search.md explains the choices):
- neighbours: the nearest stored videos by the fused vector, or by the visual one when the video has
  no fused vector; `exclude_id` (the video itself, when already indexed) is never a neighbour.
- originality, method "similarity" (the default) = 1 - clip(max(mean cosine similarity of the top
  ORIGINALITY_NEIGHBOURS neighbours, similarity of the closest visual match), 0, 1); fewer
  neighbours are averaged as they are, and an empty corpus gives 1.0. With a calibrated method
  (originality.py: knn, isolation_forest, lof) it is min(calibrated originality, 1 - closest visual
  match). The closest visual match bounds both because a re-upload of one indexed clip is not
  original however different the rest of the neighbourhood is (a copy without its sound scores
  only ~0.7 on the fused vector); the same bytes count as similarity 1.
  When the video's frames found copies, originality is also at most 1 - the largest share of the
  video's duration that one copy's segments cover (the duration: the last frame's time plus half
  a step, the time that frame stands for). A full copy scores 0, a 6 s excerpt inside a 30 s clip
  at most 0.8: what was copied is not original, the rest may be.
- copies (find_copies): each frame of the video votes for the stored videos whose frames are
  nearest to it, and the best voted are aligned frame by frame (reelvec/copies.py); those the
  decision calls copies come back, best first, with their segments.
- near duplicate: a stored video with the same content_sha256 (the same bytes); else, when the
  video has frames, the best copy (none when there is none); else, for a video without frames
  (one indexed before frames existed), the top visual neighbour when its visual cosine similarity
  is >= the threshold. Frames come first because one mean vector cannot see a crop or a trim
  (0.75-0.85 there, under the threshold) nor an excerpt at all.
- hashtags: only neighbours at least HASHTAG_MIN_SIMILARITY similar vote, each with weight
  exp((s - s_best) / HASHTAG_TEMPERATURE), so the closest videos dominate and a crowd of middling
  ones cannot outvote them; score(tag) = sum of the weights of the voters carrying it, divided by
  the best tag's (the best tag scores 1). Tags under HASHTAG_MIN_SCORE, and tags the caller already
  has, are dropped; the best HASHTAG_SUGGESTIONS kept. Tags compare without '#', lowercased.
  (A plain similarity sum over 20 neighbours let three mediocre "fitness" videos outvote the one
  close "food" video on the sample corpus: docs/search.md.)
"""

import dataclasses
import math
import threading
from collections import defaultdict

import numpy as np

from reelvec import copies, errors, modalities
from reelvec.copies import Match, Track
from reelvec.originality import (
    FIT_SAMPLE,
    MIN_CORPUS,
    ORIGINALITY_NEIGHBOURS,
    Calibrated,
    similarity_originality,
)
from services.search.stores import base

HASHTAG_NEIGHBOURS = 20
HASHTAG_SUGGESTIONS = 10
HASHTAG_MIN_SIMILARITY = 0.5  # fused cosine; unrelated videos sit around 0.2-0.4
HASHTAG_TEMPERATURE = 0.05  # 0.1 less similar than the best neighbour: weight e^-2 = 0.14
HASHTAG_MIN_SCORE = 0.2

# Copies: each frame of the query asks the frame index for its FRAME_NEIGHBOURS nearest stored
# frames. More than a few, because the frames of one shot are nearly alike: a static shot of one
# stored video can fill a query frame's nearest with its neighbouring seconds, and a copy's source
# must still reach the list beside them.
FRAME_NEIGHBOURS = 20
# A query frame's views (copies.Track.views) search narrower: there are five of them a frame, and
# with the whole frame's breadth they made an upload's frame search about 4x the cost (bench copies:
# p50 106 ms against 26 at 10k videos). A view only has to find a source shown inside the query,
# which its own frames meet far above chance, not a neighbour among many alike.
VIEW_NEIGHBOURS, VIEW_EF = 10, 32
# The videos those frames voted for most (copies.vote) are aligned with the query, at most
# CANDIDATES: each alignment costs a fetch of the video's frames, a similarity matrix and a pass of
# dynamic programming, so this bounds the call's cost, while the source of even a few copied
# seconds gets a vote from each of them, more than a chance neighbour collects.
CANDIDATES = 20


@dataclasses.dataclass
class Analysis:
    originality: float
    near_duplicate_of: str  # empty when none
    hashtags: list[tuple[str, float]]  # best first
    similar: list[base.Hit]
    copies: list[Match] = dataclasses.field(default_factory=list)  # best first


def _tag(text: str) -> str:
    return text.strip().lstrip("#").lower()


def suggest_hashtags(
    neighbours: list[base.Hit], known: list[str], limit: int = HASHTAG_SUGGESTIONS
) -> list[tuple[str, float]]:
    voters = [hit for hit in neighbours if hit.score >= HASHTAG_MIN_SIMILARITY]
    if not voters:
        return []
    best_similarity = max(hit.score for hit in voters)
    scores: dict[str, float] = defaultdict(float)
    for hit in voters:
        weight = math.exp((hit.score - best_similarity) / HASHTAG_TEMPERATURE)
        for tag in {_tag(t) for t in base.payload_value(hit.video.payload, base.HASHTAGS, [])} - {""}:
            scores[tag] += weight
    best = max(scores.values(), default=0.0)
    skip = {_tag(t) for t in known}
    ranked = sorted(
        ((tag, score / best) for tag, score in scores.items()
         if score / best >= HASHTAG_MIN_SCORE and tag not in skip),
        key=lambda item: (-item[1], item[0]),
    )
    return ranked[:limit]


def find_copies(
    store: base.VideoStore, query: Track, k: int, exclude_id: str = ""
) -> list[tuple[Match, base.StoredVideo]]:
    """The stored videos that share copied segments with `query`, best first, at most k, each with
    its record (payload only); never `exclude_id`. Blocking: store calls and the alignments."""
    rows, frame_of, penalty = query.rows()
    whole = len(query)  # rows() puts the whole frames first, then their views
    # a hit under MATCH_MIN (less a view's penalty) has no vote: the store need not name it
    nearest = store.search_frames(rows[:whole], FRAME_NEIGHBOURS, exclude_id, min_score=copies.MATCH_MIN)
    if len(rows) > whole:
        nearest += store.search_frames(rows[whole:], VIEW_NEIGHBOURS, exclude_id, ef=VIEW_EF,
                                       min_score=copies.MATCH_MIN + float(penalty[whole:].min()))
    hits: list[list[tuple[str, float]]] = [[] for _ in range(len(query))]
    for frame, less, found in zip(frame_of.tolist(), penalty.tolist(), nearest):
        # a frame's views vote as the frame, as the alignment weighs them; the vote keeps each video's best
        hits[frame].extend((video_id, score - less) for video_id, score in found)
    candidates = copies.vote(hits, CANDIDATES)
    found = copies.find(query, store.frames_of(set(candidates))) if candidates else []
    kept = []
    for match in found:
        # frames of a video whose record never got stored (its first upsert failed after them)
        # copy nothing that exists
        video = store.get(match.id)
        if video is not None:
            kept.append((match, video))
            if len(kept) == k:
                break
    return kept


def copy_originality(query: Track, found: list[Match]) -> float:
    """1 - the largest share of the query's duration that one copy's segments cover."""
    duration = float(query.times[-1]) + query.half_step()
    return 1.0 - min(max(m.covered() for m in found) / duration, 1.0)


def near_duplicate(
    store: base.VideoStore,
    vectors: dict[str, list[float]],
    exclude_id: str,
    content_sha256: str,
    threshold: float,
    found: list[Match] | None = None,
) -> tuple[str, float]:
    """The near-duplicate's id (empty when none) and the closest copy's similarity. `found`: the
    copies the video's frames found (None: it has no frames, and the visual threshold decides)."""
    if content_sha256:
        excluded = [exclude_id] if exclude_id else []
        same_bytes, _ = store.scroll(
            limit=1, filter=base.Filter(content_sha256=content_sha256, exclude_ids=excluded)
        )
        if same_bytes:
            return same_bytes[0].id, 1.0
    visual = vectors.get(modalities.VISUAL)
    top = store.query(modalities.VISUAL, vector=visual, k=1, exclude_id=exclude_id) if visual is not None else []
    closest = top[0].score if top else 0.0
    if found is not None:
        return (found[0].id if found else ""), closest
    return (top[0].id if top and closest >= threshold else ""), closest


def analyze(
    store: base.VideoStore,
    vectors: dict[str, list[float]],
    k: int,
    exclude_id: str = "",
    known_hashtags: list[str] = (),
    content_sha256: str = "",
    near_duplicate_threshold: float = 0.95,
    calibrated: Calibrated | None = None,
    frames: Track | None = None,
) -> Analysis:
    """Blocking (store calls): run it in a worker thread. `frames`: the video's frame descriptors,
    when it has them."""
    modality = next((m for m in (modalities.FUSED, modalities.VISUAL) if m in vectors), None)
    if modality is None:
        raise errors.InvalidInput("analyze needs a fused or a visual vector")
    neighbours = store.query(
        modality,
        vector=vectors[modality],
        k=max(k, ORIGINALITY_NEIGHBOURS, HASHTAG_NEIGHBOURS),
        with_payload=True,  # hashtags come from the payload
        exclude_id=exclude_id,
    )
    found = None if frames is None else [m for m, _ in find_copies(store, frames, k, exclude_id)]
    duplicate, closest_copy = near_duplicate(
        store, vectors, exclude_id, content_sha256, near_duplicate_threshold, found
    )
    similarities = [h.score for h in neighbours[:ORIGINALITY_NEIGHBOURS]]
    if calibrated is not None and modality == modalities.FUSED:
        anomaly = calibrated.anomaly(vectors[modality], similarities)
        score = min(calibrated.originality(anomaly), 1.0 - min(max(closest_copy, 0.0), 1.0))
    else:
        score = similarity_originality(similarities, closest_copy)
    if found:
        score = min(score, copy_originality(frames, found))
    return Analysis(
        originality=score,
        near_duplicate_of=duplicate,
        hashtags=suggest_hashtags(neighbours[:HASHTAG_NEIGHBOURS], list(known_hashtags)),
        similar=neighbours[:k],
        copies=found or [],
    )


class Detector:
    """The search service's Calibrated, fitted lazily from the store and fitted again once the
    corpus has changed by more than REFIT_CHANGE of its size since (deletes count too)."""

    REFIT_CHANGE = 0.1
    PAGE = 1000

    def __init__(self, method: str, store, vector: str):
        self.method, self.store, self.vector = method, store, vector
        self._fitted: Calibrated | None = None
        self._fitted_count = 0
        self._lock = threading.Lock()

    def _sample(self) -> np.ndarray:
        rows, offset = [], None
        while len(rows) < FIT_SAMPLE:
            page, offset = self.store.scroll(offset, self.PAGE, with_vectors=[self.vector])
            rows += [v.vectors[self.vector] for v in page if self.vector in v.vectors]
            if offset is None:
                break
        return np.asarray(rows[:FIT_SAMPLE], np.float64)

    def current(self) -> Calibrated | None:
        """None while the corpus is too small to calibrate against. Blocking: fits when due."""
        with self._lock:
            count = self.store.count()
            due = self._fitted is None or abs(count - self._fitted_count) > self.REFIT_CHANGE * self._fitted_count
            if due:
                rows = self._sample() if count >= MIN_CORPUS else np.zeros((0, 1))
                self._fitted = Calibrated(self.method, rows) if len(rows) >= MIN_CORPUS else None
                self._fitted_count = count
            return self._fitted
