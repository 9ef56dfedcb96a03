"""Reading uploaded media from memory with PyAV: validation, probing, audio, frames at given times.

Every way an upload can be wrong becomes an `errors.InvalidInput` whose message says what is wrong
(empty, not a media file, truncated, no video stream, absurd size or length), so services answer
INVALID_ARGUMENT instead of failing inside FFmpeg. A file that breaks off mid-stream is still used up
to the break: only a file with nothing decodable is rejected.
"""

import contextlib
import dataclasses
import io
import logging
from typing import Iterator, Sequence

import av
import numpy as np

from reelvec import errors

log = logging.getLogger(__name__)

MAX_SIDE = 8192  # px; beyond any phone or camera, and a 16k x 16k frame is 750 MB of RGB
DEFAULT_MAX_DURATION = 600.0  # seconds
# Seeking costs a keyframe lookup plus decoding from that keyframe: for a target closer than this to
# the last decoded frame, decoding forward is cheaper.
SEEK_AHEAD = 2.0  # seconds

# Container signatures: open() failing on bytes that start like this means truncated or corrupt.
_SIGNATURES = {b"ftyp": "MP4/MOV", b"\x1a\x45\xdf\xa3": "Matroska/WebM", b"RIFF": "AVI/WAV",
               b"OggS": "Ogg", b"FLV": "FLV"}


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    duration: float  # seconds; 0.0 when the container does not say
    width: int
    height: int
    fps: float
    has_audio: bool
    format: str
    video_codec: str
    audio_codec: str  # "" without audio
    frame_count: int  # from the container header; 0 when unknown
    rotation: int  # degrees counterclockwise to display the frames upright (phone videos)


def _kind(data: bytes) -> str | None:
    head = data[:12]
    for magic, name in _SIGNATURES.items():
        if head.startswith(magic) or head[4:8] == magic:
            return name
    return None


@contextlib.contextmanager
def open_media(data: bytes) -> Iterator[av.container.InputContainer]:
    """Opens `data` as a media container; raises InvalidInput for empty or unreadable bytes."""
    if not data:
        raise errors.InvalidInput("empty input: the request carries no bytes")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError) as exc:
        kind = _kind(data)
        if kind:
            raise errors.InvalidInput(
                f"{kind} file is truncated or corrupt ({len(data)} bytes): {_reason(exc)}"
            ) from None
        raise errors.InvalidInput(
            f"not a media file ({len(data)} bytes, no known audio/video container): {_reason(exc)}"
        ) from None
    try:
        yield container
    finally:
        container.close()


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _duration(container, stream) -> float:
    if container.duration:
        return container.duration / av.time_base
    if stream is not None and stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return 0.0


def _check_duration(duration: float, max_duration: float) -> None:
    if duration > max_duration:
        raise errors.InvalidInput(f"media is {duration:.0f} s long; the limit is {max_duration:.0f} s")


def _info(container, max_duration: float) -> MediaInfo:
    if not container.streams.video:
        what = "an audio-only file" if container.streams.audio else "a file without audio or video"
        raise errors.InvalidInput(f"no video stream, got {what} ({container.format.name})")
    video = container.streams.video[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    width, height = video.codec_context.width, video.codec_context.height
    if width <= 0 or height <= 0:
        raise errors.InvalidInput("video stream has no frame size: truncated or corrupt")
    if max(width, height) > MAX_SIDE:
        raise errors.InvalidInput(f"video is {width}x{height}; the largest side allowed is {MAX_SIDE} px")
    duration = _duration(container, video)
    _check_duration(duration, max_duration)
    rate = video.average_rate or video.guessed_rate
    return MediaInfo(
        duration=duration,
        width=width,
        height=height,
        fps=float(rate) if rate else 0.0,
        has_audio=audio is not None,
        format=container.format.name,
        video_codec=video.codec_context.name,
        audio_codec=audio.codec_context.name if audio is not None else "",
        frame_count=video.frames or 0,
        rotation=_rotation(video),
    )


def _rotation(video) -> int:
    """Display-matrix rotation rounded to quarter turns (counterclockwise, FFmpeg's convention)."""
    try:
        angle = float(video.codec_context.display_rotation) if hasattr(video.codec_context, "display_rotation") else 0.0
    except (TypeError, ValueError):
        angle = 0.0
    return int(round(angle / 90.0)) % 4 * 90


def probe(data: bytes, max_duration: float = DEFAULT_MAX_DURATION) -> MediaInfo:
    """Validates a video upload and describes it; raises InvalidInput when it is not a usable video."""
    with open_media(data) as container:
        return _info(container, max_duration)


def decode_audio(
    data: bytes, sample_rate: int = 16000, max_duration: float = DEFAULT_MAX_DURATION
) -> np.ndarray | None:
    """The first audio track as mono float32 samples in [-1, 1] at `sample_rate`; None when the file
    has no audio track. Audio-only files are accepted here."""
    with open_media(data) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        _check_duration(_duration(container, stream), max_duration)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
        except av.FFmpegError as exc:  # truncated: keep what decoded before the break
            log.info("audio decoding stopped early", extra={"reason": _reason(exc)})
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)
