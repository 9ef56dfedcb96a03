"""Originality as calibrated anomaly detection: each method on a clustered corpus, the search
service's detector over a real embedded store, and the service refusing an unknown method."""

import os
import subprocess
import sys

import numpy as np
import pytest

from reelvec import modalities, originality
from services.search import analysis
from services.search.stores import base
from services.search.stores.edge import EdgeStore

DIM = 64


def _corpus(rng, clusters=4, per=30, spread=0.3):
    centres = rng.normal(size=(clusters, DIM))
    rows = np.concatenate([c + spread * rng.normal(size=(per, DIM)) for c in centres])
    return rows, centres


@pytest.mark.parametrize("method", originality.CALIBRATED)
def test_an_outlier_is_more_original_than_a_typical_video(method):
    rng = np.random.default_rng(1)
    rows, centres = _corpus(rng)
    fitted = originality.Calibrated(method, rows)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def score(vector):
        sims = np.sort(unit @ (vector / np.linalg.norm(vector)))[::-1]
        return fitted.originality(fitted.anomaly(vector, sims))

    typical, outlier = centres[0], rng.normal(size=DIM)
    assert score(outlier) > 0.9 and score(typical) < 0.5
    own = fitted.corpus_originality()
    assert own.shape == (len(rows),) and own.min() > 0 and own.max() == 1.0
    assert np.all(np.diff(fitted.reference) >= 0)


def test_too_small_a_corpus_or_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="at least"):
        originality.Calibrated("knn", np.ones((2, DIM)))
    with pytest.raises(ValueError, match="unknown originality method"):
        originality.Calibrated("zscore", np.ones((5, DIM)))


def _stored(i, fused):
    visual = np.zeros(modalities.DIMS[modalities.VISUAL])
    visual[i % len(visual)] = 1.0  # distinct visual vectors: no near-duplicates in this corpus
    return base.StoredVideo(id=f"v{i}", vectors={modalities.FUSED: list(fused), modalities.VISUAL: list(visual)})


def _open(kind, tmp_path):
    if kind == "edge":
        return EdgeStore(tmp_path / "edge", modalities.DIMS, optimize_after=0)
    from services.search.stores.qdrant import QdrantStore

    return QdrantStore("videos_test", modalities.DIMS, path=str(tmp_path / "qdrant"))


@pytest.mark.parametrize("kind", ["edge", "qdrant"])
def test_the_service_detector_fits_from_the_store_and_refits_as_it_grows(kind, tmp_path):
    rng = np.random.default_rng(2)
    dim = modalities.DIMS[modalities.FUSED]
    centre = rng.normal(size=dim)
    store = _open(kind, tmp_path)
    try:
        detector = analysis.Detector("knn", store, modalities.FUSED)
        assert detector.current() is None  # empty: nothing to calibrate against
        for i in range(20):
            store.upsert(_stored(i, centre + 0.5 * rng.normal(size=dim)))
        first = detector.current()
        assert first.size == 20 and detector.current() is first  # unchanged corpus: no refit
        store.upsert(_stored(20, centre + 0.5 * rng.normal(size=dim)))
        assert detector.current() is first  # 1 in 20 is under the refit threshold
        for i in range(21, 24):
            store.upsert(_stored(i, centre + 0.5 * rng.normal(size=dim)))
        assert detector.current().size == 24

        def analyze(fused):
            return analysis.analyze(store, {modalities.FUSED: list(fused)}, k=5, calibrated=detector.current())

        assert analyze(rng.normal(size=dim)).originality == 1.0  # unlike every stored video
        assert analyze(centre).originality < 0.2  # the middle of the only cluster
    finally:
        store.close()


def test_the_service_refuses_an_unknown_method():
    done = subprocess.run([sys.executable, "-m", "services.search", "--originality", "zscore"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--originality: invalid choice: 'zscore'" in done.stderr
    done = subprocess.run([sys.executable, "-m", "services.search"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "REELVEC_ORIGINALITY": "zscore"})
    assert done.returncode == 2 and "REELVEC_ORIGINALITY must be one of similarity, knn" in done.stderr
