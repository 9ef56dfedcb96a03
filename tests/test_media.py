"""reelvec.media: every bad upload gets a clear InvalidInput; probing, audio and frame seeking work."""

import io
import os
from fractions import Fraction

import av
import numpy as np
import pytest

from reelvec import errors, media, samples


def encode_video(frames, fps=10, gop=None, fmt=None, rotation=None, metadata=None, codec="libx264",
                 preset="ultrafast") -> bytes:
    """H.264 (or `codec`) from RGB arrays; `fmt` picks the container (mp4 by default, "h264" for a
    raw stream); `metadata` goes into the container's tags. x264's "ultrafast" makes no B-frames,
    its default "medium" does, as phones and editing apps do."""
    out = io.BytesIO()
    height, width = frames[0].shape[:2]
    with av.open(out, "w", format=fmt or "mp4") as container:
        container.metadata.update(metadata or {})
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": preset, **({"g": str(gop), "keyint_min": str(gop)} if gop else {})}
        if rotation:
            stream.set_display_rotation(rotation)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def encode_audio_only(seconds=2.0, rate=16000, hz=440.0) -> bytes:
    """An AAC .m4a: what a user uploads by mistake instead of the video."""
    out = io.BytesIO()
    tone = (0.3 * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    with av.open(out, "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        for start in range(0, len(tone), 1024):
            chunk = tone[start : start + 1024].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


# Frame i shows i in binary as 12 bright or dark blocks: survives compression, readable after seeking.
def numbered(count: int, size=(160, 128)) -> list[np.ndarray]:
    width, height = size
    images = []
    for index in range(count):
        image = np.full((height, width, 3), 60, np.uint8)
        for bit in range(12):
            if index >> bit & 1:
                row, col = divmod(bit, 6)
                image[row * 64 : row * 64 + 60, col * 26 : col * 26 + 24] = 230
        images.append(image)
    return images


def read_number(image: np.ndarray) -> int:
    return sum(1 << bit for bit in range(12) if image[(bit // 6) * 64 + 30, (bit % 6) * 26 + 12].mean() > 145)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    path = samples.make_video(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=3, tone_hz=440.0)
    return path.read_bytes()


@pytest.fixture(scope="module")
def silent_clip(tmp_path_factory) -> bytes:
    path = samples.make_video(tmp_path_factory.mktemp("media") / "mute.mp4", seconds=2, audio=False)
    return path.read_bytes()


def _rejects(data: bytes, *words: str, **kwargs) -> str:
    with pytest.raises(errors.InvalidInput) as caught:
        media.probe(data, **kwargs)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    return message


def test_probe_describes_a_video(clip):
    info = media.probe(clip)
    assert (info.width, info.height) == (320, 240)
    assert info.duration == pytest.approx(3.0, abs=0.1)
    assert info.fps == pytest.approx(12.0)
    assert info.has_audio and info.audio_codec == "aac" and info.video_codec == "h264"


def test_empty_bytes():
    _rejects(b"", "empty")


def test_random_bytes_are_not_media():
    _rejects(os.urandom(50_000), "not a media file")
    _rejects(b"just some text, certainly not a video\n" * 100, "not a media file")


def test_truncated_mp4_is_named_as_such(clip):
    _rejects(clip[: len(clip) // 2], "MP4/MOV", "truncated")


def test_audio_only_file():
    _rejects(encode_audio_only(), "no video stream, got an audio-only file")


def test_absurd_resolution():
    wide = encode_video([np.full((16, 8320, 3), 90, np.uint8)] * 2)
    _rejects(wide, "8320x16", "8192")


def test_too_long(clip):
    _rejects(clip, "3 s long", "limit is 2 s", max_duration=2.0)


def test_duration_from_packets_when_the_header_has_none():
    raw = encode_video(numbered(30), fps=10, fmt="h264")  # an elementary stream: no header at all
    info = media.probe(raw)
    assert info.format == "h264"
    assert info.duration == pytest.approx(3.0, abs=0.15)


def test_decode_audio_is_mono_float_at_the_asked_rate(clip):
    audio = media.decode_audio(clip, sample_rate=16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == pytest.approx(3 * 16000, rel=0.05)
    spectrum = np.abs(np.fft.rfft(audio[4000:20000]))  # one second: 1 Hz bins
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)
    assert len(media.decode_audio(clip, sample_rate=8000)) == pytest.approx(3 * 8000, rel=0.05)


def test_decode_audio_none_without_audio_track(silent_clip):
    assert media.decode_audio(silent_clip) is None


def test_decode_audio_takes_audio_only_files():
    audio = media.decode_audio(encode_audio_only(seconds=2.0))
    assert len(audio) == pytest.approx(32000, rel=0.05)


def test_decode_audio_rejects_garbage():
    with pytest.raises(errors.InvalidInput, match="not a media file"):
        media.decode_audio(os.urandom(10_000))


@pytest.mark.parametrize("gop", [5, 50])
def test_frames_at_returns_the_nearest_frame(gop):
    """Far targets seek to a keyframe and decode forward; either way the frame is the right one."""
    fps, seconds = 10, 60
    data = encode_video(numbered(fps * seconds), fps=fps, gop=gop)
    times = [(i + 0.5) * seconds / 16 for i in range(16)]
    got = {i: read_number(frame.to_ndarray(format="rgb24")) for i, frame in media.frames_at(data, times)}
    assert sorted(got) == list(range(16))
    for index, number in got.items():
        assert abs(number - times[index] * fps) <= 0.5 + 1e-6, (index, number)


def test_frames_at_returns_the_nearest_frame_when_b_frames_are_skipped():
    """Far from a target the decoder skips the frames nothing refers to (most B-frames); the target
    itself must never be one of them."""
    fps, seconds = 30, 20
    data = encode_video(numbered(fps * seconds), fps=fps, gop=250, preset="medium")
    with av.open(io.BytesIO(data)) as container:
        kinds = {frame.pict_type for frame in container.decode(video=0)}
    assert av.video.frame.PictureType.B in kinds  # the case under test
    times = [(i + 0.5) * seconds / 16 for i in range(16)]
    got = {i: read_number(frame.to_ndarray(format="rgb24")) for i, frame in media.frames_at(data, times)}
    assert [abs(got[i] - times[i] * fps) <= 0.5 + 1e-6 for i in range(16)] == [True] * 16, got


def test_frames_at_without_timestamps_or_seeking():
    raw = encode_video(numbered(30), fps=10, fmt="h264")
    got = [read_number(f.to_ndarray(format="rgb24")) for _, f in media.frames_at(raw, [0.5, 1.5, 2.5])]
    assert got == [5, 15, 25]


def test_frames_at_stops_where_a_file_breaks_off():
    raw = encode_video(numbered(100), fps=10, fmt="h264")
    cut = raw[: len(raw) // 2]
    got = [read_number(f.to_ndarray(format="rgb24")) for _, f in media.frames_at(cut, [1.0, 3.0, 6.0, 9.0])]
    assert got[:2] == [10, 30] and len(got) < 4


def test_rotation_is_reported_per_frame():
    data = encode_video(numbered(5), rotation=90)
    (_, frame), = media.frames_at(data, [0.0])
    assert frame.rotation == 90


def test_a_seek_happens_only_when_it_skips_frames():
    keyframes = [0.0, 8.3, 16.7]
    assert media._seek_skips(keyframes, target=0.5, shown=float("-inf"))  # nothing decoded yet
    assert not media._seek_skips(keyframes, target=6.0, shown=3.0)  # would land back on 0.0
    assert media._seek_skips(keyframes, target=9.0, shown=3.0)  # lands on 8.3, ahead of 3.0
    assert media._seek_skips(None, target=6.0, shown=3.0)  # no index: seek as before


def test_keyframe_times_come_from_the_packets(tmp_path):
    clip = samples.make_video(tmp_path / "k.mp4", seconds=3, fps=12)
    times = media._keyframe_times(clip.read_bytes())
    assert times and times[0] == 0.0 and times == sorted(times)
    assert media._keyframe_times(b"not a video") is None
