"""What the corpus says about one video: similar videos, originality, near-duplicate, hashtags.

Formulas (docs/search.md explains the choices):
- neighbours: the nearest stored videos by the fused vector, or by the visual one when the video has
  no fused vector; `exclude_id` (the video itself, when already indexed) is never a neighbour.
- originality = 1 - clip(mean cosine similarity of the top ORIGINALITY_NEIGHBOURS neighbours, 0, 1);
  fewer neighbours are averaged as they are, and an empty corpus gives 1.0.
- near duplicate: a stored video with the same content_sha256 (the same bytes), else the top visual
  neighbour when its visual cosine similarity is >= the threshold.
- hashtags: score(tag) = sum over the top HASHTAG_NEIGHBOURS neighbours carrying the tag of
  max(similarity, 0); scores are divided by the best one (the best tag scores 1), then tags the
  caller already has are dropped and the best HASHTAG_SUGGESTIONS kept. Tags compare without '#',
  lowercased.
"""

import dataclasses
from collections import defaultdict

from reelvec import errors, modalities
from services.search.stores import base

ORIGINALITY_NEIGHBOURS = 5
HASHTAG_NEIGHBOURS = 20
HASHTAG_SUGGESTIONS = 10


@dataclasses.dataclass
class Analysis:
    originality: float
    near_duplicate_of: str  # empty when none
    hashtags: list[tuple[str, float]]  # best first
    similar: list[base.Hit]


def originality(similarities: list[float]) -> float:
    if not similarities:
        return 1.0
    mean = sum(similarities) / len(similarities)
    return 1.0 - min(max(mean, 0.0), 1.0)


def _tag(text: str) -> str:
    return text.strip().lstrip("#").lower()


def suggest_hashtags(
    neighbours: list[base.Hit], known: list[str], limit: int = HASHTAG_SUGGESTIONS
) -> list[tuple[str, float]]:
    scores: dict[str, float] = defaultdict(float)
    for hit in neighbours:
        tags = {_tag(t) for t in base.payload_value(hit.video.payload, base.HASHTAGS, [])}
        for tag in tags - {""}:
            scores[tag] += max(hit.score, 0.0)
    best = max(scores.values(), default=0.0)
    if best <= 0.0:
        return []
    skip = {_tag(t) for t in known}
    ranked = sorted(
        ((tag, score / best) for tag, score in scores.items() if score > 0 and tag not in skip),
        key=lambda item: (-item[1], item[0]),
    )
    return ranked[:limit]


def near_duplicate(
    store: base.VideoStore,
    vectors: dict[str, list[float]],
    exclude_ids: list[str],
    content_sha256: str,
    threshold: float,
) -> str:
    if content_sha256:
        same_bytes, _ = store.scroll(
            limit=1, filter=base.Filter(content_sha256=content_sha256, exclude_ids=exclude_ids)
        )
        if same_bytes:
            return same_bytes[0].id
    visual = vectors.get(modalities.VISUAL)
    if visual is not None:
        others = base.Filter(exclude_ids=exclude_ids)
        top = store.search(modalities.VISUAL, visual, others, 1, False)
        if top and top[0].score >= threshold:
            return top[0].id
    return ""


def analyze(
    store: base.VideoStore,
    vectors: dict[str, list[float]],
    k: int,
    exclude_id: str = "",
    known_hashtags: list[str] = (),
    content_sha256: str = "",
    near_duplicate_threshold: float = 0.95,
) -> Analysis:
    """Blocking (store calls): run it in a worker thread."""
    modality = next((m for m in (modalities.FUSED, modalities.VISUAL) if m in vectors), None)
    if modality is None:
        raise errors.InvalidInput("analyze needs a fused or a visual vector")
    exclude_ids = [exclude_id] if exclude_id else []
    neighbours = store.search(
        modality,
        vectors[modality],
        base.Filter(exclude_ids=exclude_ids),
        max(k, ORIGINALITY_NEIGHBOURS, HASHTAG_NEIGHBOURS),
        True,  # hashtags come from the payload
    )
    return Analysis(
        originality=originality([h.score for h in neighbours[:ORIGINALITY_NEIGHBOURS]]),
        near_duplicate_of=near_duplicate(
            store, vectors, exclude_ids, content_sha256, near_duplicate_threshold
        ),
        hashtags=suggest_hashtags(neighbours[:HASHTAG_NEIGHBOURS], list(known_hashtags)),
        similar=neighbours[:k],
    )
