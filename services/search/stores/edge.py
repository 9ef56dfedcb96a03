"""The embedded default: Qdrant's Rust engine in-process (qdrant-edge-py), a shard per directory.

When the HNSW index is built: Edge has no background optimizer, and its `optimize()` holds the GIL
for the whole build (about 30 s per 100k fused vectors on 2 cores), which stalls every thread of
the process, the gRPC handlers included. So it runs only where a stall is harmless:
  1. when the service opens the store, before it reports SERVING (indexes what an earlier run, or
     a crash, left unindexed; near-free when there is nothing to do);
  2. from a watcher thread, once `optimize_after` writes have piled up and the store has seen no
     write or search for `idle_seconds`;
  3. from the same watcher when searches never pause: once writes have paused for `idle_seconds`
     and the oldest unindexed write is `optimize_max_wait` seconds old. One stall is cheaper than
     every query scanning the unindexed points exactly until traffic stops (after 5k videos loaded
     under a steady Search load the gateway served 850 requests/s against 1,460 indexed). Never
     while writes flow: each optimize can merge segments and rebuild their whole graph.
Points not yet indexed sit in plain segments that are scanned exactly, so search stays correct
before an optimize, only slower. Nothing is optimized at close: the WAL already makes every write
durable, and shutdown must fit in the drain grace period.

Edge does not flush by itself either: its WAL kept every write until close, twice the disk, and a
crash replayed all of it at the next start (30k fused vectors: a 268 MB WAL and 3.2 s to reopen;
flushed, 44 MB and 0.15 s). So each optimize flushes, and the watcher flushes every
`flush_seconds` while writes come in, as a Qdrant server does (its flush_interval_sec, 5 s).

Edge maps its WAL and segments into memory, so a write that meets a full disk does not fail: the
process dies of SIGBUS (a CI run did, in the WAL test, on a nearly full disk). So writes and
optimizes stop while the disk has less than `min_free_mb` free: a write is refused with
RESOURCE_EXHAUSTED, an optimize waits, and reads go on.

The frame descriptors (base.FRAME) live in a second shard, `<path>/frames`, under the same write
lock, disk check, optimizer and flush as the videos' shard, so that a video and its frames are
written, indexed and persisted together.
"""

import dataclasses
import json
import logging
import shutil
import threading
import time
from pathlib import Path

import qdrant_edge as qe

from reelvec import errors, modalities
from services.search.stores import base, quantization

log = logging.getLogger(__name__)

_SCHEMAS = {base.KEYWORD: qe.PayloadSchemaType.Keyword, base.INTEGER: qe.PayloadSchemaType.Integer}

# Search tuning, measured at 100k clustered fused vectors on 2 cores (docs/benchmarks.md, Search).
# Long vectors get a compressed copy in RAM that the graph walk reads; the best candidates are
# rescored on the float32 vectors, so scores stay exact. The fused vector's copy is a per-collection
# setting (quantization.py, docs/search.md, Quantization); the visual vector and the frames keep int8: the
# graph walk reads a quarter of the bytes, which made search 2.5x faster and the HNSW build 2.7x
# faster at 100k, and with 2x oversampling recall equals the float32 graph's. Short vectors (text,
# audio) gain little.
QUANTIZE_MIN_DIM = 1024
LONG_VECTORS = quantization.Quantization(quantization.INT8)  # rescored x2
FULL_SCAN_THRESHOLD_KB = 10_000  # Qdrant's default
# Room for what one write can make Edge allocate: a new 32 MB WAL segment (it keeps one ahead) and
# a segment's growth, with margin.
MIN_FREE_MB = 256
FRAME_PAGE = 1024  # frame points a scroll page brings: a 17-minute video's at one a second


# Pinned is not offered for the originals (Edge treats it as Cached): "memory" is the page cache,
# filled when the shard opens; "disk" leaves the rows to be read when a rescore needs them.
_ORIGINALS = {quantization.MEMORY: qe.Memory.Cached, quantization.DISK: qe.Memory.Cold}


def _quantization_config(q: quantization.Quantization):
    # The compressed copy is what every hop of the graph walk reads: always pinned in RAM.
    if q.kind == quantization.INT8:
        return qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned)
    if q.kind in (quantization.BINARY, quantization.BINARY2):
        # The query keeps 8 bits a dimension against the stored bits: more recall for the same RAM.
        bits = {quantization.BINARY: qe.BinaryQuantizationEncoding.OneBit,
                quantization.BINARY2: qe.BinaryQuantizationEncoding.TwoBits}[q.kind]
        return qe.BinaryQuantizationConfig(memory=qe.Memory.Pinned, encoding=bits,
                                           query_encoding=qe.BinaryQuantizationQueryEncoding.Scalar8Bits)
    if q.kind == quantization.PRODUCT:
        return qe.ProductQuantizationConfig(compression=qe.CompressionRatio.X16, memory=qe.Memory.Pinned)
    return None


