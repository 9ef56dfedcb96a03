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

import numpy as np

from reelvec import modalities

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
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            blocks.append(np.zeros(dim, np.float32))
            continue
        blocks.append(np.sqrt(weights[name]) * vector / norm)
        total += weights[name]
    if total == 0.0:
        raise ValueError("no modality to fuse: visual, audio and text are all missing")
    return (np.concatenate(blocks) / np.sqrt(total)).astype(np.float32)
