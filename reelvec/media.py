"""Reading uploaded media from memory with PyAV: validation, probing, audio, frames at given times.

Every way an upload can be wrong becomes an `errors.InvalidInput` whose message says what is wrong
(empty, not a media file, truncated, no video stream, absurd size or length), so services answer
INVALID_ARGUMENT instead of failing inside FFmpeg. A file that breaks off mid-stream is still used up
to the break: only a file with nothing decodable is rejected.
"""

import bisect
import contextlib
import dataclasses
import io
import logging
from typing import Iterator, Sequence

import av
import numpy as np

from reelvec import errors

log = logging.getLogger(__name__)

MAX_SIDE = 8192  # px: beyond any phone or camera; one 16k x 16k RGB frame is 800 MB
# 8K UHD (7680 x 4320) and no more: a few kilobytes of 8192 x 8192 still video would otherwise
# make the decoder allocate 100 MB a frame (a decompression bomb)
MAX_PIXELS = 7680 * 4320
DEFAULT_MAX_DURATION = 600.0  # seconds
# Seeking costs a keyframe lookup plus decoding from that keyframe: for a target closer than this to
# the last decoded frame, decoding forward is cheaper.
SEEK_AHEAD = 2.0  # seconds
# Until this many frames before a target, frames that no later frame refers to (most B-frames) are
# not decoded at all; nearer, every frame is, so the target itself is never one of those skipped. The
# margin is counted beyond the frames the decoder holds back to reorder B-frames (the stream's
# reorder depth): those enter the decoder before they come out.
SKIP_NONREF_MARGIN_FRAMES = 2
# The margin in seconds where PyAV does not say how deep the decoder reorders (no reorder_depth).
SKIP_NONREF_FALLBACK = 0.5

# Container signatures: open() failing on bytes that start like this means truncated or corrupt.
_SIGNATURES = {b"ftyp": "MP4/MOV", b"\x1a\x45\xdf\xa3": "Matroska/WebM", b"RIFF": "AVI/WAV",
               b"OggS": "Ogg", b"FLV": "FLV"}


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    duration: float  # seconds; from the header, else from the packets; 0.0 if nothing has a time
    width: int
    height: int
    fps: float
    has_audio: bool
    format: str
    video_codec: str
    audio_codec: str  # "" without audio
    frame_count: int  # from the container header; 0 when unknown


def _kind(data: bytes) -> str | None:
    head = data[:12]
    for magic, name in _SIGNATURES.items():
        if head.startswith(magic) or head[4:8] == magic:
            return name
    return None


@contextlib.contextmanager
def open_media(data: bytes) -> Iterator[av.container.InputContainer]:
    """Opens `data` as a media container; raises InvalidInput for empty or unreadable bytes. Every
    reader of media in the project opens it here, so that none of them chokes on metadata that a
    bare av.open would refuse."""
    if not data:
        raise errors.InvalidInput("empty input: the request carries no bytes")
    try:
        # titles and comments in other encodings than UTF-8 (real .avi files have Latin-1) are
        # readable with a replacement character, not a reason to refuse the video
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="replace")
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
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return 0.0


def _demuxed_duration(data: bytes, max_duration: float) -> float:
    """End of the last video packet, for containers without a duration in their header (WebM
    recorded live, raw streams). Reads packets without decoding, in a container of its own because
    not every input can seek back, and stops past the limit."""
    end = 0.0
    with open_media(data) as container:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                length = float((packet.duration or 0) * stream.time_base)
                start = float(packet.pts * stream.time_base) if packet.pts is not None else end
                end = max(end, start + length)
                if end > max_duration:
                    break
        except av.FFmpegError:
            pass  # truncated: the packets read so far tell how long it is
    return end


def _check_duration(duration: float, max_duration: float) -> None:
    if duration > max_duration:
        raise errors.InvalidInput(f"media is {duration:.0f} s long; the limit is {max_duration:.0f} s")


def _check_codec(stream, kind: str) -> None:
    # A damaged sample description leaves the demuxer a stream whose codec it cannot name.
    if stream.codec_context is None:
        raise errors.InvalidInput(f"the {kind} stream's codec is unknown: truncated or corrupt")


def _describe(container, data: bytes, max_duration: float) -> MediaInfo:
    if not container.streams.video:
        what = "an audio-only file" if container.streams.audio else "a file without audio or video"
        raise errors.InvalidInput(f"no video stream, got {what} ({container.format.name})")
    video = container.streams.video[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    _check_codec(video, "video")
    if audio is not None:
        _check_codec(audio, "audio")
    width, height = video.codec_context.width, video.codec_context.height
    if width <= 0 or height <= 0:
        raise errors.InvalidInput("video stream has no frame size: truncated or corrupt")
    if max(width, height) > MAX_SIDE:
        raise errors.InvalidInput(f"video is {width}x{height}; the largest side allowed is {MAX_SIDE} px")
    if width * height > MAX_PIXELS:
        raise errors.InvalidInput(f"video is {width}x{height}: more pixels a frame than 8K UHD (7680x4320) allows")
    duration = _duration(container, video) or _demuxed_duration(data, max_duration)
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
    )


