"""L2 normalization, the one way every layer makes unit vectors (cosine similarity is a dot product
of them)."""

import numpy as np


def unit(rows, dtype=np.float64) -> np.ndarray:
    """L2-normalized rows (or one vector), computed in `dtype`. A zero row stays zero: cosine is
    undefined for it, and a missing modality is zeros."""
    rows = np.asarray(rows, dtype)
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
