"""Re-embedding the corpus with a new visual model version or a new fusion, in the background, then
switching the alias (docs/versions.md).

1. A new collection for the new versions (BUILDING). From now on every Index and Delete also goes
   there (dual writes, services/gateway/server.py), embedded with the new version.
2. Every stored video is encoded again from its kept upload (the media store) with the new visual
   version; its transcript and text vector are reused (the text model did not change). Two at a
   time, so live traffic keeps most of the encoder. A new fusion alone needs no encoder: the
   stored modality vectors are fused again.
3. Writes pause (the write gate) while the two collections are compared once more: what changed
   since step 2 read it is redone, what was deleted goes. Then the alias switches and the old
   collection is dropped. Searches answer from the old collection until that moment, and from the
   new one after: never from a mix.

A failure leaves the alias where it was and the new collection BUILDING; calling Reembed with the
same version again resumes it, skipping the videos already there.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from reelvec import clients, errors, modalities
from reelvec.fusion import WeightedConcat
from reelvec.models import AUDIO_MODEL_NAME, ModelVersion
from reelvec.server import caller_deadline
from reelvec.v1 import common_pb2, gateway_pb2
from services.gateway import pipeline
from services.gateway.media_store import MediaStore
from services.gateway.versions import BUILDING, Pins, Versions, WriteGate, audio_version, visual_version

log = logging.getLogger(__name__)

CONCURRENCY = 2
STATS = "stats"  # audio_version that goes back to the hand-made audio statistics
PAGE = 100
Status = gateway_pb2.ReembedStatus


class Reembed:
    def __init__(self, search: clients.Search, encoder: clients.Encoder, versions: Versions, gate: WriteGate,
                 media: MediaStore | None, fusion: Callable[[str], object]):
        """`media`: the kept uploads (None: none kept, so only a new fusion can be re-embedded);
        `fusion(name)`: the fusion of that name."""
        self.search, self.encoder, self.versions, self.gate = search, encoder, versions, gate
        self.media, self.fusion = media, fusion
        self.status = Status(state=Status.IDLE)
        self._task: asyncio.Task | None = None

    def snapshot(self) -> gateway_pb2.ReembedStatus:
        copy = Status()
        copy.CopyFrom(self.status)
        return copy

    async def start(self, version: str, fusion: str = "", audio: str = "") -> gateway_pb2.ReembedStatus:
        """`audio`: a learned audio encoder version, or STATS for the hand-made statistics."""
        if self._task is not None and not self._task.done():
            return self.snapshot()
        if not (version or fusion or audio):
            raise errors.InvalidInput("set visual_version, audio_version or fusion: the versions to re-embed with")
        for name, value in (("visual_version", version), ("audio_version", audio)):
            if value and not (value.isdigit() or (name == "audio_version" and value == STATS)):
                raise errors.InvalidInput(f"{name} must be a Triton model version such as 2, not {value!r}")
        listed = await self.versions.listed(refresh=True)
        active = next(c for c in listed.collections if c.name == listed.active)
        current = active.model_versions.get(modalities.VISUAL, "")
        if not current or not active.videos:
            raise errors.Precondition(
                "the store holds no videos yet: new ones are embedded with the newest visual model already"
            )
        now = Pins.of(active.model_versions)
        now = Pins(now.visual_version, now.fusion or WeightedConcat.name, now.audio_version)
        pins = Pins(version or now.visual_version, fusion or now.fusion,
                    "" if audio == STATS else (audio or now.audio_version))
        fuse = self.fusion(pins.fusion)
        if pins == now:
            raise errors.Precondition(f"the alias already points at vectors of {current}, "
                                      f"{active.model_versions.get(modalities.AUDIO, '-')}, fused by {pins.fusion}")
        visual = ModelVersion(ModelVersion.parse(current).name, pins.visual_version)
        target = {**active.model_versions, modalities.VISUAL: str(visual),
                  modalities.FUSED: fuse.name}
        target.pop(modalities.AUDIO, None)  # learned from the first video written: stats or audio_logmel:N
        if pins.audio_version:
            target[modalities.AUDIO] = str(ModelVersion(AUDIO_MODEL_NAME, pins.audio_version))
        if (pins.visual_version, pins.audio_version) != (now.visual_version, now.audio_version):
            if self.media is None:  # the videos go through the encoder again
                raise errors.Precondition("this gateway keeps no uploads (keep_media off): re-encoding needs them")
            await self._probe(await self._check_media(), pins)
        building = [c for c in listed.collections if c.state == BUILDING]
        resumed = [c for c in building if Pins.of(c.model_versions) == pins]
        for abandoned in building:  # a re-embed to other versions that never finished
            if abandoned not in resumed:
                await self.search.drop_collection(abandoned.name)
        name = resumed[0].name if resumed else f"videos_{time.strftime('%Y%m%d_%H%M%S')}"
        await self.search.create_collection(name, target, {modalities.FUSED: fuse.dim})
        await self.versions.listed(refresh=True)  # dual writes from here on
        self.status = Status(state=Status.RUNNING, collection=name, model_versions=target, total=active.videos,
                             active=listed.active)
        self._task = asyncio.create_task(self._run(name, pins))
        return self.snapshot()

    async def _pages(self, collection: str = "", with_vectors: bool = False):
        offset = ""
        while True:
            page = await self.search.scroll(collection, offset, PAGE, with_vectors)
            yield page.videos
            offset = page.next_offset
            if not offset:
                return

    async def _contents(self, collection: str = "") -> dict[str, str]:
        """id -> content_sha256 of every video in the collection."""
        return {v.id: v.content_sha256 async for page in self._pages(collection) for v in page}

    async def _check_media(self) -> dict[str, str]:
        contents = await self._contents()
        missing = [i for i, sha in contents.items() if not sha or not self.media.path(sha).exists()]
        if missing:
            raise errors.Precondition(
                f"{len(missing)} stored videos have no kept upload (e.g. {missing[0]!r}): index them again "
                "or delete them, then re-embed"
            )
        return contents

    async def _probe(self, contents: dict[str, str], pins: Pins) -> None:
        """One video through the new version first: a version Triton does not serve fails the call
        (FAILED_PRECONDITION from the encoder), not a background job."""
        sha = next(iter(contents.values()))
        data = await asyncio.to_thread(self.media.path(sha).read_bytes)
        await pipeline.encode(self.encoder, data, pins)

    async def _copy(self, record: common_pb2.VideoRecord, collection: str, pins: Pins) -> None:
        """The record with vectors of `pins`: encoded again from its upload when a model version
        differs, else its stored modality vectors fused again."""
        stored = pipeline.stored_vectors(record)
        versions = dict(record.model_versions)
        fuse = self.fusion(pins.fusion)
        copied = common_pb2.VideoRecord()
        copied.CopyFrom(record)  # with its stored frames, which a new fusion alone leaves as they are
        if (visual_version(versions), audio_version(versions)) != (pins.visual_version, pins.audio_version):
            data = await asyncio.to_thread(self.media.path(record.content_sha256).read_bytes)
            encoded = await pipeline.encode(self.encoder, data, pins)
            vectors = pipeline.vectors_of(encoded, stored.get(modalities.TEXT, ()), fuse)
            versions.pop(modalities.DESCRIPTOR, None)  # a version without frames names no head
            versions.update({modalities.AUDIO: encoded.audio_model, **pipeline.frame_versions(encoded)})
            copied.ClearField("frames")  # the old model's frames must not stay beside the new vectors
            if (frames := pipeline.frames_of(encoded)) is not None:
                copied.frames.CopyFrom(frames)
        else:
            vectors = pipeline.fused(stored, fuse)
        versions[modalities.FUSED] = fuse.name
        copied.embeddings.CopyFrom(pipeline.embeddings_of(vectors))
        copied.model_versions.clear()
        copied.model_versions.update(versions)
        await self.search.upsert(copied, collection)

    async def _copy_all(self, records, collection: str, pins: Pins) -> None:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(record):
            async with slots:
                await self._copy(record, collection, pins)
                self.status.done += 1

        if records:
            await pipeline.first_failure_cancels(*(one(r) for r in records))

    async def _run(self, collection: str, pins: Pins) -> None:
        caller_deadline.set(None)  # the Reembed call that started this job has long returned
        started = time.monotonic()
        try:
            there = await self._contents(collection)
            async for page in self._pages(with_vectors=True):
                todo = [r for r in page if there.get(r.id) != r.content_sha256]
                self.status.done += len(page) - len(todo)
                await self._copy_all(todo, collection, pins)
            async with self.gate.exclusive():
                await self._reconcile(collection, pins)
                await self.search.switch_alias(collection, drop_previous=True)
                await self.versions.listed(refresh=True)
            self.status.state, self.status.active = Status.DONE, collection
            log.info("re-embedded", extra={"collection": collection, "videos": self.status.done,
                                           "seconds": round(time.monotonic() - started, 1)})
        except Exception as exc:  # the status is the report; the alias did not move
            self.status.state, self.status.error = Status.FAILED, str(exc) or type(exc).__name__
            log.exception("re-embed failed", extra={"collection": collection})

    async def _reconcile(self, collection: str, pins: Pins) -> None:
        """With writes paused: the new collection gets exactly the old one's videos."""
        old, new = await self._contents(), await self._contents(collection)
        for gone in new.keys() - old.keys():
            await self.search.delete(gone, collection)
        changed = [i for i, sha in old.items() if new.get(i) != sha]
        records = [await self.search.get(i, with_vectors=True) for i in changed]
        await self._copy_all(records, collection, pins)
        self.status.done = self.status.total = len(old)
