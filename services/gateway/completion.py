"""Completing videos stored degraded (docs/reliability.md).

An Index while the transcriber is down stores the video without its transcript and text vector,
with `incomplete: ["transcript"]`. Every `complete_every_seconds` this job finds such records, in
the aliased collection and in one a re-embed is filling (the store's `only_incomplete` filter),
transcribes their kept upload, fuses the vectors again with the collection's fusion and stores
the whole record. A record that changed meanwhile (indexed again, deleted) is left alone.
"""

import asyncio
import logging
from collections.abc import Callable

import grpc

from reelvec import channels, clients, errors, modalities
from reelvec.v1 import common_pb2
from services.gateway import pipeline
from services.gateway.media_store import MediaStore
from services.gateway.versions import BUILDING, Pins, Versions

log = logging.getLogger(__name__)
PAGE = 50


class Completion:
    def __init__(self, search: clients.Search, transcriber: clients.Transcriber, versions: Versions,
                 media: MediaStore | None, fusion: Callable[[str], object]):
        """`media`: the kept uploads (None: nothing to transcribe from); `fusion(name)`: that fusion."""
        self.search, self.transcriber, self.versions = search, transcriber, versions
        self.media, self.fusion = media, fusion

    async def _complete(self, record: common_pb2.VideoRecord, collection: str, pins: Pins) -> bool:
        path = self.media.kept(record.content_sha256) if self.media is not None else None
        if path is None:
            return False  # nothing to transcribe from; it stays as it is
        data = await asyncio.to_thread(path.read_bytes)
        transcribed = await self.transcriber.transcribe(data, record.metadata.caption, record.metadata.hashtags)
        fuse = self.fusion(pins.fusion)
        vectors = pipeline.fused({**pipeline.stored_vectors(record), modalities.TEXT: transcribed.text}, fuse)
        try:
            current = await self.search.get(record.id, collection)
        except channels.Upstream as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                return False  # deleted meanwhile
            raise
        if current.content_sha256 != record.content_sha256 or not current.incomplete:
            return False  # indexed again meanwhile: that one wins
        complete = common_pb2.VideoRecord()
        complete.CopyFrom(record)
        complete.transcript, complete.language = transcribed.transcript.text, transcribed.transcript.language
        complete.embeddings.CopyFrom(pipeline.embeddings_of(vectors))
        versions = {"whisper": transcribed.whisper_model, modalities.TEXT: transcribed.text_model,
                    modalities.FUSED: fuse.name}
        complete.model_versions.update({k: v for k, v in versions.items() if v})
        del complete.incomplete[:]
        await self.search.upsert(complete, collection)
        return True

    async def once(self) -> int:
        listed = await self.versions.listed(refresh=True)
        done = 0
        for collection in listed.collections:
            if collection.name != listed.active and collection.state != BUILDING:
                continue
            name = "" if collection.name == listed.active else collection.name
            page = await self.search.scroll(name, limit=PAGE, with_vectors=True,
                                            filter=common_pb2.Filter(only_incomplete=True))
            for record in page.videos:
                if "transcript" in record.incomplete:
                    done += await self._complete(record, name, Pins.of(collection.model_versions))
        return done

    async def forever(self, every_seconds: float) -> None:
        while True:
            await asyncio.sleep(every_seconds)
            try:
                done = await self.once()
            except errors.ReelvecError as exc:  # the transcriber or the store is still away: next time
                log.info("completion waits", extra={"error": str(exc)})
                continue
            if done:
                log.info("completed degraded videos", extra={"videos": done})
