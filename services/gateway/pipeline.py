"""Video -> embeddings: the encoder and the transcriber in parallel, then fusion."""

import asyncio
import dataclasses
import hashlib

import grpc
import numpy as np

from reelvec import channels, clients, fusion, modalities
from reelvec.v1 import common_pb2, encoder_pb2, transcriber_pb2
from services.gateway.versions import Pins


@dataclasses.dataclass
class Embedded:
    vectors: dict[str, np.ndarray]
    encoded: encoder_pb2.EncodeResponse
    transcribed: transcriber_pb2.TranscribeResponse
    sha256: str
    fusion: str  # the fusion's name: its version
    incomplete: list[str] = dataclasses.field(default_factory=list)  # "transcript": stored degraded

    def embeddings(self) -> common_pb2.Embeddings:
        return embeddings_of(self.vectors)

    def model_versions(self) -> dict[str, str]:
        versions = {
            **frame_versions(self.encoded),
            modalities.AUDIO: self.encoded.audio_model,
            "whisper": self.transcribed.whisper_model,
            modalities.TEXT: self.transcribed.text_model,
            modalities.FUSED: self.fusion,
        }
        return {k: v for k, v in versions.items() if v}


def frame_versions(encoded: encoder_pb2.EncodeResponse) -> dict[str, str]:
    """What an upload's frames are compared by: the visual model and its descriptor head."""
    made = {modalities.VISUAL: encoded.visual_model, modalities.DESCRIPTOR: encoded.descriptor_head}
    return {k: v for k, v in made.items() if v}


def embeddings_of(vectors: dict[str, np.ndarray]) -> common_pb2.Embeddings:
    return common_pb2.Embeddings(vectors={name: common_pb2.Vector(values=v.tolist()) for name, v in vectors.items()})


async def first_failure_cancels(*coroutines):
    """Like gather, but the first failure cancels the rest at once instead of leaving them running."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()


def fused(sources: dict, fuse) -> dict[str, np.ndarray]:
    """The modality vectors a video has (empty or non-modality entries left out) and their
    fusion by `fuse` (reelvec.fusion)."""
    vectors = {name: np.asarray(v, np.float32) for name, v in sources.items() if name in modalities.SOURCES and len(v)}
    vectors[modalities.FUSED] = fuse(vectors)
    return vectors


def vectors_of(encoded: encoder_pb2.EncodeResponse, text, fuse) -> dict[str, np.ndarray]:
    return fused({modalities.VISUAL: encoded.visual, modalities.AUDIO: encoded.audio, modalities.TEXT: text}, fuse)


def frames_of(encoded: encoder_pb2.EncodeResponse) -> common_pb2.Frames | None:
    """The encoder's frame descriptors; None, never an empty message, from an encoder that sends
    none: a record without the field keeps the frames the store holds, an empty one would not."""
    return encoded.frames if encoded.HasField("frames") else None


def stored_vectors(record: common_pb2.VideoRecord) -> dict:
    """A stored record's vectors by name (fused with them; `fused` leaves it out)."""
    return {name: v.values for name, v in record.embeddings.vectors.items()}


def encode(encoder: clients.Encoder, data: bytes, pins: Pins = Pins(), with_views: bool = False):
    """With the model versions a collection's vectors are made with; `with_views` for a copy query."""
    return encoder.encode(data, pins.visual_version, pins.audio_version, with_views)


async def _unless_unavailable(call):
    """The call's answer, or None when the service is down (a degraded Index goes on without it)."""
    try:
        return await call
    except channels.Upstream as exc:
        if exc.code != grpc.StatusCode.UNAVAILABLE:
            raise
        return None


async def embed(encoder: clients.Encoder, transcriber: clients.Transcriber, data: bytes, caption: str, hashtags,
                pins: Pins = Pins(), fuse=fusion.WeightedConcat(), degrade: bool = False,
                with_views: bool = False) -> Embedded:
    """`pins` are the model versions and `fuse` the fusion of the collection the vectors are for
    (docs/versions.md). With `degrade`, a transcriber that is down leaves the transcript and the
    text vector out (Embedded.incomplete) instead of failing the call. `with_views`: the frames
    carry their crops (a copy query's; never stored)."""
    transcribing = transcriber.transcribe(data, caption, hashtags)
    encoded, transcribed = await first_failure_cancels(
        encode(encoder, data, pins, with_views), _unless_unavailable(transcribing) if degrade else transcribing
    )
    incomplete = ["transcript"] if transcribed is None else []
    transcribed = transcribed or transcriber_pb2.TranscribeResponse()
    sha = hashlib.sha256(data).hexdigest()
    return Embedded(vectors_of(encoded, transcribed.text, fuse), encoded, transcribed, sha, fuse.name, incomplete)


async def embed_again(encoder: clients.Encoder, data: bytes, embedded: Embedded, pins: Pins, fuse) -> Embedded:
    """The same video for another collection: encoded again only when a model version differs;
    the transcript and text vector are reused."""
    encoded = embedded.encoded
    if not pins.encoded_by(encoded):
        encoded = await encode(encoder, data, pins)
    text = embedded.vectors.get(modalities.TEXT, ())
    return Embedded(vectors_of(encoded, text, fuse), encoded, embedded.transcribed, embedded.sha256, fuse.name,
                    embedded.incomplete)
