"""Frame sampling: N frames uniform in time, black or flat frames left out, 224x224 RGB crops.

N is about one a second (`per_second`), never fewer than `count` nor more than `max_count`: the
clip vector needs a handful of frames whatever the length, copy detection (reelvec/copies.py) a
steady rate so that a copied stretch of a few seconds has frames of its own on both sides.
Sample i is the frame nearest to (i + 0.5) * duration / N: the middle of N equal slots,
so neither the first frame (often black or a title card) nor the last is favoured. Only those frames
are decoded (see reelvec.media.frames_at: keyframe seeks for far targets, straight decoding for close
ones). A frame whose luma is nearly constant (std below FLAT_LUMA, or below DARK_FLAT_LUMA when dark:
fades, colour cards) says nothing about the content and is skipped; when every sample is like that,
the most varied one is kept so that the clip still gets a vector, and the result says so.
"""

import dataclasses
import logging
import math

import numpy as np

from reelvec import errors, media

log = logging.getLogger(__name__)

SIZE = 224
DARK_LUMA = 20.0  # of 255; video black is 16
FLAT_LUMA = 6.0
DARK_FLAT_LUMA = 12.0  # a dark frame needs this much variation to count as content
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclasses.dataclass
class Sampled:
    frames: np.ndarray  # uint8 [n, SIZE, SIZE, 3] RGB, n >= 1
    times: np.ndarray  # float64 [n]: the seconds each kept frame was sampled at, ascending
    skipped: int  # dark or flat samples left out
    all_blank: bool  # every sample was dark or flat; `frames` holds the most varied one
    info: media.MediaInfo


def crop(frame) -> np.ndarray:
    """Shorter side to SIZE (area averaging, so no aliasing), centre square, upright."""
    width, height = frame.width, frame.height
    scale = SIZE / min(width, height)
    new_w, new_h = max(SIZE, round(width * scale)), max(SIZE, round(height * scale))
    rgb = frame.reformat(width=new_w, height=new_h, format="rgb24", interpolation="AREA").to_ndarray()
    top, left = (new_h - SIZE) // 2, (new_w - SIZE) // 2
    square = rgb[top : top + SIZE, left : left + SIZE]
    # phone videos store the sensor image plus a display rotation (counterclockwise degrees)
    turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(square, turns) if turns else square)


def _blank(mean: float, std: float) -> bool:
    """Video black, a fade or a colour card. A dark frame with something in it (a night scene, a
    globe on black) varies: it stays, or the footage of a dark video would be all skipped."""
    return std < FLAT_LUMA or (mean < DARK_LUMA and std < DARK_FLAT_LUMA)


def _luma_stats(rgb: np.ndarray) -> tuple[float, float]:
    luma = rgb.reshape(-1, 3).astype(np.float32) @ _LUMA
    return float(luma.mean()), float(luma.std())


def count_for(duration: float, count: int = 16, per_second: float = 1.0, max_count: int = 120) -> int:
    """Frames to sample: `per_second` of the duration, at most `max_count`, at least `count` (which
    wins over `max_count`); per_second=0 takes exactly `count`. A clip without a duration has one
    instant: every sample would be its first frame, at the same time."""
    if duration <= 0:
        return 1
    return max(count, min(math.ceil(duration * per_second), max_count))


def sample(data: bytes, count: int = 16, max_duration: float = media.DEFAULT_MAX_DURATION, *,
           per_second: float = 1.0, max_count: int = 120) -> Sampled:
    """Validates `data` as a video (InvalidInput otherwise) and samples count_for(...) frames from it."""
    info = media.probe(data, max_duration)
    n = count_for(info.duration, count, per_second, max_count)
    times = [(i + 0.5) * info.duration / n for i in range(n)]
    kept, blank = [], []
    previous, previous_crop = None, None
    for index, frame in media.frames_at(data, times):
        rgb = previous_crop if frame is previous else crop(frame)
        previous, previous_crop = frame, rgb
        mean, std = _luma_stats(rgb)
        (blank if _blank(mean, std) else kept).append((std, times[index], rgb))
    if not kept and not blank:
        raise errors.InvalidInput("no decodable video frame: the file is truncated or corrupt")
    all_blank = not kept
    if all_blank:
        kept = [blank.pop(max(range(len(blank)), key=lambda i: blank[i][0]))]
        log.info("every sampled frame is dark or flat", extra={"samples": len(blank) + 1})
    return Sampled(
        frames=np.stack([rgb for _, _, rgb in kept]),
        times=np.array([t for _, t, _ in kept], np.float64),
        skipped=len(blank),
        all_blank=all_blank,
        info=info,
    )
