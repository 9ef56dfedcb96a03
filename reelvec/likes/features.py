"""The regressor's input row for one video: fused embedding + author statistics + clip facts.

The fused part is always the weighted concatenation of the video's modality vectors
(reelvec.fusion.fuse), whatever fusion the search collection serves: a learned fusion changes what
search compares, not the regressor's features (docs/versions.md)."""

import math

import numpy as np

from reelvec import fusion, modalities
from reelvec.v1 import common_pb2

TABULAR = (
    "log1p_followers",
    "log1p_following",
    "log1p_author_likes",
    "log1p_author_videos",
    "log1p_author_likes_per_video",
    "duration_seconds",
    "caption_words",
    "hashtag_count",
)
NAMES = tuple(f"fused_{i}" for i in range(modalities.DIMS[modalities.FUSED])) + TABULAR
# the author statistics' columns in a row (the first five of TABULAR): the `author` baseline's input
AUTHOR = slice(modalities.DIMS[modalities.FUSED], modalities.DIMS[modalities.FUSED] + 5)


def row(video: common_pb2.VideoRecord) -> np.ndarray:
    """Raises ValueError when the video carries no modality vector."""
    found = video.embeddings.vectors
    sources = {m: np.asarray(found[m].values, np.float32) for m in modalities.SOURCES if m in found}
    try:
        fused = fusion.fuse(sources)
    except ValueError:
        raise ValueError("the video has no visual, audio or text embedding") from None
    author = video.metadata.author
    tabular = [
        math.log1p(max(author.followers, 0)),
        math.log1p(max(author.following, 0)),
        math.log1p(max(author.likes, 0)),
        math.log1p(max(author.videos, 0)),
        math.log1p(max(author.likes, 0) / max(author.videos, 1)),
        video.duration,
        len(video.metadata.caption.split()),
        len(video.metadata.hashtags),
    ]
    return np.concatenate([fused.astype(np.float64), np.asarray(tabular, np.float64)])
