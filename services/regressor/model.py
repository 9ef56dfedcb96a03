"""Ridge regression of standardized log1p(likes), with a split-conformal interval.

Ridge is the standard first model for a few hundred to a few thousand rows of 1.7k features: closed
form, no tuning beyond alpha (chosen by k-fold on the training split), and an artifact that is plain
JSON (no pickle). The 80% interval comes from the 10th/90th percentiles of held-out residuals.
"""

import datetime
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
MIN_VIDEOS = 5
FORMAT = "reelvec-ridge-v1"


@dataclass
class LikesModel:
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    weights: np.ndarray
    target_mean: float
    target_scale: float
    residual_low: float  # 10th percentile of held-out residuals, in log1p(likes)
    residual_high: float
    alpha: float
    version: str

    def predict_log(self, rows: np.ndarray) -> np.ndarray:
        z = (rows - self.feature_mean) / self.feature_scale
        return (z @ self.weights) * self.target_scale + self.target_mean

    def predict(self, row: np.ndarray) -> tuple[float, float, float]:
        """Returns likes, low, high (80% interval)."""
        centre = float(self.predict_log(row[None, :])[0])
        likes = lambda value: float(max(np.expm1(value), 0.0))  # noqa: E731
        return likes(centre), likes(centre + self.residual_low), likes(centre + self.residual_high)

    def save(self, path: Path) -> None:
        body = {
            "format": FORMAT,
            "version": self.version,
            "alpha": self.alpha,
            "target_mean": self.target_mean,
            "target_scale": self.target_scale,
            "residual_low": self.residual_low,
            "residual_high": self.residual_high,
            "feature_mean": self.feature_mean.tolist(),
            "feature_scale": self.feature_scale.tolist(),
            "weights": self.weights.tolist(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        os.replace(tmp, path)  # a reader never sees half a model

    @classmethod
    def load(cls, path: Path) -> "LikesModel":
        body = json.loads(path.read_text())
        if body.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} artifact")
        arrays = {k: np.asarray(body[k], np.float64) for k in ("feature_mean", "feature_scale", "weights")}
        scalars = {k: float(body[k]) for k in ("target_mean", "target_scale", "residual_low", "residual_high", "alpha")}
        return cls(**arrays, **scalars, version=body["version"])


def _ridge(z: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Solves the smaller of the two equal systems: n x n (dual) while there are fewer videos than
    the ~1.9k features, d x d (primal) beyond; at 5k videos the dual's Gram matrices took ~1 GB."""
    n, d = z.shape
    if n <= d:
        return z.T @ np.linalg.solve(z @ z.T + alpha * np.eye(n), y)
    return np.linalg.solve(z.T @ z + alpha * np.eye(d), z.T @ y)


def _choose_alpha(z: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
    folds = np.array_split(rng.permutation(len(z)), min(5, len(z)))
    errors = []
    for alpha in ALPHAS:
        error = 0.0
        for fold in folds:
            train = np.setdiff1d(np.arange(len(z)), fold)
            error += float(np.abs(z[fold] @ _ridge(z[train], y[train], alpha) - y[fold]).sum())
        errors.append(error)
    return ALPHAS[int(np.argmin(errors))]


def _fit(rows: np.ndarray, target: np.ndarray, rng: np.random.Generator):
    mean, scale = rows.mean(axis=0), rows.std(axis=0)
    scale[scale < 1e-9] = 1.0
    t_mean, t_scale = float(target.mean()), float(target.std() or 1.0)
    z, y = (rows - mean) / scale, (target - t_mean) / t_scale
    alpha = _choose_alpha(z, y, rng)
    return mean, scale, _ridge(z, y, alpha), t_mean, t_scale, alpha


def train(rows: np.ndarray, likes: np.ndarray, test_fraction: float = 0.2, seed: int = 0):
    """Fits on a training split, measures on the held-out split, then refits on everything.
    Returns (model, report dict)."""
    if len(rows) < MIN_VIDEOS:
        raise ValueError(f"need at least {MIN_VIDEOS} indexed videos with likes, found {len(rows)}")
    rng = np.random.default_rng(seed)
    target = np.log1p(np.maximum(likes, 0))
    order = rng.permutation(len(rows))
    n_test = min(max(1, round(test_fraction * len(rows))), len(rows) - 2)
    test, train_idx = order[:n_test], order[n_test:]

    held_out = LikesModel(*_fit(rows[train_idx], target[train_idx], rng)[:5], 0.0, 0.0, 0.0, "")
    predicted = held_out.predict_log(rows[test])
    residuals = target[test] - predicted
    truth = target[test]
    ss_tot = float(((truth - truth.mean()) ** 2).sum())
    report = {
        "train_size": len(train_idx),
        "test_size": len(test),
        "mae": float(np.abs(residuals).mean()),
        "r2": 1.0 - float((residuals**2).sum()) / ss_tot if ss_tot > 0 else 0.0,
        "spearman": float(stats.spearmanr(truth, predicted).statistic) if len(test) > 2 else 0.0,
        "baseline_mae": float(np.abs(truth - target[train_idx].mean()).mean()),
    }
    mean, scale, weights, t_mean, t_scale, alpha = _fit(rows, target, rng)
    digest = hashlib.sha256(weights.tobytes()).hexdigest()[:8]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    model = LikesModel(
        mean, scale, weights, t_mean, t_scale,
        residual_low=float(np.quantile(residuals, 0.1)),
        residual_high=float(np.quantile(residuals, 0.9)),
        alpha=alpha,
        version=f"ridge-{stamp}-{digest}",
    )
    for key in ("spearman", "r2"):
        if not np.isfinite(report[key]):
            report[key] = 0.0
    return model, report
