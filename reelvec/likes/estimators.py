"""The likes models `reelvec train regressor --model` chooses from, all on the same rows (features.py)
and the same target, log1p(likes). Each saves to plain JSON (LightGBM's own text format inside for
gbm): nothing is ever unpickled.

- mean: the training mean, the floor every model must beat.
- author: ridge on the author statistics alone (features.AUTHOR): what the content adds is the
  gap between this and the full models.
- ridge: ridge on every feature, standardized, alpha by 5-fold cross-validation.
- gbm: LightGBM gradient-boosted trees on every feature; `huber` swaps squared error for the Huber
  loss, which viral outliers pull on less (for mlp and transformer too).
- mlp, transformer: neural.py; trained with PyTorch, served from ONNX.
- quartile: the quartile-classification variant: LightGBM multiclass over the training split's
  likes quartiles; it answers the typical log-likes of the quartile it finds most likely, so its
  quartile accuracy is the classifier's accuracy.
Targets are standardized (mean 0, scale 1) before fitting and restored after.
"""

import numpy as np

from reelvec.likes import features, neural

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)  # wide: ~1.9k features, often fewer videos
KINDS = ("ridge", "gbm", "mlp", "transformer", "quartile", "author", "mean")
HUBER_DELTA = 1.0  # in standardized target units: about one standard deviation of log1p(likes)


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