def _vector_params(dim: int, q: quantization.Quantization | None, place_originals: bool = False) -> qe.EdgeVectorParams:
    """`place_originals`: the float32 rows where `q` says; otherwise where Edge puts them by default."""
    return qe.EdgeVectorParams(
        size=dim, distance=qe.Distance.Cosine,
        quantization_config=_quantization_config(q) if q else None,
        memory=_ORIGINALS[q.originals] if q and place_originals else None,
    )


def _filter(f: base.Filter | None) -> qe.Filter | None:
    if f is None:
        return None
    must, must_not = [], []
    if f.author_ids:
        must.append(qe.FieldCondition(key=base.AUTHOR_ID, match=qe.MatchAny(list(f.author_ids))))
    if f.hashtags:
        must.append(qe.FieldCondition(key=base.HASHTAGS, match=qe.MatchAny(list(f.hashtags))))
    for key, bounds in ((base.LIKES, f.likes), (base.CREATED_AT, f.created_at)):
        if bounds is not None and (bounds.gte is not None or bounds.lte is not None):
            inclusive = qe.RangeFloat(gte=bounds.gte, lte=bounds.lte)
            must.append(qe.FieldCondition(key=key, range=inclusive))
    if f.content_sha256:
        sha = qe.MatchValue(f.content_sha256)
        must.append(qe.FieldCondition(key=base.CONTENT_SHA256, match=sha))
    if f.only_with_likes:
        must_not.append(qe.IsEmptyCondition(base.LIKES))
    if f.only_incomplete:
        must_not.append(qe.IsEmptyCondition(base.INCOMPLETE))
    if f.exclude_ids:
        must_not.append(qe.HasIdCondition({base.point_id(i) for i in f.exclude_ids}))
    if not must and not must_not:
        return None
    return qe.Filter(must=must or None, must_not=must_not or None)


_ANY_VIDEO = qe.Filter(must_not=[qe.IsEmptyCondition(key=base.VIDEO_ID)])  # every point of the frame index


def _of_video(video_id: str) -> qe.FieldCondition:
    return qe.FieldCondition(key=base.VIDEO_ID, match=qe.MatchValue(video_id))


def _search_params(hnsw_ef: int, q: quantization.Quantization | None = LONG_VECTORS) -> qe.SearchParams:
    rescored = None
    if q is not None and q.quantized:
        rescored = qe.QuantizationSearchParams(rescore=q.rescore, oversampling=q.candidates_per_hit)
    return qe.SearchParams(hnsw_ef=hnsw_ef, quantization=rescored)


def _open_shard(path: Path, config: qe.EdgeConfig, indexed: dict[str, str]) -> qe.EdgeShard:
    if (path / "edge_config.json").exists():
        shard = qe.EdgeShard.load(str(path), config)  # checks vector sizes still match
    else:
        path.mkdir(parents=True, exist_ok=True)
        shard = qe.EdgeShard.create(str(path), config)
    present = shard.info().payload_schema
    for field, kind in indexed.items():  # an index added by a later version reaches old shards too
        if field not in present:
            shard.update(qe.UpdateOperation.create_field_index(field, _SCHEMAS[kind]))
    return shard


def _drop_stale_frames(path: Path) -> None:
    config = path / "edge_config.json"
    if config.exists():
        if base.stale_frames(json.loads(config.read_text())["vectors"][base.FRAME]["size"], {"path": str(path)}):
            shutil.rmtree(path)


def _as_list(vector) -> list[float]:
    """The engine reads a list fastest; the vectors read from the store are lists already."""
    return vector if isinstance(vector, list) else list(vector)


def _request(query: base.Query, params: qe.SearchParams) -> qe.QueryRequest:
    return qe.QueryRequest(
        limit=query.k,
        query=qe.Query.Nearest(_as_list(query.vector), using=query.modality),
        filter=_filter(query.filter),
        with_payload=base.payload_selector(query.with_payload),
        with_vector=False,
        params=params,
    )


