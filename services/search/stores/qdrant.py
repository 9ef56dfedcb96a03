"""A Qdrant server or cluster through qdrant-client (gRPC), for deployments past one machine.

The same class runs qdrant-client's local mode (`path=` or ":memory:"): a pure-Python brute-force
imitation of the server, with the server's API, used by the contract tests because no Qdrant server
runs on the development machines. The server builds its HNSW and payload indexes itself.

A collection's frame descriptors (base.FRAME) live in a second collection, `<collection>.frames`:
the catalog's names never hold a dot, so it cannot meet a collection of its own.
"""

import logging
import threading
import warnings
from contextlib import nullcontext

from qdrant_client import QdrantClient, models

from reelvec import errors, modalities
from services.search.stores import base, quantization

log = logging.getLogger(__name__)

_SCHEMAS = {
    base.KEYWORD: models.PayloadSchemaType.KEYWORD,
    base.INTEGER: models.PayloadSchemaType.INTEGER,
}


def _filter(f: base.Filter | None) -> models.Filter | None:
    if f is None:
        return None
    must, must_not = [], []
    if f.author_ids:
        authors = models.MatchAny(any=list(f.author_ids))
        must.append(models.FieldCondition(key=base.AUTHOR_ID, match=authors))
    if f.hashtags:
        tags = models.MatchAny(any=list(f.hashtags))
        must.append(models.FieldCondition(key=base.HASHTAGS, match=tags))
    for key, bounds in ((base.LIKES, f.likes), (base.CREATED_AT, f.created_at)):
        if bounds is not None and (bounds.gte is not None or bounds.lte is not None):
            inclusive = models.Range(gte=bounds.gte, lte=bounds.lte)
            must.append(models.FieldCondition(key=key, range=inclusive))
    if f.content_sha256:
        sha = models.MatchValue(value=f.content_sha256)
        must.append(models.FieldCondition(key=base.CONTENT_SHA256, match=sha))
    if f.only_with_likes:
        must_not.append(models.IsEmptyCondition(is_empty=models.PayloadField(key=base.LIKES)))
    if f.only_incomplete:
        must_not.append(models.IsEmptyCondition(is_empty=models.PayloadField(key=base.INCOMPLETE)))
    if f.exclude_ids:
        excluded = [str(base.point_id(i)) for i in f.exclude_ids]
        must_not.append(models.HasIdCondition(has_id=excluded))
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)


_ANY_VIDEO = models.Filter(must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key=base.VIDEO_ID))])


def _of_video(video_id: str) -> models.FieldCondition:
    return models.FieldCondition(key=base.VIDEO_ID, match=models.MatchValue(value=video_id))


_INT8 = models.ScalarQuantization(
    scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True))
# Frames outnumber videos 30-60 to 1: an int8 copy for the graph walk, as edge keeps of long vectors;
# the visual vector gets one for the same reason, the fused one what its collection chose.
_FRAME_QUANTIZATION = _INT8
QUANTIZE_MIN_DIM = 1024
_BINARY_BITS = {quantization.BINARY: models.BinaryQuantizationEncoding.ONE_BIT,
                quantization.BINARY2: models.BinaryQuantizationEncoding.TWO_BITS}


def quantization_config(q: quantization.Quantization):
    """The server's config for the fused vector, as edge.py builds Edge's: the compressed copy in RAM."""
    if q.kind == quantization.INT8:
        return _INT8
    if q.kind in _BINARY_BITS:
        return models.BinaryQuantization(binary=models.BinaryQuantizationConfig(
            always_ram=True, encoding=_BINARY_BITS[q.kind],
            query_encoding=models.BinaryQuantizationQueryEncoding.SCALAR8BITS))
    if q.kind == quantization.PRODUCT:
        return models.ProductQuantization(product=models.ProductQuantizationConfig(
            compression=models.CompressionRatio.X16, always_ram=True))
    return None


