"""The served likes model: an estimator (estimators.py) of log1p(likes) with a conformal 80%
interval conditional on the post (intervals.py), measured the way it will be used (validation.py),
saved as JSON (no pickle). Views are a second count served the same way: `train` takes the counts
and their name, so a views model is a LikesModel of log1p(views) whose track record is the author's
earlier views.

`train` measures under author folds (and a time hold-out when the videos carry their time),
chooses the best kind unless one is forced, calibrates the interval on the chosen kind's
out-of-fold residuals, then refits the estimator on every video for serving.
"""

import datetime
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reelvec.likes import estimators, features, history, intervals, neighbours, validation

MIN_VIDEOS = 5
# What a plain `train regressor` chooses among: the kinds that train in seconds. The neural ones (mlp,
# transformer) cost minutes a fit, six fits each under the validation: over 45 minutes on 1,792 real
# posts on 2 cores, where training on 5k posts should take minutes; `--compare` or `--model` measures them.
CHOICE = ("ridge", "gbm", "quartile", "author", "mean")
FORMAT = "reelvec-likes-v3"
CONSTANT_FORMAT = "reelvec-likes-v2"  # the same band for every post: residual_low/high offsets
LEGACY_FORMAT = "reelvec-ridge-v1"  # the first ridge artifacts: the same fields, no "estimator"


# the row width before the history columns: artifacts without "width" were trained on it
_WIDTH_BEFORE_HISTORY = len(features.NAMES) - len(features.HISTORY) - len(features.NEIGHBOURS)


@dataclass
class LikesModel:
    estimator: estimators.Estimator
    interval: intervals.Interval
    version: str
    track_record: history.History = field(default_factory=lambda: history.History({}))
    width: int = len(features.NAMES)  # the leading columns of features.NAMES it was trained on
    # the similar posts' likes where no neighbour is found (neighbours.py); None: the model does not
    # read them (a views model, or one trained before them)
    neighbours_fallback: float | None = None

    @property
    def reads_neighbours(self) -> bool:
        return self.neighbours_fallback is not None and self.width > neighbours.COLUMN

    def predict(self, row: np.ndarray, author: str = "", video_id: str = "", created_at: int = 0,
                similar: tuple[tuple[float, int], ...] = ()) -> tuple[float, float, float]:
        """Returns the count (likes, or views for a views model), low, high (80% interval). The
        author's earlier posts among the training posts fill the history columns (none for an
        unknown or empty author: history.py). `similar`: (cosine, likes) of the posts that
        neighbours.search_filter lets the post see, nearest first, where `reads_neighbours`."""
        rows = self.track_record.fill(row[None, :], [video_id], [author], [created_at])
        if self.reads_neighbours:
            rows[0, neighbours.COLUMN] = neighbours.weighted(
                [score for score, _ in similar], [np.log1p(max(likes, 0)) for _, likes in similar],
                self.neighbours_fallback)
        rows = rows[:, : self.width]
        centre = self.estimator.predict_log(rows)
        low, high = self.interval.offsets(rows, centre)
        count = lambda value: float(max(np.expm1(value), 0.0))  # noqa: E731
        return count(centre[0]), count(centre[0] + low[0]), count(centre[0] + high[0])

    def save(self, path: Path) -> None:
        body = {"format": FORMAT, "version": self.version, "interval": self.interval.to_json(),
                "width": self.width, "history": self.track_record.to_json(), "estimator": self.estimator.to_json(),
                "neighbours_fallback": self.neighbours_fallback}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        os.replace(tmp, path)  # a reader never sees half a model

    @classmethod
    def load(cls, path: Path) -> "LikesModel":
        body = json.loads(path.read_text())
        if body.get("format") == LEGACY_FORMAT:
            body = {**body, "estimator": {**body, "kind": "ridge"}}
        elif body.get("format") not in (FORMAT, CONSTANT_FORMAT):
            raise ValueError(f"{path} is not a {FORMAT} artifact")
        if "interval" in body:
            interval = intervals.Interval.from_json(body["interval"])
        else:
            interval = intervals.Interval(float(body["residual_low"]), float(body["residual_high"]))
        return cls(estimators.Estimator.from_json(body["estimator"]), interval, body["version"],
                   history.History.from_json(body.get("history", {})), int(body.get("width", _WIDTH_BEFORE_HISTORY)),
                   body.get("neighbours_fallback"))


def _selection_score(grouped: dict, timed: dict | None) -> float:
    """What the default choice maximizes: R^2 under author folds, averaged with the time hold-out's
    R^2 when there is one (a new author's post and a newer post are both what serving meets)."""
    return grouped["r2"] if timed is None else (grouped["r2"] + timed["r2"]) / 2


def _described(splits: list[validation.Split], groups: np.ndarray | None, later: validation.Split | None) -> str:
    held_out = "one author: posts held out" if groups is None else f"{len(np.unique(groups))} authors, none on both sides"
    newest = f"; time hold-out: {len(later.test)} newest after {len(later.train)} older" if later is not None else ""
    return f"{len(splits)} folds, {held_out}{newest}"


