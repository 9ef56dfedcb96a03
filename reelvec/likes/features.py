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
# The author's earlier posts (history.py): filled from the other posts' labels, 0 in row() itself.
# Last, so that a model trained before them reads the rows' first columns unchanged.
HISTORY = ("log1p_author_earlier_posts", "author_earlier_log1p_likes")
# The similar posts' likes (neighbours.py): filled when a likes model trains and at Predict, 0 in
# row() itself. After the history, for the same reason.
NEIGHBOURS = ("neighbours_log1p_likes",)
TABULAR = TABULAR + HISTORY + NEIGHBOURS
FUSED = slice(0, modalities.DIMS[modalities.FUSED])  # the fused vector's columns in a row
NAMES = tuple(f"fused_{i}" for i in range(FUSED.stop)) + TABULAR
# the author statistics' columns in a row (the first five of TABULAR): the `author` baseline's input
AUTHOR = slice(FUSED.stop, FUSED.stop + 5)
FOLLOWERS = AUTHOR.start  # log1p(followers): how the reports split posts by author size


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
        *(0.0 for _ in HISTORY + NEIGHBOURS),
    ]
    return np.concatenate([fused.astype(np.float64), np.asarray(tabular, np.float64)])


def _fused_block(name: str) -> np.ndarray:
    """The columns of one modality inside the fused vector (fusion.fuse's fixed order)."""
    start = 0
    for source, dim in modalities.SOURCES.items():
        if source == name:
            return np.arange(start, start + dim)
        start += dim
    raise KeyError(name)


def _tabular(*names: str) -> np.ndarray:
    return np.asarray([len(NAMES) - len(TABULAR) + TABULAR.index(n) for n in names])


# What each ablation step adds: a modality's block of the fused vector and the clip facts that
# come with it; together they are every column.
_ADDS = {
    "author": np.concatenate([np.arange(AUTHOR.start, AUTHOR.stop), _tabular(*HISTORY)]),
    modalities.TEXT: np.concatenate([_fused_block(modalities.TEXT), _tabular("caption_words", "hashtag_count")]),
    modalities.VISUAL: np.concatenate([_fused_block(modalities.VISUAL), _tabular("duration_seconds")]),
    modalities.AUDIO: _fused_block(modalities.AUDIO),
    "neighbours": _tabular(*NEIGHBOURS),
}
# The ablation ladder: author statistics alone, then + text, + visual, + audio, + the similar posts'
# likes (the last is every column).
ABLATIONS = tuple("+".join(list(_ADDS)[: i + 1]) for i in range(len(_ADDS)))


def keep_only(rows: np.ndarray, feature_set: str) -> np.ndarray:
    """rows with every column outside `feature_set` (e.g. "author+text") set to 0: every model
    treats a constant column as carrying nothing, so the same model kinds fit the ablations."""
    kept = np.zeros(rows.shape[1], bool)
    for part in feature_set.split("+"):
        kept[_ADDS[part]] = True
    return np.where(kept, rows, 0.0)
