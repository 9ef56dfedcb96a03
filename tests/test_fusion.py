import numpy as np
import pytest

from reelvec import modalities
from reelvec.fusion import DEFAULT_WEIGHTS, fuse


def _random(rng, with_=("visual", "audio", "text")):
    return {name: rng.normal(size=dim).astype(np.float32) for name, dim in modalities.SOURCES.items() if name in with_}


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_fused_similarity_is_weighted_mean_of_modality_similarities():
    rng = np.random.default_rng(0)
    a, b = _random(rng), _random(rng)
    b = {k: a[k] + 0.5 * v for k, v in b.items()}  # correlated, so cosines are far from zero
    expected = sum(DEFAULT_WEIGHTS[m] * _cos(a[m], b[m]) for m in a) / sum(DEFAULT_WEIGHTS.values())
    fa, fb = fuse(a), fuse(b)
    assert fa.shape == (modalities.DIMS["fused"],)
    assert np.isclose(np.linalg.norm(fa), 1.0, atol=1e-5)
    assert np.isclose(float(fa @ fb), expected, atol=1e-5)


def test_missing_modality_adds_nothing_and_vector_stays_unit():
    rng = np.random.default_rng(1)
    a = _random(rng, with_=("visual", "text"))
    b = _random(rng)
    b["visual"] = a["visual"].copy()
    fa, fb = fuse(a), fuse(b)
    assert np.isclose(np.linalg.norm(fa), 1.0, atol=1e-5)
    w = DEFAULT_WEIGHTS
    expected = (w["visual"] * 1.0 + w["text"] * _cos(a["text"], b["text"])) / np.sqrt(
        (w["visual"] + w["text"]) * sum(w.values())
    )
    assert np.isclose(float(fa @ fb), expected, atol=1e-5)
    audio = slice(modalities.VISUAL_DIM, modalities.VISUAL_DIM + modalities.AUDIO_DIM)
    assert not fa[audio].any()


def test_only_one_modality_equals_that_modality():
    rng = np.random.default_rng(2)
    v = rng.normal(size=modalities.VISUAL_DIM)
    fused = fuse({"visual": v})
    assert np.allclose(fused[: modalities.VISUAL_DIM], v / np.linalg.norm(v), atol=1e-6)


def test_wrong_size_and_nothing_to_fuse_are_errors():
    with pytest.raises(ValueError, match="expected 1280"):
        fuse({"visual": np.ones(10)})
    with pytest.raises(ValueError, match="no modality"):
        fuse({"text": np.zeros(modalities.TEXT_DIM)})


def test_the_served_learned_fusion_is_the_trained_autoencoders_bottleneck(tmp_path):
    """The gateway's numpy forward pass against PyTorch's, on videos with and without audio; an
    unknown or path-like name is refused."""
    from reelvec.fusion import Fusions, concatenated
    from reelvec.tools.training.autoencoder import LATENT, Autoencoder

    rng = np.random.default_rng(2)
    videos = [_random(rng) for _ in range(30)] + [_random(rng, with_=("visual", "text")) for _ in range(10)]
    rows = np.stack([concatenated(v) for v in videos])
    trained = Autoencoder(rows)
    path = trained.save(tmp_path)
    served = Fusions(tmp_path).get(path.stem)
    assert served.name == path.stem and served.dim == LATENT and path.stem.startswith(f"autoencoder-{LATENT}-")
    expected = trained.encode(rows)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    got = np.stack([served(v) for v in videos])
    assert got.shape == (40, LATENT) and np.allclose(got, expected, atol=1e-5)
    assert Fusions(tmp_path).get("").name == "weighted-concat-v1"
    for bad in ("autoencoder-256-000000000000", "../autoencoder-x", "something"):
        with pytest.raises(FileNotFoundError):
            Fusions(tmp_path).get(bad)
    with pytest.raises(ValueError):
        served({})
