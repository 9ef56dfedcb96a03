"""Clustered unit vectors that look like an embedding corpus, for the search benchmark.

Uniform random vectors are the wrong test: in 1859 dimensions every pair is nearly orthogonal, no
point has a meaningful neighbour, and an HNSW graph over them measures the curse of dimensionality
rather than a video corpus. Real embeddings instead share a common direction (random pairs have a
positive cosine), fall into topics of very unequal popularity, and vary within a topic along a few
directions. The model here, one point:

    x = normalize( c_k + sum_j z_j * s_kj * a_kj + noise * g / sqrt(dim) )

- cluster k drawn with probability ~ (k + 1) ** -zipf (a few huge topics, a long tail);
- centre c_k = normalize( sqrt(cone) * u + sqrt(1 - cone) * r_k ), u shared by all, r_k random, so
  centres have a pairwise cosine of about `cone`;
- a_kj: `rank` axes of cluster k, picked from a shared dictionary of `axes` random unit directions
  (topics vary along partly common factors: lighting, speech, music...); s_kj their standard
  deviations, decaying as j ** -decay, scaled so the offset's norm is about `spread` times a
  per-cluster factor lognormal(0, `spread_jitter`) (tight topics and loose ones);
- g: isotropic Gaussian noise of norm about `noise`, the part no low-rank structure explains.

Everything is a pure function of the seed: points come in fixed chunks of CHUNK, chunk i from its
own generator (seed, stream, i) and computed whole, so a corpus of n is the first n points of a larger
one, bit for bit, chunk size does not leak into the data, and queries (a separate stream) are never
in the index.
"""

import dataclasses
from collections.abc import Iterator

import numpy as np

from reelvec import modalities

CHUNK = 4096
_CORPUS, _QUERIES = 1, 2  # stream ids: the held-out queries never collide with indexed points


@dataclasses.dataclass(frozen=True)
class Spec:
    dim: int = modalities.DIMS[modalities.FUSED]
    clusters: int = 1000
    zipf: float = 1.0
    cone: float = 0.4
    rank: int = 24
    axes: int = 256
    decay: float = 0.5
    spread: float = 0.9
    spread_jitter: float = 0.3
    noise: float = 0.35
    seed: int = 0


class Generator:
    """Holds the mixture (centres, axes: a few MB); yields float32 unit vectors chunk by chunk."""

    def __init__(self, spec: Spec = Spec()):
        self.spec = spec
        rng = np.random.default_rng([spec.seed, 0])
        d, k = spec.dim, spec.clusters
        shared = _unit(rng.standard_normal(d, dtype=np.float32))
        own = _unit(rng.standard_normal((k, d), dtype=np.float32))
        self.centers = _unit(np.sqrt(spec.cone) * shared + np.sqrt(1 - spec.cone) * own)
        self.axes = _unit(rng.standard_normal((spec.axes, d), dtype=np.float32))
        self.axis_ids = np.stack([rng.choice(spec.axes, spec.rank, replace=False) for _ in range(k)])
        profile = np.arange(1, spec.rank + 1, dtype=np.float32) ** -spec.decay
        profile /= np.linalg.norm(profile)
        jitter = rng.lognormal(0.0, spec.spread_jitter, k).astype(np.float32)
        self.scales = spec.spread * jitter[:, None] * profile[None, :]  # (clusters, rank)
        weights = np.arange(1, k + 1, dtype=np.float64) ** -spec.zipf
        self.weights = weights / weights.sum()

    def _chunk(self, stream: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        spec = self.spec
        rng = np.random.default_rng([spec.seed, stream, index])
        labels = rng.choice(spec.clusters, size=CHUNK, p=self.weights)
        z = rng.standard_normal((CHUNK, spec.rank), dtype=np.float32)
        out = rng.standard_normal((CHUNK, spec.dim), dtype=np.float32)
        out *= spec.noise / np.sqrt(spec.dim)
        out += self.centers[labels]
        # Always the whole chunk, sliced at the end: a BLAS picks its kernel by the matrix's shape, so
        # the same rows in a shorter matmul can round differently in the last bit.
        for k in np.unique(labels):  # one small matmul per cluster present, never (n, rank, dim)
            rows = labels == k
            out[rows] += (z[rows] * self.scales[k]) @ self.axes[self.axis_ids[k]]
        return _unit(out[:size]), labels[:size]

    def chunks(self, n: int, stream: int = _CORPUS) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(offset, vectors, cluster labels) for points [offset, offset + len) of the first n."""
        for index, start in enumerate(range(0, n, CHUNK)):
            vectors, labels = self._chunk(stream, index, min(CHUNK, n - start))
            yield start, vectors, labels

    def corpus(self, n: int) -> np.ndarray:
        """n x dim float32."""
        out = np.empty((n, self.spec.dim), np.float32)
        for start, vectors, _ in self.chunks(n):
            out[start : start + len(vectors)] = vectors
        return out

    def queries(self, n: int) -> np.ndarray:
        """Held-out queries from the same mixture: new points, never copies of indexed ones."""
        chunks = [v for _, v, _ in self.chunks(n, _QUERIES)]
        return np.concatenate(chunks) if chunks else np.empty((0, self.spec.dim), np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return x


def neighbour_stats(x: np.ndarray, sample: int = 500, seed: int = 0) -> dict[str, float]:
    """Mean cosine of a sampled point to its nearest other point and to a random one: the numbers
    that say whether a corpus has neighbourhoods at all (uniform random: both near 0)."""
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(x), min(sample, len(x)), replace=False)
    sims = x[picked] @ x.T
    sims[np.arange(len(picked)), picked] = -np.inf
    others = rng.integers(0, len(x) - 1, len(picked))
    others += others >= picked  # never the point itself
    return {
        "nn_cosine": float(sims.max(axis=1).mean()),
        "random_cosine": float(np.einsum("ij,ij->i", x[picked], x[others]).mean()),
    }
