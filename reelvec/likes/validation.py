"""How a likes model is measured: the way it will be used.

A served model predicts posts of authors it may never have seen, and posts newer than any it
trained on. A random split flatters it on both counts: an author's other posts in the training
split give away the author's level. So:

- author folds: every post of an author falls in one fold (no author on both sides); each post is
  predicted once, by a model fitted on the other folds, and each fold's predictions are scored
  on their own, then averaged (fold_scores).
- time hold-out, when the posts carry created_at: the newest share is predicted by a model fitted
  on every strictly older post.
"""

from dataclasses import dataclass

import numpy as np
from scipy import stats

FOLDS = 5
MIN_TIME_SIDE = 5  # posts on each side of the time hold-out below which it is not run


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # row indices
    test: np.ndarray


def author_group(author_id: str, video_id: str) -> str:
    """The fold group of a video: its author, or the video alone when the author is unknown (so an
    unknown author is never a group that spans posts)."""
    return author_id or f"video:{video_id}"


def author_folds(groups: np.ndarray, folds: int = FOLDS, seed: int = 0) -> list[Split]:
    """Up to `folds` splits, no group (author) in both sides of any. Authors go, most posts first,
    to the fold with the fewest posts so far (ties at random), so one prolific author does not make
    one fold much larger than the rest."""
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    folds = min(folds, len(names))
    if folds < 2:
        raise ValueError("need posts from at least 2 authors to hold authors out")
    rng = np.random.default_rng(seed)
    order = sorted(rng.permutation(len(names)), key=lambda g: -counts[g])  # stable: random among equal sizes
    fold_of_group, sizes = np.empty(len(names), int), np.zeros(folds, int)
    for group in order:
        smallest = np.flatnonzero(sizes == sizes.min())
        fold = int(rng.choice(smallest))
        fold_of_group[group], sizes[fold] = fold, sizes[fold] + counts[group]
    fold_of_row = fold_of_group[inverse]
    return [Split(np.flatnonzero(fold_of_row != f), np.flatnonzero(fold_of_row == f)) for f in range(folds)]


def time_holdout(created_at: np.ndarray, test_fraction: float) -> Split | None:
    """The newest `test_fraction` of the posts whose time is known (created_at > 0) against every
    strictly older one; posts at the boundary's time all go to the test side. None when either side
    would have fewer than MIN_TIME_SIDE posts."""
    known = np.flatnonzero(created_at > 0)
    if len(known) < 2 * MIN_TIME_SIDE:
        return None
    times = np.sort(created_at[known])
    boundary = times[len(times) - max(1, round(test_fraction * len(times)))]
    test, train = known[created_at[known] >= boundary], known[created_at[known] < boundary]
    if min(len(train), len(test)) < MIN_TIME_SIDE:
        return None
    return Split(train, test)


def out_of_fold(fit_predict, splits: list[Split], size: int) -> np.ndarray:
    """Each test row's prediction by `fit_predict(train_idx, test_idx)`, every fold in turn."""
    predicted = np.full(size, np.nan)
    for split in splits:
        predicted[split.test] = fit_predict(split.train, split.test)
    return predicted


def fold_scores(truth: np.ndarray, predicted: np.ndarray, splits: list[Split]) -> dict[str, float]:
    """scores() of each split's test rows (quartiles from its training rows), averaged weighted by
    size. Per split, not over the pooled predictions: pooled, the mean predictor's per-fold
    constants would rank posts (by which authors each fold left out) and get a Spearman."""
    total = sum(len(split.test) for split in splits)
    found: dict[str, float] = {}
    for split in splits:
        bounds = np.quantile(truth[split.train], [0.25, 0.5, 0.75])
        for name, value in scores(truth[split.test], predicted[split.test], bounds).items():
            found[name] = found.get(name, 0.0) + value * len(split.test) / total
    return found


def quartile_accuracy(truth: np.ndarray, predicted: np.ndarray, bounds: np.ndarray) -> float:
    """The quartile-classification reading of a regressor: predicted and true log-likes binned by
    `bounds` (the training side's quartiles); 0.25 is chance."""
    return float((np.digitize(truth, bounds) == np.digitize(predicted, bounds)).mean())


def scores(truth: np.ndarray, predicted: np.ndarray, bounds: np.ndarray) -> dict[str, float]:
    residuals = truth - predicted
    ss_tot = float(((truth - truth.mean()) ** 2).sum())
    found = {
        "mse": float((residuals**2).mean()),
        "mae": float(np.abs(residuals).mean()),
        "r2": 1.0 - float((residuals**2).sum()) / ss_tot if ss_tot > 0 else 0.0,
        # a constant prediction (the mean model) ranks nothing
        "spearman": float(stats.spearmanr(truth, predicted).statistic) if len(truth) > 2 and np.ptp(predicted) > 0 else 0.0,
        "quartile_accuracy": quartile_accuracy(truth, predicted, bounds),
    }
    return {k: (v if np.isfinite(v) else 0.0) for k, v in found.items()}
