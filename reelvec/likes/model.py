"""The served likes model: an estimator (estimators.py) of log1p(likes) with a split-conformal 80%
interval, trained and measured on a held-out split, saved as JSON (no pickle).

The interval comes from the 10th/90th percentiles of the held-out residuals. `train` measures on
the held-out split, then refits on every video for serving; `compare=True` also measures every
other kind on the same split, so the table compares like with like.
"""

import datetime
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from reelvec.likes import estimators

MIN_VIDEOS = 5
FORMAT = "reelvec-likes-v2"
LEGACY_FORMAT = "reelvec-ridge-v1"  # the first ridge artifacts: the same fields, no "estimator"


@dataclass
class LikesModel:
    estimator: estimators.Estimator
    residual_low: float  # 10th percentile of held-out residuals, in log1p(likes)
    residual_high: float
    version: str

    def predict(self, row: np.ndarray) -> tuple[float, float, float]:
        """Returns likes, low, high (80% interval)."""
        centre = float(self.estimator.predict_log(row[None, :])[0])
        likes = lambda value: float(max(np.expm1(value), 0.0))  # noqa: E731
        return likes(centre), likes(centre + self.residual_low), likes(centre + self.residual_high)

    def save(self, path: Path) -> None:
        body = {"format": FORMAT, "version": self.version, "residual_low": self.residual_low,
                "residual_high": self.residual_high, "estimator": self.estimator.to_json()}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        os.replace(tmp, path)  # a reader never sees half a model

    @classmethod
    def load(cls, path: Path) -> "LikesModel":
        body = json.loads(path.read_text())
        if body.get("format") == LEGACY_FORMAT:
            body = {**body, "estimator": {**body, "kind": "ridge"}}
        elif body.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} artifact")
        return cls(estimators.Estimator.from_json(body["estimator"]), float(body["residual_low"]),
                   float(body["residual_high"]), body["version"])


def _quartile_accuracy(truth: np.ndarray, predicted: np.ndarray, bounds: np.ndarray) -> float:
    """The quartile-classification reading of a regressor: the held-out videos' predicted and true
    log-likes binned by the training split's quartiles; 0.25 is chance."""
    return float((np.digitize(truth, bounds) == np.digitize(predicted, bounds)).mean())


def _scores(truth: np.ndarray, predicted: np.ndarray, bounds: np.ndarray) -> dict[str, float]:
    residuals = truth - predicted
    ss_tot = float(((truth - truth.mean()) ** 2).sum())
    scores = {
        "mse": float((residuals**2).mean()),
        "mae": float(np.abs(residuals).mean()),
        "r2": 1.0 - float((residuals**2).sum()) / ss_tot if ss_tot > 0 else 0.0,
        # a constant prediction (the mean model) ranks nothing
        "spearman": float(stats.spearmanr(truth, predicted).statistic) if len(truth) > 2 and np.ptp(predicted) > 0 else 0.0,
        "quartile_accuracy": _quartile_accuracy(truth, predicted, bounds),
    }
    return {k: (v if np.isfinite(v) else 0.0) for k, v in scores.items()}


def train(rows: np.ndarray, likes: np.ndarray, kind: str = "ridge", huber: bool = False,
          test_fraction: float = 0.2, seed: int = 0, compare: bool = False):
    """Returns (model, report dict). Raises ValueError for too few videos or an unknown kind."""
    name = estimators.make(kind, huber).name  # an unknown kind fails before any work
    if len(rows) < MIN_VIDEOS:
        raise ValueError(f"need at least {MIN_VIDEOS} indexed videos with likes, found {len(rows)}")
    rng = np.random.default_rng(seed)
    target = np.log1p(np.maximum(likes, 0))
    order = rng.permutation(len(rows))
    n_test = min(max(1, round(test_fraction * len(rows))), len(rows) - 2)
    test, train_idx = order[:n_test], order[n_test:]
    bounds = np.quantile(target[train_idx], [0.25, 0.5, 0.75])

    def held_out(which: str) -> np.ndarray:
        fitted = estimators.make(which, huber).fit(rows[train_idx], target[train_idx], np.random.default_rng(seed))
        return fitted.predict_log(rows[test])

    predicted = held_out(kind)
    residuals = target[test] - predicted
    report = {
        "train_size": len(train_idx),
        "test_size": len(test),
        "model": name,
        **_scores(target[test], predicted, bounds),
        "baseline_mae": float(np.abs(target[test] - target[train_idx].mean()).mean()),
    }
    if compare:
        report["comparison"] = []
        for other in estimators.KINDS:
            try:
                scored = predicted if other == kind else held_out(other)
            except ImportError:  # mlp and transformer train with PyTorch, which serving images leave out
                continue
            report["comparison"].append({"model": other, **_scores(target[test], scored, bounds)})
    estimator = estimators.make(kind, huber).fit(rows, target, rng)
    digest = hashlib.sha256(json.dumps(estimator.to_json()).encode()).hexdigest()[:8]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    model = LikesModel(
        estimator,
        residual_low=float(np.quantile(residuals, 0.1)),
        residual_high=float(np.quantile(residuals, 0.9)),
        version=f"{report['model']}-{stamp}-{digest}",
    )
    return model, report
