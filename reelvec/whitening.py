"""PCA whitening of frame descriptors (docs/copies.md, "Whitening").

EfficientNet-Lite0's ImageNet features spend most of their variance on what frames of any footage
share (the same kind of scene, light, texture), so two unrelated frames of one film meet at a high
cosine while a cropped copy of one frame may not stand far above them. Whitening, the PCA step of
the copy-detection descriptors in Meta's VSC22 baseline (SSCD), projects onto the leading
components and scales each to unit variance, so that the rarer directions that tell one shot from
another weigh as much as the common ones. Fitted once on frames of other footage: fitted on the
corpus it is then used on, it flattens exactly the directions that make a copy stand out (the
`debian` set fitted on itself lost most of its crops, docs/copies.md).
"""

import dataclasses
import hashlib

import numpy as np

from reelvec import copies
from reelvec.vectors import unit

# A component's scale is its standard deviation plus this share of the largest one: without a
# floor, directions with almost no variance in the fitted frames (noise there) would be blown up
# into the descriptor's main content.
FLOOR = 1e-6


@dataclasses.dataclass(frozen=True)
class Whitening:
    mean: np.ndarray  # [input dim]
    matrix: np.ndarray  # [input dim, output dim]: the components, each divided by its scale

    @classmethod
    def fit(cls, rows: np.ndarray, dims: int) -> "Whitening":
        """From `rows` [n, input dim] (n well above `dims`), the leading `dims` components."""
        rows = np.asarray(rows, np.float64)
        if not 0 < dims <= min(rows.shape):
            raise ValueError(f"whitening to {dims} dims needs at least that many rows and input dims, got {rows.shape}")
        mean = rows.mean(axis=0)
        _, singular, components = np.linalg.svd(rows - mean, full_matrices=False)
        scale = singular[:dims] / np.sqrt(len(rows)) + FLOOR * singular[0]
        return cls(mean.astype(np.float32), (components[:dims].T / scale).astype(np.float32))

    @property
    def dims(self) -> int:
        return self.matrix.shape[1]

    @property
    def head_id(self) -> int:
        """A positive int64 that names this whitening: descriptors of two heads with different ids
        cannot be compared, whatever model version carries them."""
        parts = (np.asarray(part, np.float32).tobytes(order="C") for part in (self.mean, self.matrix))
        digest = hashlib.sha256(b"".join(parts)).digest()
        return int.from_bytes(digest[:8], "big") >> 1

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """[..., input dim] -> unit rows [..., output dim]."""
        vectors = np.asarray(vectors, np.float32)
        return unit((vectors - self.mean) @ self.matrix, np.float32)

    def track(self, track: copies.Track) -> copies.Track:
        views = None if track.views is None else self.apply(track.views)
        return copies.Track(track.times, self.apply(track.vectors), views)
