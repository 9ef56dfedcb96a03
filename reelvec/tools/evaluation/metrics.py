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
    return {
        "recall@1": float((rank < 1).mean()),
        "recall@10": float((rank < 10).mean()),
        "micro_ap": micro_ap(sims, labels),
    }


def micro_ap(scores: np.ndarray, truth: np.ndarray) -> float:
    """Average precision over every pair of `scores` ranked together (truth: which pairs are
    copies), ties counted against us: a true pair tied with false ones ranks after them, so that
    the pairs an aligner leaves at 0 rank last. 0 without a true pair."""
    order = np.lexsort((truth.ravel(), -scores.ravel()))
    hits = truth.ravel()[order]
    if not hits.any():
        return 0.0
    return float((np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)).mean())


def at_threshold(scores: np.ndarray, truth: np.ndarray, threshold: float) -> dict:
    """The decision `score >= threshold` on every pair [queries, originals]: the share of true
    pairs it finds, its precision (1 when it flags nothing: it named no false copy), the false
    copies it names and the queries that get at least one."""
    flagged = scores >= threshold
    found, wrong = flagged & truth, flagged & ~truth
    return {
        "threshold": float(threshold),
        "recall": float(found.sum() / truth.sum()) if truth.any() else 0.0,
        "precision": float(found.sum() / flagged.sum()) if flagged.any() else 1.0,
        "false_copies": int(wrong.sum()),
        "false_copy_rate": float(wrong.sum() / (~truth).sum()) if (~truth).any() else 0.0,
        "queries_with_false_copy": int(wrong.any(axis=1).sum()),
    }


def pr_curve(scores: np.ndarray, truth: np.ndarray) -> list[dict]:
    """Precision and recall of `score >= t` for every distinct score t, highest first."""
    s, t = scores.ravel(), truth.ravel()
    order = np.argsort(-s, kind="stable")
    s, t = s[order], t[order]
    found = np.cumsum(t)
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # the last pair at each distinct score
    total = max(int(t.sum()), 1)
    return [{"threshold": float(s[i]), "precision": float(found[i] / (i + 1)), "recall": float(found[i] / total)}
            for i in last]


def operating_point(curve: list[dict], min_precision: float) -> dict | None:
    """The point of `curve` with the highest recall at precision >= min_precision (of equal
    recalls, the highest threshold: the widest margin); None when no threshold is that precise."""
    precise = [p for p in curve if p["precision"] >= min_precision]
    return max(precise, key=lambda p: (p["recall"], p["threshold"])) if precise else None


Box = tuple[float, float, float, float]  # a copied segment: query start, end, reference start, end (s)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Intersection over union of two intervals."""
    union = max(a[1], b[1]) - min(a[0], b[0])
    return _overlap(a, b) / union if union > 0 else 0.0


def _covered(intervals: list[tuple[float, float]], truth: tuple[float, float]) -> float:
    """Seconds of `truth` inside the union of `intervals`."""
    clipped = sorted((max(a, truth[0]), min(b, truth[1])) for a, b in intervals if min(b, truth[1]) > max(a, truth[0]))
    total, reached = 0.0, truth[0]
    for start, end in clipped:
        total += max(0.0, end - max(start, reached))
        reached = max(reached, end)
    return total


def _box_precision(box: Box, truth: Box) -> float:
    """The share of a predicted segment that is copied, on both axes (their geometric mean)."""
    shares = [_overlap(box[a:a + 2], truth[a:a + 2]) / (box[a + 1] - box[a]) if box[a + 1] > box[a] else 0.0
              for a in (0, 2)]
    return float(np.sqrt(shares[0] * shares[1]))


LONG_COPY_S = 6.0  # the excerpts a platform must locate: a copied scene, not a logo or an intro sting


def segment_match(predicted: list[dict[int, list[Box]]], truth: list[tuple[int, Box]], min_iou: float = 0.5) -> dict:
    """Located copied seconds, the idea of VSC's match metric: per query, `predicted` holds the
    segments of each original it was decided to copy (by index), `truth` its original and true
    segment. precision: per predicted segment, the share of it inside the true one on both axes
    (geometric mean; 0 for a segment of the wrong original); recall: per true segment, the share
    the predicted segments of its pair cover on both axes; located: the share of true segments
    that one predicted segment overlaps with IoU >= min_iou on both axes; located_long: the same
    of the true segments of LONG_COPY_S or more in the query (None when there is none). precision
    is None when nothing was predicted."""
    precisions, recalls, located = [], [], []
    for boxes_by_original, (original, box) in zip(predicted, truth):
        mine = boxes_by_original.get(original, [])
        precisions += [_box_precision(b, box) if j == original else 0.0
                       for j, boxes in boxes_by_original.items() for b in boxes]
        shares = [_covered([b[a:a + 2] for b in mine], box[a:a + 2]) / (box[a + 1] - box[a]) for a in (0, 2)]
        recalls.append(float(np.sqrt(shares[0] * shares[1])))
        located.append(any(iou(b[:2], box[:2]) >= min_iou and iou(b[2:], box[2:]) >= min_iou for b in mine))
    long = [hit for hit, (_, box) in zip(located, truth) if box[1] - box[0] >= LONG_COPY_S - 0.05]  # cut to a frame
    return {
        "precision": float(np.mean(precisions)) if precisions else None,
        "recall": float(np.mean(recalls)) if recalls else 0.0,
        "located": float(np.mean(located)) if located else 0.0,
        "located_long": float(np.mean(long)) if long else None,
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
