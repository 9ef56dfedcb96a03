"""The 80% interval, conditional on the post: normalized conformal scores.

A constant band (the 10th/90th percentiles of the residuals) gives every post the same width, while
how far off the model is depends on the post: an author whose earlier posts are known is easier to
place than a stranger. So a small model of the spread, ridge on log|residual| over the tabular
columns and the predicted centre, gives each post a scale sigma; the band is
centre + sigma * [q10, q90] of the normalized residuals residual / sigma. Both are calibrated on
out-of-fold residuals (each post predicted by a model that never saw its author), so the coverage
is what an unseen author's post gets. Everything is plain numbers in JSON.
"""

from dataclasses import dataclass

import numpy as np

from reelvec.likes import features

LEVEL = 0.8
QUANTILES = ((1 - LEVEL) / 2, (1 + LEVEL) / 2)
# log|r| explodes for near-zero residuals; this share of the mean |r| keeps a few lucky hits from
# pulling the fit (0.05 to 0.5 gave coverage 0.787 to 0.789 with ridge on the real posts).
FLOOR = 0.2
SPREAD_ALPHA = 1.0  # few columns, hundreds of posts or more: a light ridge only guards collinearity
# the spread model has a dozen weights: with fewer residuals than this, one band for every post
MIN_SPREAD = 50
# With posting times, the band's quantiles give this share of their weight to the time hold-out's
# scores (the newest posts predicted by a fit on the older ones) and the rest to the author folds':
# Predict is asked about posts newer than any it was trained on, and forward in time the model
# misses differently (docs/regressor.md, Conditional interval). Half: both validations that match
# use count alike.
FORWARD_SHARE = 0.5

# (rows, centre, residuals) of the time hold-out's posts
Forward = tuple[np.ndarray, np.ndarray, np.ndarray]


def _quantiles(scores: np.ndarray, weights: np.ndarray | None) -> tuple[float, float]:
    if weights is None:
        low, high = np.quantile(scores, QUANTILES)
    else:
        order = np.argsort(scores)
        cumulative = np.cumsum(weights[order])
        at = (cumulative - 0.5 * weights[order]) / cumulative[-1]  # each score at its weight's midpoint
        low, high = np.interp(QUANTILES, at, scores[order])
    return float(low), float(high)


def _inputs(rows: np.ndarray, centre: np.ndarray) -> np.ndarray:
    return np.column_stack([rows[:, len(features.NAMES) - len(features.TABULAR):], centre])


@dataclass
class Spread:
    """exp(ridge of log(|residual| + floor)), clipped to the range seen when fitting so that an
    unusual post does not get an extrapolated band of zero or of everything."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # intercept first
    low: float
    high: float

    @classmethod
    def fit(cls, rows: np.ndarray, centre: np.ndarray, residuals: np.ndarray) -> "Spread":
        x = _inputs(rows, centre)
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale < 1e-9] = 1.0
        z = np.column_stack([np.ones(len(x)), (x - mean) / scale])
        magnitude = np.abs(residuals)
        target = np.log(magnitude + FLOOR * max(float(magnitude.mean()), 1e-6))
        penalty = SPREAD_ALPHA * np.diag([0.0] + [1.0] * (z.shape[1] - 1))
        weights = np.linalg.solve(z.T @ z + penalty, z.T @ target)
        fitted = np.exp(z @ weights)
        return cls(mean, scale, weights, float(fitted.min()), float(fitted.max()))

    def __call__(self, rows: np.ndarray, centre: np.ndarray) -> np.ndarray:
        z = np.column_stack([np.ones(len(rows)), (_inputs(rows, centre) - self.mean) / self.scale])
        return np.exp(np.clip(z @ self.weights, np.log(self.low), np.log(self.high)))

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "weights": self.weights.tolist(),
                "low": self.low, "high": self.high}

    @classmethod
    def from_json(cls, body: dict) -> "Spread":
        return cls(*(np.asarray(body[k], np.float64) for k in ("mean", "scale", "weights")),
                   float(body["low"]), float(body["high"]))


@dataclass
class Interval:
    """Offsets from the centre, in log1p(likes): sigma * score_low .. sigma * score_high, sigma 1
    without a spread model (a constant band)."""

    score_low: float
    score_high: float
    spread: Spread | None = None

    @classmethod
    def calibrate(cls, rows: np.ndarray, centre: np.ndarray, residuals: np.ndarray, conditional: bool = True,
                  forward: Forward | None = None) -> "Interval":
        """From out-of-fold `residuals` (author folds), and the time hold-out's when `forward` is
        given: its scores then weigh FORWARD_SHARE of the quantiles. The spread is the author
        folds' alone: the hold-out has too few posts for a dozen weights."""
        spread = Spread.fit(rows, centre, residuals) if conditional and len(residuals) >= MIN_SPREAD else None

        def scores(rows, centre, residuals):
            return residuals if spread is None else residuals / spread(rows, centre)

        folded = scores(rows, centre, residuals)
        if forward is None or not len(forward[2]):
            return cls(*_quantiles(folded, None), spread)
        ahead = scores(*forward)
        weights = np.concatenate([np.full(len(folded), (1 - FORWARD_SHARE) / len(folded)),
                                  np.full(len(ahead), FORWARD_SHARE / len(ahead))])
        return cls(*_quantiles(np.concatenate([folded, ahead]), weights), spread)

    def offsets(self, rows: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sigma = np.ones(len(rows)) if self.spread is None else self.spread(rows, centre)
        return sigma * self.score_low, sigma * self.score_high

    def to_json(self) -> dict:
        return {"score_low": self.score_low, "score_high": self.score_high,
                "spread": None if self.spread is None else self.spread.to_json()}

    @classmethod
    def from_json(cls, body: dict) -> "Interval":
        spread = body.get("spread")
        return cls(float(body["score_low"]), float(body["score_high"]), None if spread is None else Spread.from_json(spread))


def cross_check(rows: np.ndarray, centre: np.ndarray, residuals: np.ndarray, splits, conditional: bool = True,
                forward: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None):
    """(inside, width) per post: each fold's posts against the interval calibrated on the other folds'
    out-of-fold residuals only, i.e. what an unseen author's posts would get. width is high - low in
    log1p(likes), so exp(width) is the band's (1 + high) / (1 + low). `forward`: the time hold-out's
    (post indices, centre, residuals); a fold's own posts among them are left out of its calibration."""
    inside, width = np.zeros(len(residuals), bool), np.zeros(len(residuals))
    for split in splits:
        ahead = None
        if forward is not None:
            index, ahead_centre, ahead_residuals = forward
            kept = ~np.isin(index, split.test)
            ahead = (rows[index[kept]], ahead_centre[kept], ahead_residuals[kept])
        fitted = Interval.calibrate(rows[split.train], centre[split.train], residuals[split.train], conditional, ahead)
        low, high = fitted.offsets(rows[split.test], centre[split.test])
        inside[split.test] = (residuals[split.test] >= low) & (residuals[split.test] <= high)
        width[split.test] = high - low
    return inside, width


def by_tercile(values: np.ndarray, inside: np.ndarray, width: np.ndarray) -> list[dict]:
    """Coverage and median (1 + high) / (1 + low) in each third of the posts by `values` (e.g. the
    author's followers), smallest first."""
    bounds = np.quantile(values, [1 / 3, 2 / 3])
    third = np.digitize(values, bounds, right=True)
    return [{"coverage": float(inside[third == t].mean()), "ratio": float(np.exp(np.median(width[third == t]))),
             "posts": int((third == t).sum())} for t in range(3) if (third == t).any()]