class Estimator:
    kind = ""
    takes_huber = False  # whether `huber` changes the loss this model trains with

    def __init__(self, huber: bool = False):
        self.huber = huber
        self.target_mean, self.target_scale = 0.0, 1.0

    @property
    def name(self) -> str:
        """The kind, with "+huber" when the Huber loss trained it, e.g. "gbm+huber"."""
        return self.kind + ("+huber" if self.huber and self.takes_huber else "")

    def fit(self, rows: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> "Estimator":
        self.target_mean, self.target_scale = float(target.mean()), float(target.std() or 1.0)
        self._fit(rows, (target - self.target_mean) / self.target_scale, rng)
        return self

    def predict_log(self, rows: np.ndarray) -> np.ndarray:
        return self._predict(rows) * self.target_scale + self.target_mean

    def to_json(self) -> dict:
        return {"kind": self.kind, "huber": self.huber, "target_mean": self.target_mean,
                "target_scale": self.target_scale, **self._state()}

    @staticmethod
    def from_json(body: dict) -> "Estimator":
        estimator = _CLASSES[body["kind"]](huber=bool(body.get("huber", False)))
        estimator.target_mean, estimator.target_scale = float(body["target_mean"]), float(body["target_scale"])
        estimator._load(body)
        return estimator

    def _fit(self, rows, y, rng): ...
    def _predict(self, rows): ...
    def _state(self) -> dict: ...
    def _load(self, body: dict) -> None: ...


class Mean(Estimator):
    kind = "mean"

    def _fit(self, rows, y, rng):
        pass  # the standardized target's mean is 0

    def _predict(self, rows):
        return np.zeros(len(rows))

    def _state(self):
        return {}

    def _load(self, body):
        pass


class _Standardized(Estimator):
    """Models that see the features standardized with the training split's mean and scale."""

    columns: slice | None = None  # every feature

    def _standardize(self, rows, fit: bool = False):
        rows = rows if self.columns is None else rows[:, self.columns]
        if fit:
            self.feature_mean, self.feature_scale = rows.mean(axis=0), rows.std(axis=0)
            self.feature_scale[self.feature_scale < 1e-9] = 1.0
        return (rows - self.feature_mean) / self.feature_scale

    def _state(self):
        return {"feature_mean": self.feature_mean.tolist(), "feature_scale": self.feature_scale.tolist()}

    def _load(self, body):
        self.feature_mean, self.feature_scale = (np.asarray(body[k], np.float64) for k in ("feature_mean", "feature_scale"))


class Ridge(_Standardized):
    kind = "ridge"

    def _fit(self, rows, y, rng):
        z = self._standardize(rows, fit=True)
        self.alpha = _choose_alpha(z, y, rng)
        self.weights = _ridge(z, y, self.alpha)

    def _predict(self, rows):
        return self._standardize(rows) @ self.weights

    def _state(self):
        return {**super()._state(), "alpha": self.alpha, "weights": self.weights.tolist()}

    def _load(self, body):
        super()._load(body)
        self.alpha, self.weights = float(body["alpha"]), np.asarray(body["weights"], np.float64)


class Author(Ridge):
    kind = "author"
    columns = features.AUTHOR


class GradientBoosting(Estimator):
    kind = "gbm"
    takes_huber = True

    def _params(self, n: int) -> dict:
        return {
            "objective": "huber" if self.huber else "regression",
            "alpha": HUBER_DELTA,  # LightGBM's name for the Huber delta
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_data_in_leaf": max(2, n // 20),
            "feature_fraction": 0.2,  # 1.9k mostly embedding columns: each tree sees a fifth
            "lambda_l2": 1.0,
            "num_threads": 0,
            "verbosity": -1,
            "seed": 0,
        }

    def _fit(self, rows, y, rng):
        import lightgbm

        data = lightgbm.Dataset(rows, y, params={"min_data_in_bin": 1, "verbosity": -1})
        self.booster = lightgbm.train(self._params(len(rows)), data, num_boost_round=300)

    def _predict(self, rows):
        return self.booster.predict(rows)

    def _state(self):
        return {"lightgbm": self.booster.model_to_string()}

    def _load(self, body):
        import lightgbm

        self.booster = lightgbm.Booster(model_str=body["lightgbm"])


class QuartileClassifier(GradientBoosting):
    kind = "quartile"
    takes_huber = False
    CLASSES = 4

    def _fit(self, rows, y, rng):
        import lightgbm

        self.bounds = np.quantile(y, [0.25, 0.5, 0.75])
        classes = np.searchsorted(self.bounds, y, side="right")
        centres = np.quantile(y, [0.125, 0.375, 0.625, 0.875])  # for a quartile tied away to nothing
        self.typical = [float(np.median(y[classes == c])) if (classes == c).any() else float(centres[c])
                        for c in range(self.CLASSES)]
        params = {**self._params(len(rows)), "objective": "multiclass", "num_class": self.CLASSES}
        data = lightgbm.Dataset(rows, classes, params={"min_data_in_bin": 1, "verbosity": -1})
        self.booster = lightgbm.train(params, data, num_boost_round=200)

    def _predict(self, rows):
        return np.asarray(self.typical)[self.booster.predict(rows).argmax(axis=1)]

    def _state(self):
        return {**super()._state(), "typical": self.typical}

    def _load(self, body):
        super()._load(body)
        self.typical = [float(v) for v in body["typical"]]


class _Neural(_Standardized):
    takes_huber = True

    def _fit(self, rows, y, rng):
        model = neural.train(self.kind, self._standardize(rows, fit=True), y, self.huber, int(rng.integers(2**31)))
        self.net = neural.OnnxNet(model)

    def _predict(self, rows):
        return self.net(self._standardize(rows))

    def _state(self):
        return {**super()._state(), "onnx_base64": self.net.to_text()}

    def _load(self, body):
        super()._load(body)
        self.net = neural.OnnxNet.from_text(body["onnx_base64"])


class MLP(_Neural):
    kind = "mlp"


class Transformer(_Neural):
    kind = "transformer"


_CLASSES = {cls.kind: cls for cls in (Mean, Ridge, Author, GradientBoosting, MLP, Transformer, QuartileClassifier)}


def make(kind: str, huber: bool = False) -> Estimator:
    if kind not in _CLASSES:
        raise ValueError(f"unknown model {kind!r}: use one of {', '.join(KINDS)}")
    return _CLASSES[kind](huber=huber)
