"""Retrieval and clustering measures over embedding matrices (rows need not be normalized)."""

import numpy as np

from reelvec.vectors import unit


def similarities(queries: np.ndarray, corpus: np.ndarray) -> np.ndarray:
    """Cosine similarities [queries, corpus]; a zero row (no vector) is -1 to everything."""
    q, c = unit(queries), unit(corpus)
    sims = q @ c.T
    sims[~q.any(axis=1)] = -1.0
    sims[:, ~c.any(axis=1)] = -1.0
    return sims


def copy_detection(originals: np.ndarray, copies: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Each copy searches the originals; truth[i] is the index of copy i's original.

    recall@k: share of copies whose original ranks in the top k, ties counted against us (a copy
    with no vector finds nothing). micro-AP: average precision over every (copy, original) pair
    ranked together by similarity, so one threshold must separate copies from non-copies across
    queries (the copy-detection literature's micro-average precision)."""
    sims = similarities(copies, originals)
    rows = np.arange(len(copies))
    true = sims[rows, truth]
    rank = (sims >= true[:, None]).sum(axis=1) - 1  # originals at least as close, itself excluded
    rank[~copies.any(axis=1)] = np.iinfo(rank.dtype).max  # no vector: never found
    labels = np.zeros_like(sims, dtype=bool)
    labels[rows, truth] = True
    order = np.argsort(-sims.ravel(), kind="stable")
    hits = labels.ravel()[order]
    precision_at_hits = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
    return {
        "recall@1": float((rank < 1).mean()),
        "recall@10": float((rank < 10).mean()),
        "micro_ap": float(precision_at_hits.mean()),
    }


def category_retrieval(vectors: np.ndarray, labels: list[str], k: int = 10) -> dict[str, float]:
    """Every labelled video queries all the others: precision@k and mean average precision by label.
    An unlabelled video (label "") stays in the search space as a distractor: never a query, never
    relevant."""
    sims = similarities(vectors, vectors)
    np.fill_diagonal(sims, -np.inf)
    labels_arr = np.asarray(labels)
    k = min(k, len(labels) - 1)
    precisions, aps = [], []
    for i in np.flatnonzero(labels_arr != ""):
        order = np.argsort(-sims[i], kind="stable")[: len(labels) - 1]
        relevant = labels_arr[order] == labels_arr[i]
        precisions.append(relevant[:k].mean())
        if relevant.any():
            aps.append((np.cumsum(relevant)[relevant] / (np.flatnonzero(relevant) + 1)).mean())
    if not precisions:
        return {}
    return {f"precision@{k}": float(np.mean(precisions)), "map": float(np.mean(aps)) if aps else 0.0}


def elbow(inertias: dict[int, float]) -> int:
    """The k farthest below the straight line from the first to the last (k, inertia) point: the
    bend of the curve, with both axes scaled to [0, 1]."""
    ks = np.array(sorted(inertias), dtype=float)
    values = np.array([inertias[int(k)] for k in ks])
    if len(ks) < 3:
        return int(ks[0])
    x = (ks - ks[0]) / (ks[-1] - ks[0])
    span = values[0] - values[-1]
    y = (values - values[-1]) / span if span > 0 else np.zeros_like(values)
    below = (1 - x) - y  # the chord runs from (0, 1) to (1, 0)
    return int(ks[int(np.argmax(below))])


def purity(clusters: np.ndarray, labels: list[str]) -> float:
    """Share of videos whose cluster's majority label is their own."""
    labels_arr = np.asarray(labels)
    total = 0
    for cluster in np.unique(clusters):
        _, counts = np.unique(labels_arr[clusters == cluster], return_counts=True)
        total += counts.max()
    return total / len(labels)
