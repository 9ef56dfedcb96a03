"""Originality as anomaly detection over the corpus's fused vectors (the seed thesis's
approach), calibrated to [0, 1] against the corpus itself.

Methods (the search service's `--originality`):
- similarity (default): 1 - mean cosine similarity of the nearest neighbours; not
  calibrated, stable on tiny corpora.
- knn: anomaly = 1 - mean cosine similarity of the ORIGINALITY_NEIGHBOURS nearest neighbours.
- isolation_forest: scikit-learn's IsolationForest, anomaly = minus its score.
- lof: scikit-learn's LocalOutlierFactor (novelty mode, cosine), anomaly = minus its score.

Calibration: originality = the share of corpus videos whose own anomaly (leave-one-out: each
against the others) is at most this video's. 0.9 reads "more unusual than 90% of the corpus". The
detectors are fitted on a sample of at most FIT_SAMPLE videos and are never saved: scikit-learn
models persist only as pickles, so each start fits again from the store.
"""

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor

from reelvec.vectors import unit

METHODS = ("similarity", "knn", "isolation_forest", "lof")
CALIBRATED = METHODS[1:]
ORIGINALITY_NEIGHBOURS = 5
LOF_NEIGHBOURS = 20
FIT_SAMPLE = 5000
MIN_CORPUS = 3  # fewer videos than this: nothing to calibrate against


def similarity_originality(similarities: list[float], closest_copy: float = 0.0) -> float:
    """The default method: 1 - clip(max(mean similarity of the nearest neighbours, the closest
    copy's), 0, 1); an empty corpus gives 1.0 (services/search/analysis.py says why)."""
    if not similarities:
        return 1.0
    closeness = max(sum(similarities) / len(similarities), closest_copy)
    return 1.0 - min(max(closeness, 0.0), 1.0)


def knn_anomaly(similarities) -> float:
    """From the similarities of a video's nearest neighbours, best first (itself left out)."""
    top = list(similarities)[:ORIGINALITY_NEIGHBOURS]
    return 1.0 - float(np.mean(top)) if top else 1.0


class Calibrated:
    """One of CALIBRATED fitted on corpus rows (any scale: rows are L2-normalized here)."""

    def __init__(self, method: str, corpus: np.ndarray, seed: int = 0):
        if method not in CALIBRATED:
            raise ValueError(f"unknown originality method {method!r}: use one of {', '.join(CALIBRATED)}")
        corpus = unit(corpus)
        if len(corpus) < MIN_CORPUS:
            raise ValueError(f"originality needs at least {MIN_CORPUS} videos to calibrate against")
        self.method, self.size = method, len(corpus)
        self.model = None
        if method == "knn":
            reference = self._knn_reference(corpus)
        elif method == "isolation_forest":
            self.model = IsolationForest(n_estimators=200, random_state=seed).fit(corpus)
            reference = -self.model.score_samples(corpus)
        else:
            neighbours = min(LOF_NEIGHBOURS, len(corpus) - 1)
            self.model = LocalOutlierFactor(n_neighbors=neighbours, novelty=True, metric="cosine").fit(corpus)
            reference = -self.model.negative_outlier_factor_  # leave-one-out by construction
        self.corpus_anomaly = reference  # in fit order
        self.reference = np.sort(reference)

    @staticmethod
    def _knn_reference(corpus: np.ndarray, block: int = 1000) -> np.ndarray:
        """Each row's knn anomaly against the others, a block of rows at a time: the whole 5k x 5k
        similarity matrix would hold 200 MB in the search service."""
        k = min(ORIGINALITY_NEIGHBOURS, len(corpus) - 1)
        reference = np.empty(len(corpus))
        for start in range(0, len(corpus), block):
            sims = corpus[start : start + block] @ corpus.T
            sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf  # not itself
            reference[start : start + len(sims)] = 1.0 - np.partition(sims, -k, axis=1)[:, -k:].mean(axis=1)
        return reference

    def anomaly(self, vector: np.ndarray, neighbour_similarities=()) -> float:
        """`neighbour_similarities` (best first, the video itself left out) feed knn; the fitted
        detectors look at the vector alone."""
        if self.model is None:
            return knn_anomaly(neighbour_similarities)
        return float(-self.model.score_samples(unit(vector)[None])[0])

    def originality(self, anomaly: float) -> float:
        return float(np.searchsorted(self.reference, anomaly, side="right") / len(self.reference))

    def corpus_originality(self) -> np.ndarray:
        """Each fitted video's own calibrated originality (against the others), in fit order."""
        return np.searchsorted(self.reference, self.corpus_anomaly, side="right") / len(self.reference)
