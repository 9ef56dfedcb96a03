"""Frame sampling: N frames uniform in time, black or flat frames left out, 224x224 RGB crops.

Sample i is the frame nearest to (i + 0.5) * duration / N: the middle of N equal slots,
so neither the first frame (often black or a title card) nor the last is favoured. Only those frames
are decoded (see reelvec.media.frames_at: keyframe seeks for far targets, straight decoding for close
ones). A frame whose luma is dark (mean below DARK_LUMA) or nearly constant (std below FLAT_LUMA:
fades, colour cards) says nothing about the content and is skipped; when every sample is like that,
the most varied one is kept so that the clip still gets a vector, and the result says so.
"""

import dataclasses
import logging

import numpy as np

from reelvec import errors, media

log = logging.getLogger(__name__)

SIZE = 224
DARK_LUMA = 20.0  # of 255; video black is 16
FLAT_LUMA = 6.0
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclasses.dataclass
class Sampled:
    frames: np.ndarray  # uint8 [n, SIZE, SIZE, 3] RGB, n >= 1
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


def _luma_stats(rgb: np.ndarray) -> tuple[float, float]:
    luma = rgb.reshape(-1, 3).astype(np.float32) @ _LUMA
    return float(luma.mean()), float(luma.std())


def sample(data: bytes, count: int = 16, max_duration: float = media.DEFAULT_MAX_DURATION) -> Sampled:
    """Validates `data` as a video (InvalidInput otherwise) and samples `count` frames from it."""
    info = media.probe(data, max_duration)
    times = [(i + 0.5) * info.duration / count for i in range(count)]
    kept, blank = [], []
    previous, previous_crop = None, None
    for _, frame in media.frames_at(data, times):
        rgb = previous_crop if frame is previous else crop(frame)
        previous, previous_crop = frame, rgb
        mean, std = _luma_stats(rgb)
        (blank if mean < DARK_LUMA or std < FLAT_LUMA else kept).append((std, rgb))
    if not kept and not blank:
        raise errors.InvalidInput("no decodable video frame: the file is truncated or corrupt")
    all_blank = not kept
    if all_blank:
        kept = [blank.pop(max(range(len(blank)), key=lambda i: blank[i][0]))]
        log.info("every sampled frame is dark or flat", extra={"samples": len(blank) + 1})
    return Sampled(
        frames=np.stack([rgb for _, rgb in kept]),
        skipped=len(blank),
        all_blank=all_blank,
        info=info,
    )