def probe(data: bytes, max_duration: float = DEFAULT_MAX_DURATION) -> MediaInfo:
    """Validates a video upload and describes it; raises InvalidInput saying what is wrong when it
    is not a usable video."""
    with open_media(data) as container:
        return _describe(container, data, max_duration)


def decode_audio(
    data: bytes, sample_rate: int = 16000, max_duration: float = DEFAULT_MAX_DURATION
) -> np.ndarray | None:
    """The first audio track as mono float32 samples in [-1, 1] at `sample_rate`; None when the file
    has no audio track. Audio-only files are accepted here."""
    with open_media(data) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        _check_codec(stream, "audio")
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


def _stream_setup(container):
    stream = container.streams.video[0]
    # One thread: the encoder decodes several uploads at once on few cores, where frame threads'
    # hand-offs only add CPU (13 clips sampled: 4.1-4.5 CPU-s with FFmpeg's threads, 3.7-4.2 with one).
    stream.codec_context.thread_count = 1
    return stream, container.decode(stream)


def _skip_nonref_before(stream, frame_seconds: float) -> float:
    """How far before a target skipping non-reference frames must stop (docs/encoder.md)."""
    reorder = getattr(stream.codec_context, "reorder_depth", None)
    if reorder is None:
        return SKIP_NONREF_FALLBACK
    return (reorder + SKIP_NONREF_MARGIN_FRAMES) * frame_seconds


def _keyframe_times(data: bytes) -> list[float] | None:
    """Where the keyframes are, from the packets alone (no decoding: milliseconds for a short clip);
    None when the container does not say."""
    try:
        with open_media(data) as container:
            stream = container.streams.video[0]
            times = [float(p.pts * stream.time_base) for p in container.demux(stream)
                     if p.is_keyframe and p.pts is not None]
    except (av.FFmpegError, errors.ReelvecError):
        return None
    return sorted(times) or None


def _seek_skips(keyframes: list[float] | None, target: float, shown: float) -> bool:
    """A seek lands on the last keyframe at or before `target`: it only saves work when that
    keyframe lies ahead of what is already decoded. Otherwise it decodes the same frames again (a
    30 s clip with a keyframe every 8 s took 1.3 CPU-s to sample 16 frames that way, against 0.9 s
    to decode every frame)."""
    if keyframes is None:
        return True
    landing = bisect.bisect_right(keyframes, target + 1e-6) - 1
    return landing >= 0 and keyframes[landing] > shown


def frames_at(data: bytes, times: Sequence[float]) -> Iterator[tuple[int, av.VideoFrame]]:
    """For each time (seconds from the start, ascending) the frame nearest to it, as (index into
    `times`, frame). Seeks to the keyframe before a far target and decodes forward from there; decodes
    straight through when targets are close together or the input cannot seek. Stops early, without
    error, where a truncated file breaks off. `data` must have passed `probe`."""
    with contextlib.ExitStack() as stack:
        container = stack.enter_context(open_media(data))
        stream, decoded = _stream_setup(container)
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        slack = 0.5 / float(stream.average_rate or stream.guessed_rate or 25)  # half a frame
        skip_before = _skip_nonref_before(stream, 2 * slack)
        frame, shown, seekable = None, float("-inf"), True
        keyframes: list[float] | None | bool = False  # read on the first seek considered
        for index, target in enumerate(times):
            target += start
            if frame is not None and shown >= target - slack:
                yield index, frame  # targets closer together than frames: the same frame again
                continue
            # nothing decoded yet counts as the start: decoding from there is what a seek would do
            far = seekable and target - max(shown, start) > SEEK_AHEAD
            if far and keyframes is False:
                keyframes = _keyframe_times(data)  # once, and only for clips long enough to seek in
            if far and _seek_skips(keyframes, target, shown):
                try:
                    container.seek(int(target / stream.time_base), stream=stream, backward=True)
                    decoded = container.decode(stream)
                except av.FFmpegError:
                    # a failed seek leaves the demuxer anywhere: start over, decode straight through
                    seekable = False
                    container = stack.enter_context(open_media(data))
                    stream, decoded = _stream_setup(container)
                    frame, shown = None, float("-inf")
            while True:
                skip = "NONREF" if target - max(shown, start) > skip_before else "DEFAULT"
                if stream.codec_context.skip_frame != skip:
                    stream.codec_context.skip_frame = skip
                try:
                    frame = next(decoded)
                except (StopIteration, av.FFmpegError):
                    # the end came first (truncated, or timestamps that never reach the target): the
                    # last frame is the nearest there is, once
                    if frame is not None and shown < target - slack:
                        yield index, frame
                    return
                if frame.time is not None:
                    shown = frame.time
                else:  # raw streams carry no timestamps: count frame durations
                    known = frame.duration and frame.time_base
                    step = float(frame.duration * frame.time_base) if known else 2 * slack
                    shown = max(shown, start - step) + step
                if shown >= target - slack:
                    break
            yield index, frame
