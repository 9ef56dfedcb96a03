"""JSONL manifests of videos (`reelvec index --manifest`, `reelvec evaluate --manifest`): one JSON
object per line. Every field is checked here, so that a bad line is named as FILE:LINE: field 'x':
why, and the other lines still go through."""

import json
import math
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from reelvec.v1 import common_pb2

COUNTS = ("followers", "following", "likes", "videos")
INT64_MAX = 2**63 - 1
# Unix seconds past the year 3000 are almost surely milliseconds: refusing them beats storing a
# date nobody meant.
LATEST_SECONDS = 32_503_680_000


class Line(NamedTuple):
    number: int
    path: Path
    metadata: common_pb2.VideoMetadata
    label: str  # `reelvec evaluate`'s category; "" when absent


class FieldError(ValueError):
    def __init__(self, field: str, why: str):
        super().__init__(f"field {field!r}: {why}")


def _count(field: str, value) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(field, f"expected a whole number, got {value!r}")
    if value < 0:
        raise FieldError(field, f"must not be negative, got {value}")
    if value > INT64_MAX:
        raise FieldError(field, f"{value} does not fit in 64 bits")
    return value


def _text(field: str, value, numbers: bool = False) -> str:
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise FieldError(field, f"expected a string, got {value!r}")
    return value


def created_at(value) -> int:
    """Unix seconds from a number, a numeric string, or an RFC 3339 / ISO 8601 time. A time
    without an offset is read as UTC: a manifest is data moved between machines, and the local
    zone of whichever one happens to read it says nothing about when the video was made."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise FieldError("created_at", f"{value!r} is neither unix seconds nor an ISO 8601 time "
                                               "such as 2026-08-17T12:00:00Z") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            value = moment.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FieldError("created_at", f"expected unix seconds or an ISO 8601 string, got {value!r}")
    if value < 0:
        raise FieldError("created_at", f"{value} is before 1970")
    if value > LATEST_SECONDS:
        raise FieldError("created_at", f"{value} is past the year 3000: milliseconds? give seconds")
    return int(value)


def _path(value, folder: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise FieldError("path", f"expected the video file's path as a string, got {value!r}")
    video = Path(value) if Path(value).is_absolute() else folder / value
    if not video.is_file():
        raise FieldError("path", f"no such file: {video}")
    return video


def parse(entry, folder: Path) -> tuple[Path, common_pb2.VideoMetadata, str]:
    """One decoded line: (video path, metadata, label); FieldError names the first bad field."""
    if not isinstance(entry, dict):
        raise ValueError(f"not a manifest entry: expected a JSON object, got {type(entry).__name__}")
    if "path" not in entry:
        raise FieldError("path", "missing: every line needs the video file's path")
    given = {k: v for k, v in entry.items() if v is not None}
    metadata = common_pb2.VideoMetadata(
        id=_text("id", given.get("id", ""), numbers=True),
        caption=_text("caption", given.get("caption", "")),
        created_at=created_at(given["created_at"]) if "created_at" in given else 0,
    )
    hashtags = given.get("hashtags", [])
    if not isinstance(hashtags, list):
        raise FieldError("hashtags", f"expected a list of strings, got {hashtags!r}")
    metadata.hashtags.extend(_text("hashtags", t).lstrip("#") for t in hashtags)
    for name in ("likes", "views"):
        if name in given:
            setattr(metadata, name, _count(name, given[name]))
    author = given.get("author", {})
    if not isinstance(author, dict):
        raise FieldError("author", f"expected an object, got {author!r}")
    author = {k: v for k, v in author.items() if v is not None}
    metadata.author.id = _text("author.id", author.get("id", ""), numbers=True)
    for name in COUNTS:
        if name in author:
            setattr(metadata.author, name, _count(f"author.{name}", author[name]))
    label = _text("label", given.get("label", ""), numbers=True)
    return _path(entry["path"], folder), metadata, label


def read(manifest: Path, on_error: Callable[[str], None] | None = None) -> list[Line]:
    """The good lines of a manifest; relative paths are relative to its folder. Each bad line goes
    to `on_error` as "FILE:LINE: why" and is left out; without `on_error` the first one raises
    ValueError with that message."""
    lines = []
    for number, text in enumerate(manifest.read_text().splitlines(), 1):
        if not text.strip():
            continue
        try:
            try:
                entry = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"not a manifest entry: not JSON ({exc})") from None
            lines.append(Line(number, *parse(entry, manifest.parent)))
        except ValueError as exc:
            message = f"{manifest}:{number}: {exc}"
            if on_error is None:
                raise ValueError(message) from None
            on_error(message)
    return lines
