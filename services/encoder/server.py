"""The reelvec.v1.Encoder service: sampled frames -> visual vector (Triton), audio track -> features."""

import asyncio
import dataclasses
import logging

import numpy as np

from reelvec import config, errors, media
from reelvec.models import TRITON_REPOSITORY, VISUAL_MODEL_NAME
from reelvec.v1 import encoder_pb2, encoder_pb2_grpc
from services.encoder import audio_features, frames
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


class Encoder(encoder_pb2_grpc.EncoderServicer):
    def __init__(self, settings: Settings, visual):
        self.settings = settings
        self.visual = visual  # the default: settings.visual_model_version, else the newest
        self._pinned: dict[str, object] = {}  # other versions callers asked for, by version
        self._decodes = asyncio.Semaphore(settings.max_decodes)

    async def _visual_for(self, version: str):
        """The model version a caller pins (the gateway pins its collection's), opened once."""
        if not version:
            return self.visual
        if not version.isdigit():
            raise errors.InvalidInput(f"visual_version must be a number such as 2, not {version!r}")
        visual = self._pinned.get(version)
        if visual is None:
            try:
                visual = make_visual(self.settings, version)
            except FileNotFoundError as exc:
                raise errors.Precondition(f"visual model version {version} is not there ({exc})") from None
            try:
                await visual.ready(self.PINNED_READY_TIMEOUT)
            except errors.Unavailable as exc:
                await visual.close()
                raise errors.Precondition(
                    f"visual model version {version} is not served ({exc}): load it into Triton first"
                ) from None
            self._pinned[version] = visual
        return visual

    PINNED_READY_TIMEOUT = 5.0

    def _audio(self, data: bytes) -> np.ndarray | None:
        samples = media.decode_audio(data, audio_features.SAMPLE_RATE, self.settings.max_duration)
        if samples is None or samples.size == 0:
            return None
        return audio_features.features(samples)

    async def Encode(self, request, context):
        data = request.video
        if not data:
            raise errors.InvalidInput("video is empty")
        if len(data) > self.settings.max_video_mb * 1024 * 1024:
            raise errors.TooLarge(f"video is larger than {self.settings.max_video_mb} MB")
        visual_model = await self._visual_for(request.visual_version)
        async with self._decodes:
            sampled, audio = await asyncio.gather(
                asyncio.to_thread(frames.sample, data, self.settings.frames, self.settings.max_duration),
                asyncio.to_thread(self._audio, data),
            )
        visual = pool(await visual_model.embed(sampled.frames))
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
            audio_model=audio_features.VERSION,
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
