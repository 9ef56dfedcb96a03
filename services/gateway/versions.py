"""Which model versions the gateway embeds with, and the gate that pauses writes for an alias switch
(docs/versions.md).

The search service's catalog is the truth: the aliased collection holds vectors of one visual
model version, and the gateway pins that version on every Encode. The gateway keeps a copy for
REFRESH_SECONDS; when another gateway switched the alias meanwhile, the store refuses the write
(FAILED_PRECONDITION) and the gateway refreshes and embeds again.
"""

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable

import grpc

from reelvec import channels, modalities
from reelvec.models import AUDIO_MODEL_NAME, ModelVersion
from reelvec.v1 import search_pb2

REFRESH_SECONDS = 10.0
BUILDING = search_pb2.CollectionInfo.BUILDING


def visual_version(model_versions) -> str:
    """"efficientnet_lite0:2" -> "2"; empty when the collection has no videos yet."""
    return ModelVersion.parse(dict(model_versions).get(modalities.VISUAL, "")).version


def audio_version(model_versions) -> str:
    """"audio_logmel:3" -> "3"; empty for the hand-made statistics (or no videos yet)."""
    model = ModelVersion.parse(dict(model_versions).get(modalities.AUDIO, ""))
    return model.version if model.name == AUDIO_MODEL_NAME else ""


@dataclasses.dataclass(frozen=True)
class Pins:
    """What a collection's vectors are made with: the visual and audio model versions, the fusion."""

    visual_version: str = ""  # empty: the newest served (a collection with no videos yet)
    fusion: str = ""  # empty: the default fusion
    audio_version: str = ""  # empty: the hand-made statistics

    @classmethod
    def of(cls, model_versions) -> "Pins":
        fused = dict(model_versions).get(modalities.FUSED, "")
        return cls(visual_version(model_versions), fused, audio_version(model_versions))

    def encoded_by(self, encoded) -> bool:
        """Whether an EncodeResponse came from these model versions."""
        made = {modalities.VISUAL: encoded.visual_model, modalities.AUDIO: encoded.audio_model}
        return (visual_version(made), audio_version(made)) == (self.visual_version, self.audio_version)


class Versions:
    def __init__(self, list_collections: Callable[[], Awaitable[search_pb2.ListCollectionsResponse]]):
        self._list = list_collections
        self._listed: search_pb2.ListCollectionsResponse | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def listed(self, refresh: bool = False) -> search_pb2.ListCollectionsResponse:
        if refresh or self._listed is None or time.monotonic() - self._at > REFRESH_SECONDS:
            async with self._lock:
                self._listed = await self._list()
                self._at = time.monotonic()
        return self._listed

    async def active(self, refresh: bool = False) -> search_pb2.CollectionInfo:
        listed = await self.listed(refresh)
        return next(c for c in listed.collections if c.name == listed.active)

    async def building(self) -> list[search_pb2.CollectionInfo]:
        """Collections a re-embed is filling: every write goes there too (dual writes)."""
        return [c for c in (await self.listed()).collections if c.state == BUILDING]


async def pinned(versions: Versions, operation):
    """Runs operation(pins) with the aliased collection's versions; once more with the new ones
    when the alias moved meanwhile (the store refuses vectors of the old ones)."""
    pins = Pins.of((await versions.active()).model_versions)
    try:
        return await operation(pins)
    except channels.Upstream as exc:
        if exc.code != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        again = Pins.of((await versions.active(refresh=True)).model_versions)
        if again == pins:
            raise
        return await operation(again)


class WriteGate:
    """Writes (Index, Delete) hold it shared; the alias switch holds it alone, so that no write
    lands in the old collection after the last comparison of the two."""

    def __init__(self):
        self._writers = 0
        self._closed = False
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def write(self):
        async with self._changed:
            await self._changed.wait_for(lambda: not self._closed)
            self._writers += 1
        try:
            yield
        finally:
            async with self._changed:
                self._writers -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self):
        async with self._changed:
            await self._changed.wait_for(lambda: not self._closed)
            self._closed = True
            await self._changed.wait_for(lambda: self._writers == 0)
        try:
            yield
        finally:
            async with self._changed:
                self._closed = False
                self._changed.notify_all()
