"""The search service's settings (reelvec/config.py reads them from flags and the environment)."""

import dataclasses

from reelvec import config, errors
from reelvec.originality import METHODS
from services.search.stores.base import HNSW_EF, HNSW_EF_CONSTRUCT, HNSW_M
from services.search.stores.quantization import INT8, KINDS, MEMORY, ORIGINALS, Quantization


@dataclasses.dataclass
class SearchSettings(config.ServerSettings):
    port: int = 50054
    # "edge": embedded engine in the data dir; "qdrant": qdrant-client
    store: str = dataclasses.field(default="edge", metadata={"choices": ("edge", "qdrant")})
    qdrant_url: str = ""  # store=qdrant: a server (http://host:6334); empty: local mode in data_dir
    qdrant_api_key: str = ""
    qdrant_replication_factor: int = 1  # copies of each shard on a Qdrant cluster (deploy/k8s: 2)
    # The first collection of a new data dir; later ones are named by the re-embed (docs/versions.md).
    collection: str = "videos_v1"
    near_duplicate_threshold: float = 0.95  # visual cosine similarity
    # "similarity", or a calibrated anomaly detector: knn, isolation_forest, lof
    originality: str = dataclasses.field(default="similarity", metadata={"choices": METHODS})
    optimize_after: int = 1000  # edge: writes before an idle store indexes them; 0: at start only
    optimize_idle_seconds: float = 5.0
    # edge: writes paused, searches not: index anyway once the oldest unindexed write is this old
    optimize_max_wait_seconds: float = 60.0
    search_threads: int = 1  # edge: threads per query (EdgeStore: more costs CPU under load)
    # edge: the frame search keeps its int8 scores (within 0.005 of the cosine; the vote reads them
    # at 0.6); true rescores them on the float32 rows, a disk read each: FindCopies' p99 at 100k
    # went from 219 to 83 ms without (BENCHMARKS.md, FindCopies at 100k)
    frame_rescore: bool = False
    # the HNSW graph and its search, both backends (docs/search.md, Settings for a million videos)
    hnsw_m: int = HNSW_M
    hnsw_ef_construct: int = HNSW_EF_CONSTRUCT
    hnsw_ef: int = HNSW_EF
    # the largest segment the optimizer merges into, MB of vectors, both backends; 0: Qdrant's
    # default, 256 MB per CPU. Each query searches every segment (docs/search.md, Segments)
    max_segment_mb: int = 0
    min_free_mb: int = 256  # edge: writes stop, RESOURCE_EXHAUSTED, with less disk free (EdgeStore)
    # The fused vector's compressed copy for the graph walk, and the rescoring on the originals
    # (docs/search.md, Quantization). What a collection gets when it is created: each keeps its own after.
    quantization: str = dataclasses.field(default=INT8, metadata={"choices": KINDS})
    quantization_oversampling: float = 0.0  # candidates rescored per hit; 0: the kind's default
    quantization_rescore: bool = True
    # where the float32 originals live: "disk" leaves RAM to the compressed copy and the graph
    quantization_originals: str = dataclasses.field(
        default=MEMORY, metadata={"choices": ORIGINALS})
    # Collections (comma-separated, or "all") that take the quantization above at this start instead
    # of their own: rebuilt in place, edge by the start-up optimize (before SERVING), a server in the
    # background.
    requantize: str = ""

    def __post_init__(self):
        Quantization.of(self)  # a bad combination fails at start, with what to change
        if self.max_segment_mb < 0:
            raise errors.InvalidInput(f"max_segment_mb {self.max_segment_mb}: use 0 (Qdrant's default) or more")
