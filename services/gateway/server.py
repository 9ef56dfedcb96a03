"""The reelvec.v1.Gateway service."""

import asyncio
import dataclasses
import logging
from pathlib import Path

import grpc

from reelvec import channels, clients, config, errors, fusion, limits, modalities
from reelvec.tls import TLS
from reelvec.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, search_pb2
from services.gateway import pipeline
from services.gateway.ingest import Ingest
from services.gateway.media_store import MediaStore
from services.gateway.query_batcher import QueryBatcher
from services.gateway.reembed import Reembed
from services.gateway.versions import Pins, Versions, WriteGate, pinned

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Settings(config.ServerSettings):
    port: int = 50051
    encoder_url: str = "127.0.0.1:50052"
    transcriber_url: str = "127.0.0.1:50053"
    search_url: str = "127.0.0.1:50054"
    regressor_url: str = "127.0.0.1:50055"
    # Deadlines of the internal calls, seconds. Encoding and transcription scale with clip length.
    encode_timeout: float = 120.0
    transcribe_timeout: float = 300.0
    search_timeout: float = 10.0
    regress_timeout: float = 10.0
    train_timeout: float = 900.0
    keep_media: bool = True  # keep uploads in <data-dir>/media for re-embedding and playback
    api_keys_file: str = ""  # empty: <data-dir>/api-keys.json; keys are checked while it exists
    require_api_keys: bool = False  # refuse to start without a keys file (deploy/k8s sets it)
    # a transcriber that is down does not fail an Index: the video is stored without its transcript
    # and text vector, flagged incomplete, and completed in the background (completion.py)
    degraded_index: bool = True
    complete_every_seconds: float = 10.0
    media_sweep_seconds: float = 600.0  # how often uploads no record points at are looked for
    media_orphan_seconds: float = 3600.0  # how old such an upload must be before it goes


@dataclasses.dataclass
class Clients:
    """The internal services the gateway calls, each with its deadlines (reelvec/clients.py)."""

    encoder: clients.Encoder
    transcriber: clients.Transcriber
    search: clients.Search
    regressor: clients.Regressor

    @classmethod
    def connect(cls, s: Settings) -> "Clients":
        tls = TLS.of(s)
        return cls(
            clients.Encoder.connect(s.encoder_url, s.encode_timeout, tls),
            clients.Transcriber.connect(s.transcriber_url, s.transcribe_timeout, tls, embed_timeout=s.search_timeout),
            clients.Search.connect(s.search_url, s.search_timeout, tls),
            clients.Regressor.connect(s.regressor_url, s.regress_timeout, tls, train_timeout=s.train_timeout),
        )


def _caller_wins(record: common_pb2.VideoRecord, request: gateway_pb2.PredictRequest) -> None:
    """What the caller says about the video wins over what is stored."""
    if request.HasField("author"):
        record.metadata.author.CopyFrom(request.author)
    if request.caption:
        record.metadata.caption = request.caption
    if request.hashtags:
        del record.metadata.hashtags[:]
        record.metadata.hashtags.extend(request.hashtags)


