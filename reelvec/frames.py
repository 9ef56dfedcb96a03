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

With `views`, each kept frame also yields VIEWS crops for a copy query (reelvec/copies.py): the four
corners and the centre at VIEW_SHARE of each side, each then cropped like a frame. A stored video
shown small inside another (picture-in-picture, a duet, a reaction) fills one of them, where the
whole frame's centre square holds only part of it beside the other footage.
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
# torchvision's FiveCrop layout, at two thirds of each side: any inset of up to two thirds in a
# corner lies inside one window; the window's centre square, at SIZE, is the crop a frame gets
VIEW_SHARE = 2 / 3
VIEWS = 5


@dataclasses.dataclass
class Sampled:
    frames: np.ndarray  # uint8 [n, SIZE, SIZE, 3] RGB, n >= 1
    times: np.ndarray  # float64 [n]: the seconds each kept frame was sampled at, ascending
    skipped: int  # dark or flat samples left out
    all_blank: bool  # every sample was dark or flat; `frames` holds the most varied one
    info: media.MediaInfo
    views: np.ndarray | None = None  # uint8 [n, VIEWS, SIZE, SIZE, 3]: each frame's crops, when asked


def crop(frame) -> np.ndarray:
    """Shorter side to SIZE (area averaging, so no aliasing), centre square, upright."""
    scale = SIZE / min(frame.width, frame.height)
    return _centre_square(_upright(frame, max(SIZE, round(frame.width * scale)), max(SIZE, round(frame.height * scale))))


def _upright(frame, width: int, height: int) -> np.ndarray:
    rgb = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
    # phone videos store the sensor image plus a display rotation (counterclockwise degrees)
    turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns) if turns else rgb)


def _centre_square(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    top, left = (height - SIZE) // 2, (width - SIZE) // 2
    return np.ascontiguousarray(rgb[top : top + SIZE, left : left + SIZE])


def views(frame) -> np.ndarray:
    """[VIEWS, SIZE, SIZE, 3]: the windows' centre squares, upper left, upper right, lower left,
    lower right, centre. The frame is scaled once so that a window's shorter side is SIZE."""
    scale = SIZE / (VIEW_SHARE * min(frame.width, frame.height))
    rgb = _upright(frame, max(SIZE, round(frame.width * scale)), max(SIZE, round(frame.height * scale)))
    height, width = rgb.shape[:2]
    h, w = max(SIZE, round(height * VIEW_SHARE)), max(SIZE, round(width * VIEW_SHARE))
    corners = [(0, 0), (0, width - w), (height - h, 0), (height - h, width - w), ((height - h) // 2, (width - w) // 2)]
    return np.stack([_centre_square(rgb[top : top + h, left : left + w]) for top, left in corners])


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
           per_second: float = 1.0, max_count: int = 120, with_views: bool = False) -> Sampled:
    """Validates `data` as a video (InvalidInput otherwise) and samples count_for(...) frames from
    it; `with_views`: each kept frame's `views` too."""
    info = media.probe(data, max_duration)
    n = count_for(info.duration, count, per_second, max_count)
    times = [(i + 0.5) * info.duration / n for i in range(n)]
    kept, blank = [], []
    previous, previous_crops = None, None
    for index, frame in media.frames_at(data, times):
        if frame is not previous:
            previous_crops = (crop(frame), views(frame) if with_views else None)
        previous = frame
        mean, std = _luma_stats(previous_crops[0])
        (blank if _blank(mean, std) else kept).append((std, times[index], previous_crops))
    if not kept and not blank:
        raise errors.InvalidInput("no decodable video frame: the file is truncated or corrupt")
    all_blank = not kept
    if all_blank:
        kept = [blank.pop(max(range(len(blank)), key=lambda i: blank[i][0]))]
        log.info("every sampled frame is dark or flat", extra={"samples": len(blank) + 1})
    return Sampled(
        frames=np.stack([rgb for _, _, (rgb, _) in kept]),
        times=np.array([t for _, t, _ in kept], np.float64),
        skipped=len(blank),
        all_blank=all_blank,
        info=info,
        views=np.stack([v for _, _, (_, v) in kept]) if with_views else None,
    )
