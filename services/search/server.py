"""The reelvec.v1.Search servicer over a VideoStore, its settings, and how the store is opened."""

import asyncio
import dataclasses
from pathlib import Path


from reelvec import config, errors, modalities
from reelvec.server import register, serve
from reelvec.v1 import search_pb2, search_pb2_grpc
from services.search import analysis, originality, records
from services.search.stores import base


@dataclasses.dataclass
class SearchSettings(config.ServerSettings):
    port: int = 50054
    store: str = "edge"  # "edge": embedded engine in the data dir; "qdrant": qdrant-client
    qdrant_url: str = ""  # store=qdrant: a server (http://host:6334); empty: local mode in data_dir
    qdrant_api_key: str = ""
    # The vector schema version is part of the name: a new encoder version indexes into a new one.
    collection: str = "videos_v1"
    near_duplicate_threshold: float = 0.95  # visual cosine similarity
    originality: str = "similarity"  # or a calibrated anomaly detector: knn, isolation_forest, lof
    optimize_after: int = 1000  # edge: writes before an idle store indexes them; 0: at start only
    optimize_idle_seconds: float = 5.0


def _open_edge(settings: SearchSettings, root: Path) -> base.VideoStore:
    from services.search.stores.edge import EdgeStore

    return EdgeStore(
        root / "edge" / settings.collection,
        modalities.DIMS,
        optimize_after=settings.optimize_after,
        idle_seconds=settings.optimize_idle_seconds,
    )


def _open_qdrant(settings: SearchSettings, root: Path) -> base.VideoStore:
    from services.search.stores.qdrant import QdrantStore  # qdrant-client loads only when chosen

    if settings.qdrant_url:
        return QdrantStore(
            settings.collection,
            modalities.DIMS,
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key,
        )
    return QdrantStore(settings.collection, modalities.DIMS, path=str(root / "qdrant"))


STORES = {"edge": _open_edge, "qdrant": _open_qdrant}


def open_store(settings: SearchSettings) -> base.VideoStore:
    """Blocking; the first optimize indexes whatever an earlier run left unindexed."""
    store = STORES[settings.store](settings, Path(settings.data_dir) / "search")
    store.optimize()
    return store


class SearchServicer(search_pb2_grpc.SearchServicer):
    """Store calls block, so each runs in a worker thread (fast reads of an in-process store
    excepted); the store does its own locking."""

    def __init__(self, settings: SearchSettings):
        self._settings = settings
        self._store: base.VideoStore | None = None
        self._originality: originality.Detector | None = None

    @property
    def store(self) -> base.VideoStore:
        if self._store is None:  # calls that arrive while warmup still opens it
            raise errors.Unavailable("the search store is still opening")
        return self._store

    async def _read(self, method, *args, **kwargs):
        if self.store.fast_reads:
            return method(*args, **kwargs)
        return await asyncio.to_thread(method, *args, **kwargs)

    def attach(self, store: base.VideoStore) -> None:
        self._store = store
        method = self._settings.originality
        self._originality = None
        if method != "similarity":
            self._originality = originality.Detector(method, store, modalities.FUSED)

    def detach(self) -> base.VideoStore | None:
        store, self._store = self._store, None
        return store

    async def Upsert(self, request, context):
        video = request.video
        records.check_id(video.id)
        if not video.embeddings.vectors:
            raise errors.InvalidInput("video.embeddings must hold at least one vector")
        records.check_embeddings(video.embeddings)
        created = await asyncio.to_thread(self.store.upsert, records.to_stored(video))
        return search_pb2.UpsertResponse(created=created)

    async def Query(self, request, context):
        modality = records.modality(request.modality)
        which = request.WhichOneof("query")
        if which == "vector":
            target = {"vector": records.check_vector(modality, request.vector.values)}
        elif which == "id":
            target = {"video_id": records.check_id(request.id)}
        else:
            raise errors.InvalidInput("query needs a vector or an id")
        hits = await self._read(
            self.store.query,
            modality,
            filter=records.to_filter(request.filter),
            k=records.clamp(request.k, records.DEFAULT_K, records.MAX_K),
            with_payload=request.with_payload,
            **target,
        )
        return search_pb2.QueryResponse(hits=[records.to_hit(h) for h in hits])

    async def Get(self, request, context):
        video_id = records.check_id(request.id)
        video = await self._read(self.store.get, video_id, request.with_vectors)
        if video is None:
            raise errors.NotFound(f"no video with id {video_id!r}")
        return records.to_record(video)

    async def Delete(self, request, context):
        deleted = await asyncio.to_thread(self.store.delete, records.check_id(request.id))
        return search_pb2.DeleteResponse(deleted=deleted)

    async def Scroll(self, request, context):
        videos, next_offset = await asyncio.to_thread(
            self.store.scroll,
            request.offset or None,
            records.clamp(request.limit, records.DEFAULT_PAGE, records.MAX_PAGE),
            request.with_vectors,
            dataclasses.replace(records.to_filter(request.filter), only_with_likes=request.only_with_likes),
        )
        return search_pb2.ScrollResponse(
            videos=[records.to_record(v) for v in videos], next_offset=next_offset or ""
        )

    async def Analyze(self, request, context):
        vectors = records.check_embeddings(request.embeddings)
        detector = self._originality

        def analyze() -> analysis.Analysis:  # blocking: store calls, and a detector fit when due
            return analysis.analyze(
                self.store,
                vectors,
                k=records.clamp(request.k, records.DEFAULT_K, records.MAX_K),
                exclude_id=request.exclude_id,
                known_hashtags=list(request.known_hashtags),
                content_sha256=request.content_sha256,
                near_duplicate_threshold=self._settings.near_duplicate_threshold,
                calibrated=detector.current() if detector else None,
            )

        result = await asyncio.to_thread(analyze)
        return search_pb2.AnalyzeResponse(
            originality=result.originality,
            near_duplicate_of=result.near_duplicate_of,
            hashtags=[search_pb2.HashtagSuggestion(tag=t, score=s) for t, s in result.hashtags],
            similar=[records.to_hit(h) for h in result.similar],
        )


async def run(settings: SearchSettings) -> None:
    servicer = SearchServicer(settings)

    async def warmup():
        servicer.attach(await asyncio.to_thread(open_store, settings))

    async def cleanup():
        store = servicer.detach()
        if store is not None:
            await asyncio.to_thread(store.close)

    await serve(settings, register(search_pb2, search_pb2_grpc, "Search", servicer), warmup, cleanup)
