"""What the corpus says about one video: similar videos, originality, near-duplicate, hashtags.

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
- near duplicate: a stored video with the same content_sha256 (the same bytes), else the top visual
  neighbour when its visual cosine similarity is >= the threshold.
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

from reelvec import errors, modalities
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


@dataclasses.dataclass
class Analysis:
    originality: float
    near_duplicate_of: str  # empty when none
    hashtags: list[tuple[str, float]]  # best first
    similar: list[base.Hit]


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


def near_duplicate(
    store: base.VideoStore,
    vectors: dict[str, list[float]],
    exclude_id: str,
    content_sha256: str,
    threshold: float,
) -> tuple[str, float]:
    """The near-duplicate's id (empty when none) and the closest copy's similarity."""
    if content_sha256:
        excluded = [exclude_id] if exclude_id else []
        same_bytes, _ = store.scroll(
            limit=1, filter=base.Filter(content_sha256=content_sha256, exclude_ids=excluded)
        )
        if same_bytes:
            return same_bytes[0].id, 1.0
    visual = vectors.get(modalities.VISUAL)
    if visual is not None:
        top = store.query(modalities.VISUAL, vector=visual, k=1, exclude_id=exclude_id)
        if top:
            return (top[0].id if top[0].score >= threshold else ""), top[0].score
    return "", 0.0


def analyze(
    store: base.VideoStore,
    vectors: dict[str, list[float]],
    k: int,
    exclude_id: str = "",
    known_hashtags: list[str] = (),
    content_sha256: str = "",
    near_duplicate_threshold: float = 0.95,
    calibrated: Calibrated | None = None,
) -> Analysis:
    """Blocking (store calls): run it in a worker thread."""
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
    duplicate, closest_copy = near_duplicate(
        store, vectors, exclude_id, content_sha256, near_duplicate_threshold
    )
    similarities = [h.score for h in neighbours[:ORIGINALITY_NEIGHBOURS]]
    if calibrated is not None and modality == modalities.FUSED:
        anomaly = calibrated.anomaly(vectors[modality], similarities)
        score = min(calibrated.originality(anomaly), 1.0 - min(max(closest_copy, 0.0), 1.0))
    else:
        score = similarity_originality(similarities, closest_copy)
    return Analysis(
        originality=score,
        near_duplicate_of=duplicate,
        hashtags=suggest_hashtags(neighbours[:HASHTAG_NEIGHBOURS], list(known_hashtags)),
        similar=neighbours[:k],
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
