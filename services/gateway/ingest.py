"""Index, one way: check the upload, embed it (encoder and transcriber in parallel, then fusion:
pipeline.py), store it. Storing writes the upload and the thumbnail first, then the record that
points at them, then the same video into any collection a re-embed is filling (dual writes), so
that nothing is stored unless the embedding succeeded and no record points at a missing file."""

import asyncio
import logging
import re
from collections.abc import Callable

from reelvec import clients, errors, limits
from reelvec.v1 import common_pb2, gateway_pb2
from services.gateway import pipeline
from services.gateway.media_store import MediaStore
from services.gateway.versions import Pins, Versions, WriteGate, pinned

log = logging.getLogger(__name__)

_ID = re.compile(r"[\w.\-:@]{1,128}")


def check_metadata(metadata: common_pb2.VideoMetadata) -> None:
    if metadata.id and not _ID.fullmatch(metadata.id):
        raise errors.InvalidInput(
            f"id {metadata.id!r} is invalid: use 1-128 letters, digits or . - _ : @"
        )
    for name in ("likes", "views"):
        if metadata.HasField(name) and getattr(metadata, name) < 0:
            raise errors.InvalidInput(f"{name} must not be negative")
    author = metadata.author
    for name in ("followers", "following", "likes", "videos"):
        if getattr(author, name) < 0:
            raise errors.InvalidInput(f"author.{name} must not be negative")


def record_of(video_id: str, metadata: common_pb2.VideoMetadata, embedded: pipeline.Embedded) -> common_pb2.VideoRecord:
    record = common_pb2.VideoRecord(
        id=video_id,
        metadata=metadata,
        duration=embedded.encoded.duration,
        content_sha256=embedded.sha256,
        model_versions=embedded.model_versions(),
        transcript=embedded.transcribed.transcript.text,
        language=embedded.transcribed.transcript.language,
        embeddings=embedded.embeddings(),
        width=embedded.encoded.width,
        height=embedded.encoded.height,
        has_audio=embedded.encoded.has_audio,
        incomplete=embedded.incomplete,
        frames=pipeline.frames_of(embedded.encoded),
    )
    record.metadata.id = video_id
    return record


class Ingest:
    def __init__(self, encoder: clients.Encoder, transcriber: clients.Transcriber, search: clients.Search,
                 versions: Versions, gate: WriteGate, media: MediaStore | None, thumbnails: MediaStore,
                 fusion: Callable[[str], object], max_video_mb: int, degrade: bool):
        """`media`: where uploads are kept (None: not kept); `fusion(name)`: that fusion; `degrade`:
        a transcriber that is down stores the video without its transcript (completion.py mends it)."""
        self.encoder, self.transcriber, self.search = encoder, transcriber, search
        self.versions, self.gate, self.media, self.thumbnails = versions, gate, media, thumbnails
        self.fusion, self.max_video_mb, self.degrade = fusion, max_video_mb, degrade

    async def index(self, data: bytes, metadata: common_pb2.VideoMetadata) -> gateway_pb2.IndexResponse:
        check_metadata(metadata)
        limits.check_video(data, self.max_video_mb)
        async with self.gate.write():
            return await pinned(self.versions, lambda pins: self._embed_and_store(data, metadata, pins))

    async def _embed_and_store(self, data: bytes, metadata: common_pb2.VideoMetadata, pins: Pins):
        embedded = await pipeline.embed(self.encoder, self.transcriber, data, metadata.caption, metadata.hashtags,
                                        pins, self.fusion(pins.fusion), self.degrade)
        record = record_of(metadata.id or embedded.sha256[:16], metadata, embedded)
        if self.media is not None:  # first the files, then the record that points at them
            await asyncio.to_thread(self.media.put, embedded.sha256, data)
        if embedded.encoded.thumbnail_jpeg:
            await asyncio.to_thread(self.thumbnails.put, embedded.sha256, embedded.encoded.thumbnail_jpeg)
        upserted = await self.search.upsert(record)
        for building in await self.versions.building():
            await self._dual_write(data, embedded, record, building)
        return gateway_pb2.IndexResponse(
            id=record.id,
            created=upserted.created,
            duration=record.duration,
            content_sha256=embedded.sha256,
            modalities=sorted(embedded.vectors),
            incomplete=embedded.incomplete,
        )

    async def _dual_write(self, data, embedded, record, building) -> None:
        """The same video into the collection a re-embed is filling, with its versions. A failure
        here is not the caller's: the re-embed's last comparison redoes what is missing."""
        try:
            pins = Pins.of(building.model_versions)
            again = await pipeline.embed_again(self.encoder, data, embedded, pins, self.fusion(pins.fusion))
            await self.search.upsert(record_of(record.id, record.metadata, again), building.name)
        except errors.ReelvecError as exc:
            log.warning("dual write skipped", extra={"collection": building.name, "error": str(exc)})
