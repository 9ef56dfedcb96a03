"""The reelvec.v1.Encoder service: sampled frames -> visual vector (Triton), audio track -> features."""

import asyncio
import contextlib
import dataclasses
import io
import logging

import numpy as np
from PIL import Image

from reelvec import audio_features, config, copies, errors, frames, limits, media
from reelvec.models import VISUAL_MODEL_NAME, triton_repository
from reelvec.server import timed
from reelvec.v1 import encoder_pb2, encoder_pb2_grpc
from reelvec.vectors import unit
from services.encoder import models
from services.encoder.models import AUDIO, VISUAL, Model, pool

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Settings(config.ServerSettings):
    port: int = 50052
    # "triton", or "onnxruntime": in-process, for machines without Triton
    visual_backend: str = dataclasses.field(default="triton", metadata={"choices": models.BACKENDS})
    triton_url: str = "127.0.0.1:8001"
    triton_timeout: float = 30.0  # seconds per inference call
    triton_ready_timeout: float = 300.0  # how long warmup waits for Triton to serve the model
    visual_model: str = VISUAL_MODEL_NAME
    visual_model_version: str = ""  # empty: the latest version
    model_repository: str = ""  # read by the onnxruntime backend only; empty: `make models`' repository
    onnx_threads: int = 0  # onnxruntime backend; 0: every usable core
    # frames sampled: frames_per_second of the clip (copy detection's descriptors, docs/copies.md),
    # at least `frames` (the clip vector of a short clip) and at most max_frames
    frames: int = 16
    frames_per_second: float = 1.0
    max_frames: int = 120
    max_duration: float = media.DEFAULT_MAX_DURATION  # seconds
    max_decodes: int = 2  # videos decoded at once (CPU-bound threads); more wait

    def __post_init__(self):
        self.model_repository = self.model_repository or str(triton_repository())


def _jpeg(frame: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="JPEG", quality=85)
    return out.getvalue()


class Encoder(encoder_pb2_grpc.EncoderServicer):
    PINNED_READY_TIMEOUT = 5.0

    def __init__(self, settings: Settings, visual: Model | None = None):
        self.settings = settings
        # the default: settings.visual_model_version, else the newest
        self.visual = visual or models.make(settings, VISUAL, settings.visual_model_version)
        self.pinned = models.ModelCache(self._load_pinned)  # the versions callers pin
        self._decodes = asyncio.Semaphore(settings.max_decodes)

    async def _load_pinned(self, kind: models.Kind, version: str) -> Model:
        """A model version a caller pins (the gateway pins its collection's)."""
        what = "visual" if kind is VISUAL else "audio"
        try:
            model = models.make(self.settings, kind, version)
        except FileNotFoundError as exc:
            raise errors.Precondition(f"{what} model version {version} is not there ({exc})") from None
        try:
            await model.load(self.PINNED_READY_TIMEOUT)
        except errors.Unavailable as exc:
            await model.close()
            raise errors.Precondition(
                f"{what} model version {version} is not served ({exc}): load it into Triton first"
            ) from None
        return model

    @contextlib.asynccontextmanager
    async def _models(self, visual_version: str, audio_version: str):
        """The visual model and the learned audio one (None: the hand-made statistics) a call pins."""
        for name, version in (("visual_version", visual_version), ("audio_version", audio_version)):
            if version and not version.isdigit():
                raise errors.InvalidInput(f"{name} must be a number such as 2, not {version!r}")
        async with contextlib.AsyncExitStack() as stack:
            visual = await stack.enter_async_context(self.pinned.use(VISUAL, visual_version)) \
                if visual_version else self.visual
            audio = await stack.enter_async_context(self.pinned.use(AUDIO, audio_version)) if audio_version else None
            yield visual, audio

    def _frames(self, data: bytes, with_views: bool) -> frames.Sampled:
        s = self.settings
        return frames.sample(data, s.frames, s.max_duration, per_second=s.frames_per_second, max_count=s.max_frames,
                             with_views=with_views)

    def _samples(self, data: bytes) -> np.ndarray | None:
        samples = media.decode_audio(data, audio_features.SAMPLE_RATE, self.settings.max_duration)
        return None if samples is None or samples.size == 0 else samples

    async def _audio(self, samples: np.ndarray | None, learned) -> tuple[np.ndarray | None, str]:
        """The hand-made statistics, or the learned encoder's pooled windows when one is pinned."""
        if samples is None:
            return None, audio_features.VERSION if learned is None else learned.name
        with timed("features"):
            if learned is None:
                return await asyncio.to_thread(audio_features.features, samples), audio_features.VERSION
            windows = await asyncio.to_thread(audio_features.logmel_windows, samples)
        with timed("model"):
            (embeddings,) = await learned.predict(windows)
            return pool(embeddings), learned.name

    async def _visual(self, model, sampled: frames.Sampled) -> tuple[np.ndarray, int, copies.Track, str]:
        """The clip vector, the index of the frame closest to it (the thumbnail), every kept
        frame's descriptor with its time (the copy detector's), with the views' when sampled, and
        the descriptor head's id."""
        n = len(sampled.frames)
        batch = sampled.frames if sampled.views is None else np.concatenate(
            [sampled.frames, sampled.views.reshape(-1, *sampled.frames.shape[1:])])
        with timed("model"):
            embedded, described, heads = await model.predict(batch)
        pooled = pool(embedded[:n])
        typical = int(np.argmax(unit(embedded[:n], np.float32) @ pooled))
        views = None if sampled.views is None else described[n:].reshape(n, sampled.views.shape[1], -1)
        return pooled, typical, copies.Track.of(sampled.times, described[:n], views), f"{int(heads[0, 0]):016x}"

    async def Encode(self, request, context):
        limits.check_video(request.video, self.settings.max_video_mb)
        async with self._models(request.visual_version, request.audio_version) as (visual_model, learned):
            return await self._encode(request.video, visual_model, learned, request.with_views)

    async def _encode(self, data: bytes, visual_model: Model, learned: Model | None,
                      with_views: bool = False) -> encoder_pb2.EncodeResponse:
        with timed("queued"):
            await self._decodes.acquire()
        try:
            with timed("decode"):
                sampled, samples = await asyncio.gather(
                    asyncio.to_thread(self._frames, data, with_views),
                    asyncio.to_thread(self._samples, data),
                )
        finally:
            self._decodes.release()
        (visual, typical, track, head), (audio, audio_model) = await asyncio.gather(
            self._visual(visual_model, sampled), self._audio(samples, learned)
        )
        thumbnail = await asyncio.to_thread(_jpeg, sampled.frames[typical])
        info = sampled.info
        return encoder_pb2.EncodeResponse(
            visual=visual.tolist(),
            audio=audio.tolist() if audio is not None else [],
            duration=info.duration,
            width=info.width,
            height=info.height,
            fps=info.fps,
            frames_sampled=len(sampled.frames),
            frames_skipped=sampled.skipped,
            has_audio=audio is not None,
            visual_model=visual_model.name,
            audio_model=audio_model,
            thumbnail_jpeg=thumbnail,
            frames=track.to_proto(),
            descriptor_head=head,
        )

    async def close(self) -> None:
        await self.visual.close()
        await self.pinned.close()

    async def warmup(self) -> None:
        await self.visual.load(self.settings.triton_ready_timeout)
        # the first inference allocates the runtime's buffers: pay for it before serving
        await self.visual.predict(np.zeros((1, frames.SIZE, frames.SIZE, 3), np.uint8))
        log.info(
            "visual model ready", extra={"backend": self.settings.visual_backend, "model": self.visual.name}
        )
