"""The reelvec.v1.Search servicer over the catalog of collections (catalog.py)."""

import asyncio
import dataclasses
import logging

from reelvec import copies, errors, limits, modalities
from reelvec.v1 import search_pb2, search_pb2_grpc
from services.search import analysis, records
from services.search.catalog import ACTIVE, ALIAS, BUILDING, RETIRED, Catalog, Collection, models_behind
from services.search.settings import SearchSettings
from services.search.stores import base

log = logging.getLogger(__name__)

MAX_QUERY_BATCH = 256

_STATES = {
    ACTIVE: search_pb2.CollectionInfo.ACTIVE,
    BUILDING: search_pb2.CollectionInfo.BUILDING,
    RETIRED: search_pb2.CollectionInfo.RETIRED,
}


class SearchServicer(search_pb2_grpc.SearchServicer):
    """Store calls block, so each runs in a worker thread (fast reads of an in-process store
    excepted); the stores do their own locking."""

    def __init__(self, settings: SearchSettings):
        self._settings = settings
        self._catalog: Catalog | None = None
        self._detectors: dict[str, analysis.Detector] = {}

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:  # calls that arrive while warmup still opens it
            raise errors.Unavailable("the search store is still opening")
        return self._catalog

    def collection(self, name: str) -> Collection:
        return self.catalog.get(name)

    @property
    def store(self) -> base.VideoStore:
        """The aliased collection's store."""
        return self.catalog.active.store

    async def _read(self, store: base.VideoStore, method, *args, **kwargs):
        if store.fast_reads:
            return method(*args, **kwargs)
        return await asyncio.to_thread(method, *args, **kwargs)

    def _detector(self, collection: Collection) -> analysis.Detector | None:
        method = self._settings.originality
        if method == "similarity":
            return None
        detector = self._detectors.get(collection.name)
        if detector is None or detector.store is not collection.store:
            detector = self._detectors[collection.name] = analysis.Detector(
                method, collection.store, modalities.FUSED
            )
        return detector

    def attach(self, opened: Catalog) -> None:
        self._catalog = opened
        self._detectors = {}

    def detach(self) -> Catalog | None:
        opened, self._catalog = self._catalog, None
        return opened

    async def Upsert(self, request, context):
        video = request.video
        records.check_id(video.id)
        if not video.embeddings.vectors:
            raise errors.InvalidInput("video.embeddings must hold at least one vector")
        collection = self.collection(request.collection)
        records.check_embeddings(video.embeddings, collection.dims)
        self.catalog.check(collection, video.model_versions, adopt=True)
        stored = records.to_stored(video)
        if stored.frames is not None:
            await self._follow_frames_head(collection, _head(video.model_versions))
        created = await asyncio.to_thread(collection.store.upsert, stored)
        return search_pb2.UpsertResponse(created=created)

    async def _follow_frames_head(self, collection: Collection, head: str) -> None:
        """At the first frames of a new descriptor head (the visual model exported again with another
        whitening, under the same version) the collection's frames are of the old head, never to be
        compared with the new, so they go; the videos stay, and re-indexed get frames again."""
        held = self.catalog.frames_head(collection)
        if not head or head == held:
            return
        if held:
            log.warning("frames of another descriptor head dropped: re-index the videos (reelvec index --force) "
                        "to find their copies", extra={"collection": collection.name, "held": held, "head": head})
            await asyncio.to_thread(collection.store.drop_frames)
        self.catalog.set_frames_head(collection, head)

    def _comparable(self, collection: Collection, versions) -> bool:
        """Whether frames of the descriptor head `versions` name meet the collection's (unnamed on
        either side, from before heads were named: taken as the same)."""
        head, held = _head(versions), self.catalog.frames_head(collection)
        return not head or not held or head == held

    def _query(self, request) -> tuple[Collection, base.Query]:
        """The collection a QueryRequest reads and the store query it asks for, checked."""
        modality = modalities.from_proto(request.modality)
        collection = self.collection(request.collection)
        self.catalog.check(collection, request.model_versions, models_behind(modality))
        which = request.WhichOneof("query")
        if which == "vector":
            target = {"vector": records.check_vector(modality, request.vector.values, collection.dims)}
        elif which == "id":
            target = {"video_id": records.check_id(request.id)}
        else:
            raise errors.InvalidInput("query needs a vector or an id")
        return collection, base.Query(
            modality,
            filter=records.to_filter(request.filter) if request.HasField("filter") else None,
            k=limits.check_k(request.k),
            with_payload=(records.WIRE,) if request.with_payload else False,
            **target,
        )

    @staticmethod
    def _query_batch(store: base.VideoStore, queries: list[base.Query]) -> list:
        """store.query_batch, where a hit of a video stored before the wire record existed (an
        older version wrote it) gets its whole payload instead, in one more read."""
        answers = store.query_batch(queries)
        for query, hits in zip(queries, answers):
            if not query.with_payload or isinstance(hits, errors.ReelvecError):
                continue
            for hit in hits:
                if records.WIRE not in hit.video.payload:
                    hit.video = store.get(hit.id) or hit.video
        return answers

    async def Query(self, request, context):
        collection, query = self._query(request)
        hits = await self._read(collection.store, self._query_batch, collection.store, [query])
        if isinstance(hits[0], errors.ReelvecError):
            raise hits[0]
        response = search_pb2.QueryResponse()
        records.add_hits(response.hits, hits[0])
        return response

    async def QueryBatch(self, request, context):
        if len(request.queries) > MAX_QUERY_BATCH:
            raise errors.InvalidInput(
                f"a batch holds at most {MAX_QUERY_BATCH} queries, got {len(request.queries)}: split it"
            )
        # Each query keeps its own outcome; those of one collection go to its store as one batch.
        outcomes: list = [None] * len(request.queries)
        batches: dict[str, tuple[Collection, list[int], list[base.Query]]] = {}
        for slot, query in enumerate(request.queries):
            try:
                collection, checked = self._query(query)
            except errors.ReelvecError as exc:
                outcomes[slot] = exc
                continue
            _, slots, queries = batches.setdefault(collection.name, (collection, [], []))
            slots.append(slot)
            queries.append(checked)
        for collection, slots, queries in batches.values():
            answers = await self._read(collection.store, self._query_batch, collection.store, queries)
            for slot, answer in zip(slots, answers):
                outcomes[slot] = answer

        response = search_pb2.QueryBatchResponse()
        for outcome in outcomes:
            result = response.results.add()
            if isinstance(outcome, errors.ReelvecError):
                result.error.code, result.error.message = outcome.code.value[0], str(outcome)
            else:
                result.response.SetInParent()  # a query with no hits still answered
                records.add_hits(result.response.hits, outcome)
        return response

    async def Get(self, request, context):
        video_id = records.check_id(request.id)
        store = self.collection(request.collection).store
        video = await self._read(store, self._get, store, video_id, request.with_vectors)
        return records.to_record(video)

    @staticmethod
    def _get(store: base.VideoStore, video_id: str, with_vectors: bool) -> base.StoredVideo:
        """The video; with its vectors, its frames too."""
        video = store.get(video_id, with_vectors)
        if video is None:
            raise errors.NotFound(f"no video with id {video_id!r}")
        if with_vectors:
            video.frames = store.frames_of({video_id}).get(video_id)
        return video

    async def Delete(self, request, context):
        store = self.collection(request.collection).store
        deleted = await asyncio.to_thread(store.delete, records.check_id(request.id))
        return search_pb2.DeleteResponse(deleted=deleted)

    async def Scroll(self, request, context):
        videos, next_offset = await asyncio.to_thread(
            self.collection(request.collection).store.scroll,
            request.offset or None,
            records.clamp(request.limit, records.DEFAULT_PAGE, records.MAX_PAGE),
            request.with_vectors,
            dataclasses.replace(records.to_filter(request.filter), only_with_likes=request.only_with_likes),
        )
        return search_pb2.ScrollResponse(
            videos=[records.to_record(v) for v in videos], next_offset=next_offset or ""
        )

    async def Analyze(self, request, context):
        collection = self.collection(request.collection)
        store = collection.store
        video_id = vectors = stored = frames = None
        if request.WhichOneof("video") == "id":  # the collection's own vectors and frames: no version to check
            video_id = records.check_id(request.id)
        else:
            vectors = records.check_embeddings(request.embeddings, collection.dims)
            if request.HasField("frames"):
                frames = records.check_frames(request.frames)
            self.catalog.check(collection, request.model_versions)
            if frames is not None and not self._comparable(collection, request.model_versions):
                log.warning("a Predict's frames are of another descriptor head than the collection's: no copies "
                            "looked for until its videos are re-indexed", extra={"collection": collection.name})
                frames = None
        detector = self._detector(collection)

        def analyze() -> analysis.Analysis:  # blocking: store calls, and a detector's fit when due
            nonlocal stored, vectors, frames
            exclude_id, sha, known = request.exclude_id, request.content_sha256, list(request.known_hashtags)
            if video_id is not None:
                stored = store.get(video_id, with_vectors=True)
                if stored is None:
                    raise errors.NotFound(f"no video with id {video_id!r}")
                vectors, exclude_id = stored.vectors, video_id
                frames = store.frames_of({video_id}).get(video_id)  # None: indexed before frames existed
                sha = base.payload_value(stored.payload, base.CONTENT_SHA256, "")
                known = known or base.payload_value(stored.payload, base.HASHTAGS, [])
            return analysis.analyze(
                store,
                vectors,
                k=limits.check_k(request.k),
                exclude_id=exclude_id,
                known_hashtags=known,
                content_sha256=sha,
                near_duplicate_threshold=self._settings.near_duplicate_threshold,
                calibrated=detector.current() if detector else None,
                frames=frames,
            )

        if detector is None and frames is None and video_id is None:
            # store calls only: as fast as a Query's on an in-process store
            result = await self._read(store, analyze)
        else:  # a detector's fit, when due, takes seconds; frames take an alignment per candidate
            result = await asyncio.to_thread(analyze)
        response = search_pb2.AnalyzeResponse(
            originality=result.originality,
            near_duplicate_of=result.near_duplicate_of,
            hashtags=[search_pb2.HashtagSuggestion(tag=t, score=s) for t, s in result.hashtags],
            copies=[match.to_proto() for match in result.copies],
        )
        records.add_hits(response.similar, result.similar)
        if stored is not None:  # its vectors for the regressor; not its frames, which it does not read
            records.to_record(stored, into=response.video)
        return response

    async def FindCopies(self, request, context):
        collection = self.collection(request.collection)
        # as a Query's: frames come from the visual model
        self.catalog.check(collection, request.model_versions, models_behind(modalities.VISUAL))
        k = limits.check_k(request.k)
        query = video_id = None
        which = request.WhichOneof("query")
        if which == "frames":
            query = records.check_frames(request.frames)
            if not self._comparable(collection, request.model_versions):
                raise errors.Precondition(
                    f"collection {collection.name!r} holds frame descriptors of head "
                    f"{self.catalog.frames_head(collection)}, this query's are of {_head(request.model_versions)} "
                    "(the visual model was exported again): re-index the videos (reelvec index --force); the "
                    "first drops the old frames")
        elif which == "id":
            video_id = records.check_id(request.id)
        else:
            raise errors.InvalidInput("find copies needs frames or the id of a stored video")
        store = collection.store

        def find() -> list[tuple[copies.Match, base.StoredVideo]]:
            if video_id is None:
                return analysis.find_copies(store, query, k, request.exclude_id)
            # by id, as Analyze by id: the video itself is the one left out
            return analysis.find_copies(store, self._own_frames(store, video_id), k, video_id)

        # an alignment per candidate is milliseconds of numpy: off the event loop, whatever the store
        found = await asyncio.to_thread(find)
        response = search_pb2.FindCopiesResponse()
        records.add_copies(response.copies, found, request.with_payload)
        return response

    @staticmethod
    def _own_frames(store: base.VideoStore, video_id: str) -> copies.Track:
        if store.get(video_id) is None:
            raise errors.NotFound(f"no video with id {video_id!r}")
        frames = store.frames_of({video_id}).get(video_id)
        if frames is None:
            raise errors.Precondition(
                f"video {video_id!r} has no frame descriptors (it was indexed before they existed): "
                "re-index it (reelvec index --force) to find its copies"
            )
        return frames

    def _collections(self) -> search_pb2.ListCollectionsResponse:
        found = self.catalog.collections()
        return search_pb2.ListCollectionsResponse(
            alias=ALIAS,
            active=self.catalog.active.name,
            collections=[self._info(c) for c in found],
        )

    @staticmethod
    def _info(c: Collection) -> search_pb2.CollectionInfo:
        return search_pb2.CollectionInfo(
            name=c.name, state=_STATES[c.state], model_versions=c.model_versions, videos=c.store.count(), dims=c.dims
        )

    async def ListCollections(self, request, context):
        return await asyncio.to_thread(self._collections)

    async def CreateCollection(self, request, context):
        created = await asyncio.to_thread(self.catalog.create, request.name, request.model_versions, request.dims)
        return await asyncio.to_thread(self._info, created)

    async def SwitchAlias(self, request, context):
        await asyncio.to_thread(self.catalog.switch, request.collection, request.drop_previous)
        return await asyncio.to_thread(self._collections)

    async def DropCollection(self, request, context):
        dropped = await asyncio.to_thread(self.catalog.drop, request.name)
        return search_pb2.DropCollectionResponse(dropped=dropped)


def _head(versions) -> str:
    return dict(versions).get(modalities.DESCRIPTOR, "")