class Gateway(gateway_pb2_grpc.GatewayServicer):
    def __init__(self, settings: Settings, services: Clients | None = None):
        self.s = settings
        self.services = services or Clients.connect(settings)
        search = self.search = self.services.search
        self.media = MediaStore(Path(settings.data_dir) / "media") if settings.keep_media else None
        # one representative frame per stored video, by content like the uploads (the web page's grid)
        self.thumbnails = MediaStore(Path(settings.data_dir) / "thumbnails")
        self.versions = Versions(search.list_collections)
        self.queries = QueryBatcher(search.query_batch, settings.search_timeout)
        self.gate = WriteGate()
        self.fusions = fusion.Fusions(Path(settings.data_dir) / "fusion")
        self.reembed = Reembed(search, self.services.encoder, self.versions, self.gate, self.media, self.fusion)
        self.ingest = Ingest(self.services.encoder, self.services.transcriber, search, self.versions, self.gate,
                             self.media, self.thumbnails, self.fusion, settings.max_video_mb, settings.degraded_index)

    def fusion(self, name: str):
        try:
            return self.fusions.get(name)
        except FileNotFoundError as exc:
            raise errors.Precondition(f"{exc}: it is made by `reelvec train fusion` on this data dir") from None

    async def _embed(self, data: bytes, caption: str = "", hashtags=(), pins: Pins = Pins(),
                     with_views: bool = False) -> pipeline.Embedded:
        """A query's or a prediction's video, embedded as the collection `pins` describes; nothing stored."""
        limits.check_video(data, self.s.max_video_mb)
        return await pipeline.embed(self.services.encoder, self.services.transcriber, data, caption, hashtags, pins,
                                    self.fusion(pins.fusion), with_views=with_views)

    async def Embed(self, request, context):
        embedded = await pinned(self.versions, lambda v: self._embed(
            request.video, request.caption, request.hashtags, v, request.with_views))
        return gateway_pb2.EmbedResponse(
            embeddings=embedded.embeddings(),
            transcript=embedded.transcribed.transcript,
            duration=embedded.encoded.duration,
            model_versions=embedded.model_versions(),
            frames=pipeline.frames_of(embedded.encoded),
        )

    async def Index(self, request, context):
        return await self.ingest.index(request.video, request.metadata)

    async def IndexStream(self, request_iterator, context):
        metadata, chunks, size = None, [], 0
        async for message in request_iterator:
            if message.HasField("metadata"):
                if metadata is not None or chunks:
                    raise errors.InvalidInput("metadata must be the first and only metadata message")
                metadata = message.metadata
                continue
            size += len(message.data)
            limits.check_video_size(size, self.s.max_video_mb)
            chunks.append(message.data)
        return await self.ingest.index(b"".join(chunks), metadata or common_pb2.VideoMetadata())

    async def Search(self, request, context):
        k = limits.check_k(request.k)
        modality = modalities.from_proto(request.modality)
        query = search_pb2.QueryRequest(
            modality=request.modality, filter=request.filter, k=k, with_payload=True
        )
        which = request.WhichOneof("query")
        if which == "id":
            query.id = request.id
        elif which == "text":
            if not request.text.strip():
                raise errors.InvalidInput("the text query is empty")
            if modality not in (modalities.TEXT, modalities.FUSED) or request.modality == common_pb2.MODALITY_FUSED:
                raise errors.InvalidInput("a text query searches the text modality: leave modality unset or TEXT")
            embedded = await self.services.transcriber.embed_text(request.text)
            query.modality = common_pb2.MODALITY_TEXT
            query.vector.values.extend(embedded.text)
        elif which == "video":
            return await pinned(self.versions, lambda pins: self._search_video(request.video, query, modality, pins))
        else:
            raise errors.InvalidInput("set one of video, id or text")
        response = await self.queries.query(query)
        return gateway_pb2.SearchResponse(hits=response.hits)

    async def _search_video(self, video: bytes, query, modality: str, pins: Pins):
        embedded = await self._embed(video, pins=pins)
        vector = embedded.vectors.get(modality)
        if vector is None:
            raise errors.InvalidInput(
                f"the query video has no {modality} vector (no audio track or no speech/caption); "
                "search the fused or visual modality instead"
            )
        del query.vector.values[:]
        query.vector.values.extend(vector.tolist())
        query.model_versions.clear()
        query.model_versions.update(embedded.model_versions())
        response = await self.queries.query(query)
        return gateway_pb2.SearchResponse(hits=response.hits)

    async def FindCopies(self, request, context):
        k = limits.check_k(request.k)
        which = request.WhichOneof("query")
        if which == "id":  # the store aligns the video's own frames
            return await self._find_copies(search_pb2.FindCopiesRequest(id=request.id, k=k))
        if which == "video":
            return await self._copies_of_video(request.video, k)
        raise errors.InvalidInput("set one of video or id")

    async def FindCopiesStream(self, request_iterator, context):
        chunks, size, k = [], 0, None
        async for message in request_iterator:
            k = limits.check_k(message.k) if k is None else k
            size += len(message.data)
            limits.check_video_size(size, self.s.max_video_mb)
            chunks.append(message.data)
        return await self._copies_of_video(b"".join(chunks), k or limits.DEFAULT_K)

    async def _copies_of_video(self, video: bytes, k: int):
        limits.check_video(video, self.s.max_video_mb)
        return await pinned(self.versions, lambda pins: self._copies_of_frames(video, k, pins))

    async def _copies_of_frames(self, video: bytes, k: int, pins: Pins):
        """Only the encoder: frames are the visual model's, transcript and fusion play no part.
        The store refuses frames of another visual version than its own, and `pinned` encodes again."""
        encoded = await pipeline.encode(self.services.encoder, video, pins, with_views=True)
        return await self._find_copies(search_pb2.FindCopiesRequest(
            frames=pipeline.frames_of(encoded), k=k, model_versions=pipeline.frame_versions(encoded)))

    async def _find_copies(self, request: search_pb2.FindCopiesRequest) -> gateway_pb2.CopiesResponse:
        request.with_payload = True
        found = await self.search.find_copies(request)
        return gateway_pb2.CopiesResponse(copies=found.copies)

    async def Predict(self, request, context):
        k = limits.check_k(request.k)
        which = request.WhichOneof("query")
        if which not in ("id", "video"):
            raise errors.InvalidInput("set one of video or id")
        if which == "id":
            return await self._predict(request, k, Pins())
        return await pinned(self.versions, lambda pins: self._predict(request, k, pins))

    async def _predict(self, request, k: int, pins: Pins):
        if request.WhichOneof("query") == "id":
            # One search call reads the stored video and analyses it, then the regressor: one call
            # and two copies of the vectors fewer than Get followed by Analyze beside the regressor
            # (docs/architecture.md, Predict).
            analysis = await self.search.analyze(search_pb2.AnalyzeRequest(
                id=request.id, k=k, known_hashtags=request.hashtags))
            record = analysis.video
            _caller_wins(record, request)
            regression = await self.services.regressor.predict(record)
            transcript = common_pb2.Transcript(text=record.transcript, language=record.language)
            versions = dict(record.model_versions)
        else:
            # the frames' views find a stored video shown inside the upload (docs/copies.md, "Views")
            embedded = await self._embed(request.video, request.caption, request.hashtags, pins, with_views=True)
            record = common_pb2.VideoRecord(
                duration=embedded.encoded.duration, embeddings=embedded.embeddings()
            )
            _caller_wins(record, request)
            versions = embedded.model_versions()
            analysis, regression = await pipeline.first_failure_cancels(
                self.search.analyze(
                    search_pb2.AnalyzeRequest(
                        embeddings=record.embeddings,
                        k=k,
                        known_hashtags=list(record.metadata.hashtags),
                        content_sha256=embedded.sha256,
                        model_versions=versions,
                        frames=pipeline.frames_of(embedded.encoded),
                    ),
                ),
                self.services.regressor.predict(record),
            )
            transcript = embedded.transcribed.transcript
        versions["likes"] = regression.model_version
        if regression.HasField("views"):
            versions["views"] = regression.views_model_version
        return gateway_pb2.PredictResponse(
            likes=regression.likes,
            likes_low=regression.likes_low,
            likes_high=regression.likes_high,
            views=regression.views if regression.HasField("views") else None,
            originality=analysis.originality,
            near_duplicate_of=analysis.near_duplicate_of,
            hashtags=[h.tag for h in analysis.hashtags],
            similar=analysis.similar,
            transcript=transcript,
            model_versions=versions,
            copies=analysis.copies,
        )

    async def Get(self, request, context):
        return await self.search.get(request.id, with_vectors=request.with_vectors)

    async def Delete(self, request, context):
        async with self.gate.write():
            return await self._delete(request.id)

    async def _delete(self, video_id: str):
        """The upload and the thumbnail go with the last video that points at them."""
        sha = ""
        try:
            sha = (await self.search.get(video_id)).content_sha256
        except channels.Upstream as exc:
            if exc.code != grpc.StatusCode.NOT_FOUND:
                raise
        response = await self.search.delete(video_id)
        for building in await self.versions.building():
            await self.search.delete(video_id, building.name)
        if sha:
            others = await self.search.scroll(limit=1, filter=common_pb2.Filter(content_sha256=sha))
            if not others.videos:  # the last video with these bytes: the upload goes too
                if self.media is not None:
                    await asyncio.to_thread(self.media.remove, sha)
                await asyncio.to_thread(self.thumbnails.remove, sha)
        return gateway_pb2.DeleteVideoResponse(deleted=response.deleted)

    async def _kept(self, store: MediaStore | None, video_id: str, what: str) -> bytes:
        """A file kept by content for a stored video: its upload or its thumbnail."""
        sha = (await self.search.get(video_id)).content_sha256
        path = store.kept(sha) if store is not None else None
        if path is None:
            raise errors.NotFound(f"the {what} of {video_id!r} is not kept (keep_media off, or indexed before)")
        return await asyncio.to_thread(path.read_bytes)

    async def GetThumbnail(self, request, context):
        return gateway_pb2.Thumbnail(jpeg=await self._kept(self.thumbnails, request.id, "thumbnail"))

    async def GetVideoFile(self, request, context):
        return gateway_pb2.VideoFile(data=await self._kept(self.media, request.id, "upload"))

    async def Transcribe(self, request, context):
        limits.check_video(request.video, self.s.max_video_mb)
        return (await self.services.transcriber.transcribe(request.video)).transcript

    async def TrainRegressor(self, request, context):
        return await self.services.regressor.train(request)

    async def Reembed(self, request, context):
        return await self.reembed.start(request.visual_version, request.fusion, request.audio_version)

    async def GetReembed(self, request, context):
        return self.reembed.snapshot()
