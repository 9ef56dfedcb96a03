"""The fused vector: one vector whose cosine similarity is a weighted mean of the modality cosines.

    fused(x) = concat_m( sqrt(w_m) * v_m(x) ) / sqrt( sum_{m present in x} w_m )

where v_m is the L2-normalized vector of modality m in the fixed order (visual, audio, text) and a
missing modality contributes a block of zeros. For two videos a and b:

    cos(fused(a), fused(b)) = sum_{m in both} w_m cos(v_m(a), v_m(b)) / sqrt(W_a * W_b)

with W_x the weight sum of the modalities x has. When both have every modality that is exactly the
weighted mean of the per-modality similarities; a modality missing on either side adds nothing, and
the normalization keeps fused vectors unit length so the store's cosine index needs no special case.
See docs/fusion.md.
"""

import hashlib
import os
from pathlib import Path

import numpy as np

from reelvec import modalities
from reelvec.vectors import unit

DEFAULT_WEIGHTS = {modalities.VISUAL: 0.5, modalities.AUDIO: 0.2, modalities.TEXT: 0.3}


def fuse(vectors: dict[str, np.ndarray], weights: dict[str, float] = DEFAULT_WEIGHTS) -> np.ndarray:
    """Fuses the modality vectors present in `vectors`; raises ValueError when none is present."""
    blocks, total = [], 0.0
    for name, dim in modalities.SOURCES.items():
        vector = vectors.get(name)
        if vector is None or len(vector) == 0:
            blocks.append(np.zeros(dim, np.float32))
            continue
        vector = np.asarray(vector, np.float32)
        if vector.shape != (dim,):
            raise ValueError(f"{name} vector has {vector.shape[0]} values, expected {dim}")
        vector = unit(vector, np.float32)
        if not vector.any():
            blocks.append(vector)
            continue
        blocks.append(np.sqrt(weights[name]) * vector)
        total += weights[name]
    if total == 0.0:
        raise ValueError("no modality to fuse: visual, audio and text are all missing")
    return (np.concatenate(blocks) / np.sqrt(total)).astype(np.float32)


def concatenated(vectors: dict[str, np.ndarray]) -> np.ndarray:
    """The unweighted input of a learned fusion: each modality L2-normalized, in the fixed order,
    a missing one as zeros."""
    blocks = []
    for name, dim in modalities.SOURCES.items():
        vector = vectors.get(name, ())
        blocks.append(unit(vector) if len(vector) else np.zeros(dim))
    return np.concatenate(blocks)


class WeightedConcat:
    """The default fusion (the module docstring)."""

    name = "weighted-concat-v1"
    dim = modalities.DIMS[modalities.FUSED]

    def __call__(self, vectors: dict[str, np.ndarray]) -> np.ndarray:
        return fuse(vectors)


def _gelu(x: np.ndarray) -> np.ndarray:
    """PyTorch's GELU(approximate="tanh"), which the autoencoder trains with."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


class LearnedFusion:
    """The encoder half of the autoencoder fusion (reelvec/tools/training/autoencoder.py), in numpy:
    standardize the concatenation, Linear, GELU, Linear, L2-normalize. Saved as `<name>.npz`, the
    name carrying a digest of the weights so that two trainings never share a version."""

    PREFIX = "autoencoder-"

    def __init__(self, path: Path):
        with np.load(path) as saved:
            self.mean, self.scale = saved["mean"], saved["scale"]
            self.w1, self.b1, self.w2, self.b2 = saved["w1"], saved["b1"], saved["w2"], saved["b2"]
        self.name = Path(path).stem
        self.dim = int(self.w2.shape[1])

    def __call__(self, vectors: dict[str, np.ndarray]) -> np.ndarray:
        if not any(len(vectors.get(name, ())) for name in modalities.SOURCES):
            raise ValueError("no modality to fuse: visual, audio and text are all missing")
        z = (concatenated(vectors) - self.mean) / self.scale
        out = _gelu(z @ self.w1 + self.b1) @ self.w2 + self.b2
        return unit(out).astype(np.float32)

    @classmethod
    def save(cls, folder: Path, mean, scale, w1, b1, w2, b2) -> Path:
        arrays = {k: np.asarray(v, np.float64) for k, v in dict(mean=mean, scale=scale, w1=w1, b1=b1, w2=w2, b2=b2).items()}
        digest = hashlib.sha256(b"".join(a.tobytes() for a in arrays.values())).hexdigest()[:12]
        path = Path(folder) / f"{cls.PREFIX}{arrays['w2'].shape[1]}-{digest}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npz")
        np.savez(partial, **arrays)
        os.replace(partial, path)
        return path


class Fusions:
    """Fusions by name: the default, or a learned one from `folder` (`<data-dir>/fusion`), loaded once."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._loaded = {WeightedConcat.name: WeightedConcat()}

    def get(self, name: str = ""):
        name = name or WeightedConcat.name
        found = self._loaded.get(name)
        if found is None:
            path = self.folder / f"{name}.npz"
            if not name.startswith(LearnedFusion.PREFIX) or "/" in name or not path.exists():
                raise FileNotFoundError(f"no fusion {name!r} (looked for {path})")
            found = self._loaded[name] = LearnedFusion(path)
        return found