class EdgeStore(base.VideoStore):
    fast_reads = True  # in-process Rust that holds the GIL; about 0.3-1 ms per query up to 100k points

    def __init__(
        self,
        path: str | Path,
        dims: dict[str, int],
        optimize_after: int = 1000,
        idle_seconds: float = 5.0,
        optimize_max_wait: float = 60.0,
        indexing_threshold_kb: int | None = None,
        full_scan_threshold_kb: int | None = None,
        search_threads: int = 1,
        flush_seconds: float = 5.0,
        hnsw_m: int = base.HNSW_M,
        hnsw_ef_construct: int = base.HNSW_EF_CONSTRUCT,
        hnsw_ef: int = base.HNSW_EF,
        min_free_mb: int = MIN_FREE_MB,
        fused_quantization: quantization.Quantization = quantization.Quantization(),
        frame_rescore: bool = False,
        max_segment_mb: int = 0,
    ):
        """`optimize_after` 0 turns the idle optimizer off; the flush every `flush_seconds` stays.
        `optimize_max_wait` 0 leaves the index to idle times alone (see the module's docstring, 3).
        The thresholds, None for Qdrant's defaults (about 10 MB each), say how big a segment must be
        to get an HNSW index, and how many vectors a query must face before it walks the graph
        instead of scanning exactly.
        `search_threads`: Edge's own threads per query, one per segment. The call holds the GIL, so
        they are the only way one query uses two cores, but each query then costs about twice the
        CPU (0.63 against 0.34 ms at 5k videos): under load, where throughput is CPU-bound, one is
        best; a single query on a large corpus with idle cores may want more.
        `hnsw_m`, `hnsw_ef_construct`: the graph of each segment indexed from now on (segments
        already indexed keep theirs); `hnsw_ef`: how many candidates a search walks.
        `fused_quantization`: the fused vector's compressed copy, rescoring and originals; a shard
        created with another keeps its indexed segments until an optimize rebuilds them.
        `frame_rescore`: frame searches rescore on the float32 rows (exact, a disk read each) instead
        of returning the int8 copy's scores.
        `max_segment_mb`: the largest segment the optimizer merges into (its vectors' bytes); 0:
        Qdrant's default of 256 MB per CPU. A query searches every segment (docs/search.md)."""
        hnsw = qe.HnswIndexConfig(
            m=hnsw_m,
            ef_construct=hnsw_ef_construct,
            full_scan_threshold=full_scan_threshold_kb or FULL_SCAN_THRESHOLD_KB,
        )
        self._search_params = _search_params(hnsw_ef)
        self._frame_search = dataclasses.replace(LONG_VECTORS, rescore=frame_rescore)
        self._frame_params = _search_params(hnsw_ef, self._frame_search)
        self.fused_quantization = fused_quantization
        self._params_of = {modalities.FUSED: _search_params(hnsw_ef, fused_quantization)}

        def config(vectors: dict[str, qe.EdgeVectorParams]) -> qe.EdgeConfig:
            return qe.EdgeConfig(
                vectors=vectors,
                hnsw_config=hnsw,
                # prevent_unoptimized would hide unindexed points from search: never turn it on here.
                optimizers=qe.EdgeOptimizersConfig(
                    indexing_threshold=indexing_threshold_kb, max_segment_size=max_segment_mb * 1024 or None,
                    prevent_unoptimized=False,
                ),
                max_search_threads=search_threads,
            )

        self._path = Path(path)
        videos = {name: _vector_params(dim, LONG_VECTORS if dim >= QUANTIZE_MIN_DIM else None) for name, dim in dims.items()}
        if modalities.FUSED in dims:
            videos[modalities.FUSED] = _vector_params(dims[modalities.FUSED], fused_quantization, place_originals=True)
        self._shard = _open_shard(self._path, config(videos), base.INDEXED_FIELDS)
        # Frames always get the int8 copy: at one a second they outnumber the videos 30-60 to 1.
        frame = {base.FRAME: _vector_params(modalities.FRAME_DIM, LONG_VECTORS)}
        _drop_stale_frames(self._path / "frames")
        self._frames = _open_shard(self._path / "frames", config(frame), base.FRAME_INDEXED_FIELDS)
        # One writer at a time: upsert/delete must read "did it exist" and write atomically, and
        # optimize must not interleave with writes.
        self._write_lock = threading.Lock()
        self._min_free = min_free_mb << 20
        self._optimize_deferred = False
        self._optimize_after = optimize_after
        self._idle_seconds = idle_seconds
        self._flush_seconds = flush_seconds
        self._optimize_max_wait = optimize_max_wait
        self._pending_writes = 0  # since the last optimize
        self._pending_since = 0.0  # when the first of them came
        self._unflushed = 0  # since the last flush
        self._last_call = self._last_write = self._flushed_at = time.monotonic()
        self._closed = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="edge-maintenance", daemon=True)
        self._watcher.start()

    def _exists(self, video_id: str) -> bool:
        found = self._shard.retrieve(
            [base.point_id(video_id)], with_payload=False, with_vector=False
        )
        return bool(found)

    def _free_bytes(self) -> int:
        return shutil.disk_usage(self._path).free

    def _check_space(self) -> None:
        free = self._free_bytes()
        if free < self._min_free:
            raise errors.ResourceExhausted(
                f"the search store's disk has {free >> 20} MiB free, less than the {self._min_free >> 20} MiB "
                "it keeps in reserve: free space on the search service's data volume, or grow it"
            )

    def upsert(self, video: base.StoredVideo) -> bool:
        self._check_space()
        point = qe.Point(
            base.point_id(video.id), dict(video.vectors), {**video.payload, base.VIDEO_ID: video.id}
        )
        with self._write_lock:
            existed = self._exists(video.id)
            if video.frames is not None:
                self._replace_frames(video.id, video.frames)
            self._shard.update(qe.UpdateOperation.upsert_points([point]))
            self._wrote()
        return not existed

    def _replace_frames(self, video_id: str, track) -> None:  # under the write lock
        """The new frames overwrite the old ones of the same index; the old ones past them go."""
        points = [qe.Point(pid, vectors, payload) for pid, vectors, payload in base.frame_points(video_id, track)]
        if points:
            self._frames.update(qe.UpdateOperation.upsert_points(points))
        kept = [qe.HasIdCondition({p.id for p in points})] if points else None
        stale = qe.Filter(must=[_of_video(video_id)], must_not=kept)
        self._frames.update(qe.UpdateOperation.delete_points_by_filter(stale))

    def _wrote(self) -> None:  # under the write lock
        now = time.monotonic()
        if not self._pending_writes:
            self._pending_since = now
        self._pending_writes += 1
        self._unflushed += 1
        self._last_call = self._last_write = now

    def get(self, video_id: str, with_vectors: bool | list[str] = False) -> base.StoredVideo | None:
        records = self._shard.retrieve(
            [base.point_id(video_id)], with_payload=True, with_vector=with_vectors
        )
        return base.StoredVideo.from_point(records[0], with_vectors) if records else None

    def drop_frames(self) -> None:
        self._check_space()  # a delete is a WAL write too
        with self._write_lock:
            self._frames.update(qe.UpdateOperation.delete_points_by_filter(_ANY_VIDEO))
            self._wrote()

    def delete(self, video_id: str) -> bool:
        self._check_space()  # a delete is a WAL write too
        with self._write_lock:
            existed = self._exists(video_id)
            # also when the video is not there: frames an upsert wrote before it failed go too
            self._frames.update(qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=[_of_video(video_id)])))
            if existed:
                self._shard.update(qe.UpdateOperation.delete_points([base.point_id(video_id)]))
            self._wrote()
        return existed

    def search_batch(self, searches):
        self._last_call = time.monotonic()
        requests = [_request(q, self._params_of.get(q.modality, self._search_params)) for q in searches]
        answers = self._shard.query_batch(qe.QueryBatchRequest(requests))
        return [[base.Hit.from_point(p, q.with_payload) for p in points] for q, points in zip(searches, answers)]

    def search_frames(self, vectors, k, exclude_id="", ef=None, min_score=None):
        if not len(vectors):
            return []
        self._last_call = time.monotonic()
        others = qe.Filter(must_not=[_of_video(exclude_id)]) if exclude_id else None
        params = self._frame_params if ef is None else _search_params(ef, self._frame_search)
        requests = [
            qe.QueryRequest(
                limit=k,
                query=qe.Query.Nearest(row, using=base.FRAME),
                filter=others,
                with_payload=False,
                with_vector=False,
                score_threshold=min_score,
                params=params,
            )
            for row in vectors.tolist()
        ]
        answers = self._frames.query_batch(qe.QueryBatchRequest(requests))
        return base.name_hits([[(p.id, p.score) for p in points] for points in answers], self._video_ids_of)

    def _video_ids_of(self, point_ids: list[str]) -> dict[str, str]:
        records = self._frames.retrieve(point_ids, with_payload=[base.VIDEO_ID], with_vector=False)
        return {str(r.id): r.payload[base.VIDEO_ID] for r in records}

    def frames_of(self, video_ids):
        if not video_ids:
            return {}
        found = base.tracks(self._frames.retrieve(
            [base.track_point_id(video_id) for video_id in sorted(video_ids)], with_payload=True, with_vector=False))
        if missing := video_ids - found.keys():
            found |= self._frames_without_track(missing)
        return found

    def _frames_without_track(self, video_ids):
        theirs = qe.Filter(must=[qe.FieldCondition(key=base.VIDEO_ID, match=qe.MatchAny(sorted(video_ids)))])
        records, offset = [], None
        while True:
            page, offset = self._frames.scroll(qe.ScrollRequest(
                offset=offset, limit=FRAME_PAGE, filter=theirs, with_payload=True, with_vector=True
            ))
            records += page
            if offset is None:
                return base.frame_tracks(records)

    def stored_vectors(self, video_ids, names):
        points = {base.point_id(video_id): video_id for video_id in video_ids}
        records = self._shard.retrieve(list(points), with_payload=False, with_vector=sorted(names))
        return {points[r.id]: dict(r.vector or {}) for r in records}

    def scroll(self, offset=None, limit=100, with_vectors=False, filter=None):
        records, next_offset = self._shard.scroll(
            qe.ScrollRequest(
                offset=base.parse_offset(offset),
                limit=limit,
                filter=_filter(filter),
                with_payload=True,
                with_vector=with_vectors,
            )
        )
        videos = [base.StoredVideo.from_point(r, with_vectors) for r in records]
        return videos, (str(next_offset) if next_offset is not None else None)

    def count(self) -> int:
        return self._shard.count(qe.CountRequest(exact=True))

    def quantization_in_engine(self) -> tuple[str, str]:
        """(kind, originals) of the fused vector as the shard persisted them."""
        params = json.loads((self._path / "edge_config.json").read_text())["vectors"][modalities.FUSED]
        config = params.get("quantization_config") or {}
        originals = quantization.DISK if params.get("memory") == "cold" else quantization.MEMORY
        if "binary" in config:
            bits = config["binary"].get("encoding")
            return (quantization.BINARY2 if bits == "two_bits" else quantization.BINARY), originals
        kinds = {"scalar": quantization.INT8, "product": quantization.PRODUCT}
        return next((kinds[key] for key in config if key in kinds), quantization.NONE), originals

    @property
    def indexed_vectors_count(self) -> int:
        return self._shard.info().indexed_vectors_count

    def optimize(self) -> None:
        if (free := self._free_bytes()) < self._min_free:  # it writes whole new segments
            if not self._optimize_deferred:  # once, not at every poll of the watcher
                log.warning("optimize deferred: disk almost full", extra={"free_mb": free >> 20})
            self._optimize_deferred = True
            return
        self._optimize_deferred = False
        with self._write_lock:
            if self._closed.is_set():
                return
            started = time.monotonic()
            changed = self._shard.optimize()
            changed = self._frames.optimize() or changed
            self._flush()
            self._pending_writes = 0
        if changed:
            log.info(
                "optimized",
                extra={
                    "seconds": round(time.monotonic() - started, 3),
                    "indexed_vectors": self.indexed_vectors_count,
                },
            )

    def flush(self) -> None:
        """Persists the segments, so that the WAL can drop what they hold."""
        with self._write_lock:
            if not self._closed.is_set():
                self._flush()

    def _flush(self) -> None:  # under the write lock
        self._shard.flush()
        self._frames.flush()
        self._unflushed = 0
        self._flushed_at = time.monotonic()

    def _watch(self) -> None:
        poll = min(max(self._idle_seconds, 0.05), self._flush_seconds, 1.0)
        while not self._closed.wait(poll):
            now = time.monotonic()
            due = self._optimize_after > 0 and self._pending_writes >= self._optimize_after
            idle = now - self._last_call >= self._idle_seconds
            settled = (
                self._optimize_max_wait > 0
                and now - self._last_write >= self._idle_seconds
                and now - self._pending_since >= self._optimize_max_wait
            )
            if due and (idle or settled):
                self.optimize()
            elif self._unflushed and now - self._flushed_at >= self._flush_seconds:
                self.flush()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._watcher.join()
        with self._write_lock:
            self._shard.close()
            self._frames.close()

    def drop(self) -> None:
        self.close()
        shutil.rmtree(self._path, ignore_errors=True)
