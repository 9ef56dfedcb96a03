"""How a collection compresses its fused vectors for the graph walk, and how it rescores.

One backend-neutral setting that each store translates into its engine's terms (edge.py and
qdrant.py). The graph walk compares the query with the compressed copy, kept in RAM; the best
`oversampling * k` candidates are then rescored on the original float32 vectors, so the scores
returned stay exact cosines (the near-duplicate threshold compares them). The originals are kept in
memory or on disk: on disk, a query reads only its candidates' rows, which is what lets 10M fused
vectors (74 GB as float32) be served from one 64 GB node. docs/search.md, "Quantization", has the measurements.
"""

import dataclasses

from reelvec import errors

NONE, INT8, BINARY, BINARY2, PRODUCT = "none", "int8", "binary", "binary2", "pq"
KINDS = (NONE, INT8, BINARY, BINARY2, PRODUCT)
MEMORY, DISK = "memory", "disk"
ORIGINALS = (MEMORY, DISK)
# Candidates rescored per hit wanted. int8 keeps the ranking almost intact; one or two bits a
# dimension lose more of it, and product codes more again, so they need more candidates to find the
# true top k among them (bench search: at 10k, 1 bit with 4x gave recall@10 0.978, 2 bits 0.992).
DEFAULT_OVERSAMPLING = {NONE: 1.0, INT8: 2.0, BINARY: 4.0, BINARY2: 4.0, PRODUCT: 4.0}
MAX_OVERSAMPLING = 64.0  # beyond this a query rescores more rows than an exact scan of a small corpus
# Bytes of the compressed copy per dimension (product quantization at x16: 4 bytes per 16 dims).
BYTES_PER_DIM = {NONE: 0.0, INT8: 1.0, BINARY: 1 / 8, BINARY2: 2 / 8, PRODUCT: 4 / 16}


@dataclasses.dataclass(frozen=True)
class Quantization:
    """`kind`: none (float32 only), int8 (scalar), binary (1 bit a dimension), binary2 (2 bits),
    pq (product, x16). `oversampling` 0 takes the kind's default. `rescore` False returns the
    compressed copy's ranking and scores as they are. `originals`: where the float32 vectors live."""

    kind: str = INT8
    oversampling: float = 0.0
    rescore: bool = True
    originals: str = MEMORY

    def __post_init__(self):
        if self.kind not in KINDS:
            raise errors.InvalidInput(f"quantization {self.kind!r}: use one of {', '.join(KINDS)}")
        if self.originals not in ORIGINALS:
            raise errors.InvalidInput(
                f"quantization originals {self.originals!r}: use one of {', '.join(ORIGINALS)}")
        if self.oversampling and not 1.0 <= self.oversampling <= MAX_OVERSAMPLING:
            raise errors.InvalidInput(
                f"quantization oversampling {self.oversampling:g}: use 1 to {MAX_OVERSAMPLING:g} (0: the default "
                f"of {self.kind}, {DEFAULT_OVERSAMPLING[self.kind]:g})")
        if self.kind == NONE and not self.rescore:
            raise errors.InvalidInput("quantization none has nothing to rescore: rescore off needs a quantized kind")

    @property
    def quantized(self) -> bool:
        return self.kind != NONE

    @property
    def candidates_per_hit(self) -> float:
        return self.oversampling or DEFAULT_OVERSAMPLING[self.kind]

    def ram_bytes(self, dim: int) -> float:
        """Bytes per vector the search keeps in RAM for the vector itself (the graph comes on top)."""
        originals = 4 * dim if self.originals == MEMORY or not self.quantized else 0
        return BYTES_PER_DIM[self.kind] * dim + originals

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict) -> "Quantization":
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise errors.InvalidInput(f"quantization: unknown fields {', '.join(sorted(unknown))}")
        return cls(**fields)

    @classmethod
    def of(cls, settings) -> "Quantization":
        """From the search service's settings (SearchSettings.quantization...)."""
        return cls(settings.quantization, settings.quantization_oversampling,
                   settings.quantization_rescore, settings.quantization_originals)