def _search_params(hnsw_ef: int, q: quantization.Quantization | None = None) -> models.SearchParams:
    if q is None or not q.quantized:
        return models.SearchParams(hnsw_ef=hnsw_ef)
    return models.SearchParams(hnsw_ef=hnsw_ef, quantization=models.QuantizationSearchParams(
        rescore=q.rescore, oversampling=q.candidates_per_hit))


_LONG_VECTORS = quantization.Quantization(quantization.INT8)
FRAME_PAGE = 1024  # frame points a scroll page brings


class Connection:
    """One qdrant-client for every collection of a search service. Local mode is not thread-safe
    and keeps its directory locked, so its collections share one client and one lock."""

    def __init__(self, url: str | None = None, api_key: str | None = None, path: str | None = None,
                 replication_factor: int = 1):
        """`url` for a server; otherwise local mode at `path` (a directory, or ":memory:").
        `replication_factor`: copies of each shard of the collections created (a cluster)."""
        self.local = url is None
        self.replication_factor = replication_factor
        if self.local:
            where = {"location": path} if path == ":memory:" else {"path": path}
            self.client = QdrantClient(**where, force_disable_check_same_thread=True)
        else:
            self.client = QdrantClient(url=url, api_key=api_key or None, prefer_grpc=True)
        self.lock = threading.Lock()

    def point_alias(self, alias: str, collection: str) -> None:
        """Moves (or creates) the alias in one atomic Qdrant operation: readers of the alias see
        the old collection or the new one, never neither."""
        current = {a.alias_name for a in self.client.get_aliases().aliases}
        operations = [models.CreateAliasOperation(create_alias=models.CreateAlias(
            collection_name=collection, alias_name=alias))]
        if alias in current:
            operations.insert(0, models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        with self.lock:
            self.client.update_collection_aliases(change_aliases_operations=operations)

    def close(self) -> None:
        with self.lock:
            self.client.close()


class QdrantStore(base.VideoStore):
    def __init__(
        self,
        collection: str,
        dims: dict[str, int],
        url: str | None = None,
        api_key: str | None = None,
        path: str | None = None,
        connection: Connection | None = None,
        fused_quantization: quantization.Quantization = quantization.Quantization(),
        hnsw_m: int = base.HNSW_M,
        hnsw_ef_construct: int = base.HNSW_EF_CONSTRUCT,
        hnsw_ef: int = base.HNSW_EF,
        max_segment_mb: int = 0,
    ):
        """Its own connection from `url`/`path` (see Connection), or a shared `connection`.
        `fused_quantization`: the fused vector's compressed copy, rescoring and originals; a server
        collection created with another is changed to it, and the server rebuilds in the background.
        `hnsw_m`, `hnsw_ef_construct`: the graph of both collections, changed on a server collection
        made with another as the quantization is; `hnsw_ef`: how many candidates a search walks
        (as EdgeStore's, so one setting means the same on both backends); `max_segment_mb`: the
        largest segment the server's optimizer merges into, set as the graph is; 0 leaves the
        collection's as it is (the server's default: 256 MB per CPU)."""
        self._collection = collection
        self._frames = f"{collection}.frames"
        self._owns_connection = connection is None
        self._connection = connection or Connection(url, api_key, path)
        self._client = self._connection.client
        self._local = self._connection.local
        # Writes hold it in every mode (exists-then-write must be atomic); reads only in local mode.
        self._lock = self._connection.lock
        self._read_lock = self._lock if self._local else nullcontext()
        self.fused_quantization = fused_quantization
        self._hnsw = models.HnswConfigDiff(m=hnsw_m, ef_construct=hnsw_ef_construct)
        self._max_segment_kb = max_segment_mb * 1024 or None
        self._frame_ef = None if self._local else hnsw_ef
        self._params_of = {}  # local mode searches exactly, and warns at each query given any
        if not self._local:
            self._params_of = {modality: _search_params(hnsw_ef) for modality in dims}
            self._params_of[modalities.FUSED] = _search_params(hnsw_ef, fused_quantization)
            if modalities.VISUAL in dims and dims[modalities.VISUAL] >= QUANTIZE_MIN_DIM:
                self._params_of[modalities.VISUAL] = _search_params(hnsw_ef, _LONG_VECTORS)
        try:
            self._ensure_collection(self._collection, dims, base.INDEXED_FIELDS)
            self._ensure_fused_quantization(dims)
            self._ensure_graph(self._collection)
            self._drop_stale_frames()
            frame = {base.FRAME: modalities.FRAME_DIM}
            self._ensure_collection(self._frames, frame, base.FRAME_INDEXED_FIELDS, _FRAME_QUANTIZATION)
            self._ensure_graph(self._frames)
        except Exception:
            if self._owns_connection:
                self._connection.close()  # local mode would keep its directory locked
            raise

    def _drop_stale_frames(self) -> None:
        if self._client.collection_exists(self._frames):
            size = self._client.get_collection(self._frames).config.params.vectors[base.FRAME].size
            if base.stale_frames(size, {"collection": self._frames}):
                self._client.delete_collection(self._frames)

    def _ensure_collection(self, name: str, dims: dict[str, int], indexed: dict[str, str],
                           quantization: models.ScalarQuantization | None = None) -> None:
        if self._client.collection_exists(name):
            vectors = self._client.get_collection(name).config.params.vectors
            named = vectors if isinstance(vectors, dict) else {"": vectors}
            found = {vector: params.size for vector, params in named.items()}
            if found != dims:
                raise errors.Precondition(
                    f"collection {name!r} holds vectors {found}, this service "
                    f"needs {dims}: index into a new collection"
                )
        else:
            self._client.create_collection(
                name,
                vectors_config={vector: self._vector_params(vector, dim) for vector, dim in dims.items()},
                quantization_config=quantization,
                hnsw_config=self._hnsw,
                optimizers_config=models.OptimizersConfigDiff(max_segment_size=self._max_segment_kb),
                replication_factor=self._connection.replication_factor,
            )
        # Idempotent, so an index added by a later version reaches existing collections too.
        with warnings.catch_warnings():
            # local mode says its payload indexes are no-ops; a server builds them
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            for field, kind in indexed.items():
                self._client.create_payload_index(name, field, _SCHEMAS[kind])

    def _vector_params(self, vector: str, dim: int) -> models.VectorParams:
        if vector == modalities.FUSED:
            q = self.fused_quantization
            return models.VectorParams(size=dim, distance=models.Distance.COSINE, quantization_config=quantization_config(q),
                                       on_disk=q.originals == quantization.DISK)
        if vector == base.FRAME:
            # a minute of video holds 60 of them: their int8 copy stays in RAM for the search, the
            # float32 rows it rescores from go to disk (alignment reads the track points instead)
            return models.VectorParams(size=dim, distance=models.Distance.COSINE, on_disk=True)
        long = vector == modalities.VISUAL and dim >= QUANTIZE_MIN_DIM
        return models.VectorParams(size=dim, distance=models.Distance.COSINE, quantization_config=_INT8 if long else None)

    def _ensure_fused_quantization(self, dims: dict[str, int]) -> None:
        """A collection made before the setting, or with another: a server re-quantizes it in the
        background, searching the old copy meanwhile. Local mode keeps no copy to change."""
        if modalities.FUSED not in dims or self._local:
            return
        stored = self._client.get_collection(self._collection).config.params.vectors[modalities.FUSED]
        wanted = self._vector_params(modalities.FUSED, dims[modalities.FUSED])
        if (stored.quantization_config, bool(stored.on_disk)) == (wanted.quantization_config, wanted.on_disk):
            return
        change = models.VectorParamsDiff(quantization_config=wanted.quantization_config or models.Disabled.DISABLED,
                                         on_disk=wanted.on_disk)
        with self._lock:
            self._client.update_collection(self._collection, vectors_config={modalities.FUSED: change})

    def _ensure_graph(self, name: str) -> None:
        """A server collection made with another graph or segment size is changed to these; the
        server rebuilds its segments in the background, searching the old ones meanwhile. Local
        mode has neither."""
        if self._local:
            return
        stored = self._client.get_collection(name).config
        graph = stored.hnsw_config
        if (graph.m, graph.ef_construct) != (self._hnsw.m, self._hnsw.ef_construct):
            with self._lock:
                self._client.update_collection(name, hnsw_config=self._hnsw)
        if self._max_segment_kb and stored.optimizer_config.max_segment_size != self._max_segment_kb:
            with self._lock:
                self._client.update_collection(
                    name, optimizers_config=models.OptimizersConfigDiff(max_segment_size=self._max_segment_kb))

    def quantization_in_engine(self) -> tuple[str, str]:
        """(kind, originals) of the fused vector as the collection's config holds them."""
        with self._read_lock:
            params = self._client.get_collection(self._collection).config.params.vectors[modalities.FUSED]
        config = params.quantization_config
        originals = quantization.DISK if params.on_disk else quantization.MEMORY
        if isinstance(config, models.BinaryQuantization):
            two = config.binary.encoding == models.BinaryQuantizationEncoding.TWO_BITS
            return (quantization.BINARY2 if two else quantization.BINARY), originals
        kinds = {models.ScalarQuantization: quantization.INT8, models.ProductQuantization: quantization.PRODUCT}
        return kinds.get(type(config), quantization.NONE), originals

    def _exists(self, video_id: str) -> bool:
        found = self._client.retrieve(
            self._collection, [str(base.point_id(video_id))], with_payload=False, with_vectors=False
        )
        return bool(found)

    def upsert(self, video: base.StoredVideo) -> bool:
        point = models.PointStruct(
            id=str(base.point_id(video.id)),
            vector=dict(video.vectors),
            payload={**video.payload, base.VIDEO_ID: video.id},
        )
        with self._lock:
            existed = self._exists(video.id)
            if video.frames is not None:
                self._replace_frames(video.id, video.frames)
            self._client.upsert(self._collection, [point], wait=True)
        return not existed

    def _replace_frames(self, video_id: str, track) -> None:  # under the lock
        """The new frames overwrite the old ones of the same index; the old ones past them go."""
        points = [models.PointStruct(id=str(pid), vector=vectors, payload=payload)
                  for pid, vectors, payload in base.frame_points(video_id, track)]
        if points:
            self._client.upsert(self._frames, points, wait=True)
        kept = [models.HasIdCondition(has_id=[p.id for p in points])] if points else None
        stale = models.Filter(must=[_of_video(video_id)], must_not=kept)
        self._client.delete(self._frames, models.FilterSelector(filter=stale), wait=True)

    def get(self, video_id: str, with_vectors: bool | list[str] = False) -> base.StoredVideo | None:
        with self._read_lock:
            records = self._client.retrieve(
                self._collection,
                [str(base.point_id(video_id))],
                with_payload=True,
                with_vectors=with_vectors,
            )
        return base.StoredVideo.from_point(records[0], with_vectors) if records else None

    def drop_frames(self) -> None:
        with self._lock:
            self._client.delete(self._frames, models.FilterSelector(filter=_ANY_VIDEO), wait=True)

    def delete(self, video_id: str) -> bool:
        with self._lock:
            existed = self._exists(video_id)
            # also when the video is not there: frames an upsert wrote before it failed go too
            theirs = models.Filter(must=[_of_video(video_id)])
            self._client.delete(self._frames, models.FilterSelector(filter=theirs), wait=True)
            if existed:
                self._client.delete(
                    self._collection,
                    models.PointIdsList(points=[str(base.point_id(video_id))]),
                    wait=True,
                )
        return existed

    def search_batch(self, searches):
        requests = [
            models.QueryRequest(
                query=list(q.vector),
                using=q.modality,
                filter=_filter(q.filter),
                limit=q.k,
                with_payload=base.payload_selector(q.with_payload),
                with_vector=False,
                params=self._params_of.get(q.modality),
            )
            for q in searches
        ]
        with self._read_lock:  # one round trip to a server for the whole batch
            answers = self._client.query_batch_points(self._collection, requests)
        return [[base.Hit.from_point(p, q.with_payload) for p in answer.points] for q, answer in zip(searches, answers)]

    def search_frames(self, vectors, k, exclude_id="", ef=None, min_score=None):
        if not len(vectors):
            return []
        others = models.Filter(must_not=[_of_video(exclude_id)]) if exclude_id else None
        ef = ef if ef is not None else self._frame_ef
        params = None if ef is None else models.SearchParams(hnsw_ef=ef)
        requests = [
            models.QueryRequest(query=row, using=base.FRAME, filter=others, limit=k, params=params,
                                score_threshold=min_score, with_payload=False, with_vector=False)
            for row in vectors.tolist()
        ]
        with self._read_lock:  # one round trip to a server for every row
            answers = self._client.query_batch_points(self._frames, requests)
        return base.name_hits([[(p.id, p.score) for p in answer.points] for answer in answers], self._video_ids_of)

    def _video_ids_of(self, point_ids: list[str]) -> dict[str, str]:
        with self._read_lock:
            records = self._client.retrieve(self._frames, point_ids, with_payload=[base.VIDEO_ID], with_vectors=False)
        return {str(r.id): r.payload[base.VIDEO_ID] for r in records}

    def frames_of(self, video_ids):
        if not video_ids:
            return {}
        with self._read_lock:
            records = self._client.retrieve(self._frames, [str(base.track_point_id(v)) for v in sorted(video_ids)],
                                            with_payload=True, with_vectors=False)
        found = base.tracks(records)
        if missing := video_ids - found.keys():
            found |= self._frames_without_track(missing)
        return found

    def _frames_without_track(self, video_ids):
        theirs = models.Filter(must=[models.FieldCondition(
            key=base.VIDEO_ID, match=models.MatchAny(any=sorted(video_ids)))])
        records, offset = [], None
        while True:
            with self._read_lock:
                page, offset = self._client.scroll(self._frames, scroll_filter=theirs, limit=FRAME_PAGE,
                                                   offset=offset, with_payload=True, with_vectors=True)
            records += page
            if offset is None:
                return base.frame_tracks(records)

    def stored_vectors(self, video_ids, names):
        points = {str(base.point_id(video_id)): video_id for video_id in video_ids}
        with self._read_lock:
            records = self._client.retrieve(
                self._collection, list(points), with_payload=False, with_vectors=sorted(names)
            )
        return {points[str(r.id)]: dict(r.vector or {}) for r in records}

    def scroll(self, offset=None, limit=100, with_vectors=False, filter=None):
        start = base.parse_offset(offset)
        with self._read_lock:
            records, next_offset = self._client.scroll(
                self._collection,
                scroll_filter=_filter(filter),
                limit=limit,
                offset=str(start) if start else None,
                with_payload=True,
                with_vectors=with_vectors,
            )
        videos = [base.StoredVideo.from_point(r, with_vectors) for r in records]
        return videos, (str(next_offset) if next_offset is not None else None)

    def count(self) -> int:
        with self._read_lock:
            return self._client.count(self._collection, exact=True).count

    def close(self) -> None:
        if self._owns_connection:
            self._connection.close()

    def drop(self) -> None:
        with self._lock:
            self._client.delete_collection(self._frames)
            self._client.delete_collection(self._collection)
        self.close()
