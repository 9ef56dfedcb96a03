"""The similar posts' likes: the mean log1p(likes) of the K posts nearest to a post by the cosine
of the fused vector, weighted by that cosine, among the posts with likes that are older than it.

Posts like this one landed like this: measured on the real posts before it was built, it added
+0.011 R^2 under author folds and +0.055 on the newest posts (docs/regressor.md). Never the
post's own label, and nothing newer than the post: a post sees the posts strictly older than it
(every other post when its own time is unknown; a post of unknown time is older than none), which
is what serving has when a new post is predicted. Training computes the column here over the
training posts (`column`); Predict asks the search service for the same posts (`search_filter`)
and weighs what it answers with `weighted`, so both read one rule.

A post with no such neighbour, or none at a positive cosine, gets the training posts' mean, for
the reason history.py gives for the track record.
"""

import numpy as np

from reelvec.likes import features
from reelvec.v1 import common_pb2

K = 10
COLUMN = features.NAMES.index(features.NEIGHBOURS[0])
_BLOCK = 1024  # posts per similarity block: 1024 x 5k posts is 20 MB of float32


def weighted(scores, log_likes, fallback: float) -> float:
    """The cosine-weighted mean of `log_likes`; neighbours at a cosine of 0 or less weigh nothing."""
    weights = np.maximum(np.asarray(scores, np.float64), 0.0)
    if not weights.size or weights.sum() <= 0:
        return fallback
    return float(weights @ np.asarray(log_likes, np.float64) / weights.sum())


def nearest(vectors: np.ndarray, created_at: np.ndarray, k: int = K) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per post, (row numbers, cosines) of the k nearest posts it may see, nearest first: what
    Predict's search answers for that post when the others are the stored posts with likes."""
    vectors = np.asarray(vectors, np.float32)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    times = np.asarray(created_at, np.int64)
    found = []
    for start in range(0, len(vectors), _BLOCK):
        stop = min(start + _BLOCK, len(vectors))
        mine = times[start:stop, None]
        older = (mine <= 0) | ((times[None, :] > 0) & (times[None, :] < mine))
        older[np.arange(stop - start), np.arange(start, stop)] = False  # never itself
        similarity = np.where(older, unit[start:stop] @ unit.T, -np.inf)
        for row, scores in enumerate(similarity):
            n = min(k, int(older[row].sum()))
            chosen = np.argpartition(-scores, n - 1)[:n] if n else np.zeros(0, np.int64)
            chosen = chosen[np.argsort(-scores[chosen])]
            found.append((chosen, scores[chosen]))
    return found


def column(vectors: np.ndarray, log_likes: np.ndarray, created_at: np.ndarray, fallback: float, k: int = K) -> np.ndarray:
    """Each post's value among the others, as Predict's search would find it for that post."""
    log_likes = np.asarray(log_likes, np.float64)
    return np.asarray([weighted(scores, log_likes[rows], fallback) for rows, scores in nearest(vectors, created_at, k)])


def search_filter(video: common_pb2.VideoRecord) -> common_pb2.Filter:
    """The posts `column` lets `video` see, as a search filter: likes known, strictly older, not itself."""
    found = common_pb2.Filter(likes=common_pb2.Range(gte=0))
    if video.id:
        found.exclude_ids.append(video.id)
    if video.metadata.created_at > 0:
        found.created_at.CopyFrom(common_pb2.Range(gte=1, lte=video.metadata.created_at - 1))
    return found
