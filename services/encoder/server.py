"""The reelvec.v1.Encoder service: sampled frames -> visual vector (Triton), audio track -> features."""

import asyncio
import dataclasses
import io
import logging

import numpy as np
from PIL import Image

from reelvec import config, errors, limits, media
from reelvec.models import AUDIO_MODEL_NAME, TRITON_REPOSITORY, VISUAL_MODEL_NAME
from reelvec.server import timed
from reelvec.v1 import encoder_pb2, encoder_pb2_grpc
from reelvec.vectors import unit
from services.encoder import audio_features, frames
from services.encoder.learned_audio import OnnxAudio, TritonAudio
from services.encoder.visual import OnnxVisual, TritonVisual, pool

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Settings(config.ServerSettings):
    port: int = 50052
    visual_backend: str = "triton"  # or "onnxruntime": in-process, for machines without Triton
    triton_url: str = "127.0.0.1:8001"
    triton_timeout: float = 30.0  # seconds per inference call
    triton_ready_timeout: float = 300.0  # how long warmup waits for Triton to serve the model
    visual_model: str = VISUAL_MODEL_NAME
    visual_model_version: str = ""  # empty: the latest version
    model_repository: str = str(TRITON_REPOSITORY)  # read by the onnxruntime backend only
    onnx_threads: int = 0  # onnxruntime backend; 0: every usable core
    frames: int = 16
    max_duration: float = media.DEFAULT_MAX_DURATION  # seconds
    max_decodes: int = 2  # videos decoded at once (CPU-bound threads); more wait


def make_visual(settings: Settings, version: str = ""):
    version = version or settings.visual_model_version
    if settings.visual_backend == "triton":
        return TritonVisual(settings.triton_url, settings.visual_model, version, settings.triton_timeout)
    if settings.visual_backend == "onnxruntime":
        return OnnxVisual(settings.model_repository, settings.visual_model, version, settings.onnx_threads)
    raise SystemExit(f"unknown visual backend {settings.visual_backend!r}: use triton or onnxruntime")


def make_audio(settings: Settings, version: str):
    """A learned audio encoder version, on the visual model's backend."""
    if settings.visual_backend == "triton":
        return TritonAudio(settings.triton_url, AUDIO_MODEL_NAME, version, settings.triton_timeout)
    if settings.visual_backend == "onnxruntime":
        return OnnxAudio(settings.model_repository, AUDIO_MODEL_NAME, version, settings.onnx_threads)
    raise SystemExit(f"unknown visual backend {settings.visual_backend!r}: use triton or onnxruntime")


def _jpeg(frame: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="JPEG", quality=85)
    return out.getvalue()


class Encoder(encoder_pb2_grpc.EncoderServicer):
    PINNED_READY_TIMEOUT = 5.0

    def __init__(self, settings: Settings, visual):
        self.settings = settings
        self.visual = visual  # the default: settings.visual_model_version, else the newest
        self._pinned: dict[tuple[str, str], object] = {}  # (kind, version) callers asked for
        self._decodes = asyncio.Semaphore(settings.max_decodes)

    async def _model_for(self, kind: str, version: str):
        """The model version a caller pins (the gateway pins its collection's), opened once."""
        if not version.isdigit():
            raise errors.InvalidInput(f"{kind}_version must be a number such as 2, not {version!r}")
        model = self._pinned.get((kind, version))
        if model is None:
            make = make_visual if kind == "visual" else make_audio
            try:
                model = make(self.settings, version)
            except FileNotFoundError as exc:
                raise errors.Precondition(f"{kind} model version {version} is not there ({exc})") from None
            try:
                await model.ready(self.PINNED_READY_TIMEOUT)
            except errors.Unavailable as exc:
                await model.close()
                raise errors.Precondition(
                    f"{kind} model version {version} is not served ({exc}): load it into Triton first"
                ) from None
            self._pinned[(kind, version)] = model
        return model

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
            return pool(await learned.embed(windows)), learned.name

    async def _visual(self, model, frames_: np.ndarray) -> tuple[np.ndarray, int]:
        """The clip vector, and the index of the frame closest to it (the thumbnail)."""
        with timed("model"):
            embeddings = await model.embed(frames_)
        pooled = pool(embeddings)
        return pooled, int(np.argmax(unit(embeddings) @ pooled))

    async def Encode(self, request, context):
        data = request.video
        limits.check_video(data, self.settings.max_video_mb)
        visual_model = await self._model_for("visual", request.visual_version) if request.visual_version else self.visual
        learned = await self._model_for("audio", request.audio_version) if request.audio_version else None
        with timed("queued"):
            await self._decodes.acquire()
        try:
            with timed("decode"):
                sampled, samples = await asyncio.gather(
                    asyncio.to_thread(frames.sample, data, self.settings.frames, self.settings.max_duration),
                    asyncio.to_thread(self._samples, data),
                )
        finally:
            self._decodes.release()
        (visual, typical), (audio, audio_model) = await asyncio.gather(
            self._visual(visual_model, sampled.frames), self._audio(samples, learned)
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
        )

    async def close(self) -> None:
        for visual in [self.visual, *self._pinned.values()]:
            await visual.close()

    async def warmup(self) -> None:
        await self.visual.ready(self.settings.triton_ready_timeout)
        # the first inference allocates the runtime's buffers: pay for it before serving
        await self.visual.embed(np.zeros((1, frames.SIZE, frames.SIZE, 3), np.uint8))
        log.info(
            "visual model ready", extra={"backend": self.settings.visual_backend, "model": self.visual.name}
        )