def train(rows: np.ndarray, counts: np.ndarray, kind: str = "", huber: bool = False,
          test_fraction: float = 0.2, seed: int = 0, compare: bool = False,
          groups: np.ndarray | None = None, created_at: np.ndarray | None = None, folds: int = validation.FOLDS,
          kinds: tuple[str, ...] | None = None, ids: np.ndarray | None = None, target_name: str = "likes",
          similar_by: np.ndarray | None = None):
    """Returns (model, report dict). Raises ValueError for too few videos or an unknown kind.

    `counts` are each video's `target_name` count (likes or views); the model learns log1p of them.

    kind "" measures every kind (validation.py: author folds by `groups`, the time hold-out of the
    newest `test_fraction` by `created_at`) among `kinds` and serves the best; a kind forces it,
    measured alone unless `compare`. Choosing or comparing also measures the ablations of the
    chosen kind (features.ABLATIONS). Without `groups` each video is its own author. `kinds`
    defaults to CHOICE (every kind when comparing). The history columns are filled here from the
    other posts of each author (history.py): `ids` name the videos (their row numbers without).
    A likes model also reads the similar posts' likes (neighbours.py), found by the cosine of
    `similar_by` (the vectors search compares; default the rows' fused columns)."""
    if kind:
        estimators.make(kind, huber)  # an unknown kind fails before any work
    kinds = kinds or (estimators.KINDS if compare else CHOICE)
    if len(rows) < MIN_VIDEOS:
        raise ValueError(f"need at least {MIN_VIDEOS} indexed videos with {target_name}, found {len(rows)}")
    target = np.log1p(np.maximum(counts, 0))
    groups = np.arange(len(rows)) if groups is None else np.asarray(groups)
    ids = np.arange(len(rows)).astype(str) if ids is None else np.asarray(ids)
    times = np.zeros(len(rows), np.int64) if created_at is None else np.asarray(created_at)
    track_record = history.History.build(ids, groups, times, target)
    rows = track_record.fill(rows, ids, groups, times)
    fallback = None
    if target_name == "likes":
        fallback = float(target.mean())
        by = rows[:, features.FUSED] if similar_by is None else similar_by
        rows[:, neighbours.COLUMN] = neighbours.column(by, target, times, fallback)
    one_author = len(np.unique(groups)) < 2
    if one_author:
        groups = np.arange(len(rows))  # nothing to hold out but the posts themselves
    splits = validation.author_folds(groups, folds, seed)
    later = None if created_at is None else validation.time_holdout(np.asarray(created_at), test_fraction)

    def measure(which: str, feature_set: str | None = None):
        """(out-of-fold predictions, author-fold scores, time hold-out scores or None, the time
        hold-out's predictions or None)"""
        data = rows if feature_set is None else features.keep_only(rows, feature_set)

        def fit_predict(train_idx, test_idx):
            fitted = estimators.make(which, huber).fit(data[train_idx], target[train_idx], np.random.default_rng(seed))
            return fitted.predict_log(data[test_idx])

        predicted = validation.out_of_fold(fit_predict, splits, len(rows))
        timed, ahead = None, None
        if later is not None:
            ahead = validation.out_of_fold(fit_predict, [later], len(rows))
            timed = validation.fold_scores(target, ahead, [later])
        return predicted, validation.fold_scores(target, predicted, splits), timed, ahead

    # a forced kind is measured beside the mean only: the baseline every report names
    candidates = dict.fromkeys(k for k in (*(kinds if compare or not kind else ()), kind, "mean") if k)
    measured = {}
    for which in candidates:
        try:
            measured[which] = measure(which)
        except ImportError:  # mlp and transformer train with PyTorch, which serving images leave out
            if which == kind:
                raise
    chosen = kind or max(measured, key=lambda k: _selection_score(*measured[k][1:3]))
    predicted, grouped, timed, ahead = measured[chosen]
    residuals = target - predicted
    forward = None if later is None else (later.test, ahead[later.test], target[later.test] - ahead[later.test])
    inside, width = intervals.cross_check(rows, predicted, residuals, splits, forward=forward)
    report = {
        "train_size": len(rows),  # the served model is refitted on every video
        "test_size": len(rows),  # each predicted once, out of fold
        "model": estimators.make(chosen, huber).name,
        **grouped,
        "baseline_mae": measured["mean"][1]["mae"],
        "validation": _described(splits, None if one_author else groups, later),
        "folds": len(splits),
        "interval_coverage": float(inside.mean()),
        "interval_ratio": float(np.exp(np.median(width))),  # the median post's (1 + high) / (1 + low)
        # by the author's followers: whether the band holds for small and large accounts alike
        "interval_by_followers": intervals.by_tercile(rows[:, features.FOLLOWERS], inside, width),
        # every post as the validation saw it: what `reelvec train regressor --out` plots
        "out_of_fold": [{"actual": float(a), "predicted": float(p), "inside": bool(i), "followers": float(f)}
                        for a, p, i, f in zip(target, predicted, inside, np.expm1(rows[:, features.FOLLOWERS]))],
    }
    if compare or not kind:
        report["comparison"] = [{"model": k, **m[1]} for k, m in measured.items()]
        report["ablations"] = []
        for feature_set in features.ABLATIONS:
            # the last set is every column: the chosen model as measured above
            found = grouped if feature_set == features.ABLATIONS[-1] else measure(chosen, feature_set)[1]
            report["ablations"].append({"model": chosen, "features": feature_set, **found})
    if later is not None:
        report["time_holdout"] = [{"model": k, **m[2]} for k, m in measured.items()]
        report["time_test_size"] = len(later.test)
    estimator = estimators.make(chosen, huber).fit(rows, target, np.random.default_rng(seed))
    digest = hashlib.sha256(json.dumps(estimator.to_json()).encode()).hexdigest()[:8]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    interval = intervals.Interval.calibrate(
        rows, predicted, residuals, forward=None if forward is None else (rows[forward[0]], *forward[1:]))
    model = LikesModel(estimator, interval, f"{report['model']}-{stamp}-{digest}", track_record,
                       neighbours_fallback=fallback)
    return model, report
