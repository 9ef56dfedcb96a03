"""What an Edge shard keeps, by part, for the bytes-per-video columns of `bench search`.

A search keeps resident what every query touches: the compressed copy that the graph walk reads,
the graph itself, and the id tracker and payload indexes. The float32 originals are read only to
rescore a few candidates per query when a compressed copy exists, so where they live is a setting
(services/search/stores/quantization.py); without a compressed copy the walk reads them at every
hop and they must be resident too. The payload storage (cold) and the WAL (two preallocated 32 MiB
files, whatever the corpus) are disk only, and are left out of RAM.
"""

import dataclasses
from pathlib import Path

ORIGINALS, COMPRESSED, GRAPH, PAYLOAD, INDEXES = "originals", "compressed", "graph", "payload", "indexes"


@dataclasses.dataclass
class Footprint:
    parts: dict[str, int]  # allocated bytes of one named vector's parts and the shard's shared ones

    def ram(self, originals_resident: bool) -> int:
        resident = self.parts[COMPRESSED] + self.parts[GRAPH] + self.parts[INDEXES]
        return resident + (self.parts[ORIGINALS] if originals_resident else 0)

    @property
    def disk(self) -> int:
        return sum(self.parts.values())


def allocated(path: Path) -> int:
    """Allocated bytes, as du counts them: Edge's mapped files are sparse."""
    return path.stat().st_blocks * 512


def of_vector(shard: Path, vector: str) -> Footprint:
    """The parts of one named vector (other vectors' storages and graphs left out) plus the shard's
    payload and indexes, over every segment, after a flush."""
    parts = dict.fromkeys((ORIGINALS, COMPRESSED, GRAPH, PAYLOAD, INDEXES), 0)
    for segment in (shard / "segments").iterdir():
        for path in segment.rglob("*"):
            if not path.is_file():
                continue
            top = path.relative_to(segment).parts[0]
            if top == f"vector_storage-{vector}":
                parts[COMPRESSED if path.name.startswith("quantized") else ORIGINALS] += allocated(path)
            elif top == f"vector_index-{vector}":
                parts[GRAPH] += allocated(path)
            elif top == "payload_storage":
                parts[PAYLOAD] += allocated(path)
            elif not top.startswith(("vector_storage-", "vector_index-")):
                parts[INDEXES] += allocated(path)
    return Footprint(parts)
