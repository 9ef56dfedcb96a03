"""Protobuf messages <-> the store's plain records, and the checks on what callers send.

The payload mirrors the VideoRecord message minus `id` and `embeddings`: the proto's field names,
nested the same way, only fields that are set (so `metadata.likes` is absent when unknown). Values
keep their native types (an int64 stays an int, where proto JSON would make it a string), so range
filters work on them and a record round-trips exactly.

Beside those fields, WIRE holds the same record (with its id) serialized, in base64: what a query
hit, Get and Scroll send back. Reading one string and parsing it costs about half of turning the
nested payload into Python and then into a message again (docs/search.md, Hits from the wire
record). Videos stored before WIRE existed are read from their fields, as before.

The record's frame descriptors (`frames`) are in neither: the store keeps them as frame points of
their own (stores/base.py), and a record gets them back only where it is asked with its vectors.
"""

import base64

import numpy as np

from reelvec import copies, errors, modalities
from reelvec.v1 import common_pb2
from services.search.stores import base

DEFAULT_PAGE, MAX_PAGE = 100, 1000
WIRE = "wire_record"  # payload key of the serialized record (see above)


def _to_payload(message) -> dict:
    out = {}
    for field, value in message.ListFields():
        if field.message_type is None:
            out[field.name] = list(value) if field.is_repeated else value
        elif field.message_type.GetOptions().map_entry:
            out[field.name] = dict(value)  # scalar-valued maps only (model_versions)
        elif field.is_repeated:
            out[field.name] = [_to_payload(item) for item in value]
        else:
            out[field.name] = _to_payload(value)
    return out


def _from_payload(payload: dict, message) -> None:
    fields = message.DESCRIPTOR.fields_by_name
    for name, value in payload.items():
        field = fields.get(name)
        if field is None:
            continue  # written by a newer version: not ours to show
        if field.message_type is None:
            if field.is_repeated:
                getattr(message, name).extend(value)
            else:
                setattr(message, name, value)
        elif field.message_type.GetOptions().map_entry:
            getattr(message, name).update(value)
        elif field.is_repeated:
            for item in value:
                _from_payload(item, getattr(message, name).add())
        else:
            _from_payload(value, getattr(message, name))


def to_stored(record: common_pb2.VideoRecord) -> base.StoredVideo:
    """A record without frames leaves the stored ones as they are; views, a query's crops, are never
    stored."""
    frames = check_frames(record.frames).whole() if record.HasField("frames") else None
    described = common_pb2.VideoRecord()
    described.CopyFrom(record)
    described.ClearField("embeddings")
    described.ClearField("frames")
    wire = base64.b64encode(described.SerializeToString()).decode("ascii")
    described.ClearField("id")
    vectors = {name: list(v.values) for name, v in record.embeddings.vectors.items()}
    payload = {**_to_payload(described), WIRE: wire}
    return base.StoredVideo(id=record.id, vectors=vectors, payload=payload, frames=frames)


def _fill_record(record: common_pb2.VideoRecord, video: base.StoredVideo) -> None:
    """`record` (empty) takes `video`'s id and payload."""
    wire = video.payload.get(WIRE)
    if wire is not None:
        record.MergeFromString(base64.b64decode(wire))
        record.id = video.id
        return
    try:  # the constructor takes the nested dicts in C: 2.5x faster than field by field
        record.MergeFrom(common_pb2.VideoRecord(id=video.id, **video.payload))
    except ValueError:  # a field written by a newer version
        record.id = video.id
        _from_payload(video.payload, record)


def to_record(video: base.StoredVideo, into: common_pb2.VideoRecord | None = None) -> common_pb2.VideoRecord:
    """`video` as a message: a new one, or written into `into` (empty), a field of a response."""
    record = common_pb2.VideoRecord() if into is None else into
    _fill_record(record, video)
    for name, values in video.vectors.items():
        record.embeddings.vectors[name].values.extend(values)
    if video.frames is not None:
        record.frames.CopyFrom(video.frames.to_proto())
    return record


def add_hits(into, hits: list[base.Hit]) -> None:
    """Appends `hits` to a repeated Hit field, each built in place: a Hit made first and then put
    into a response is copied again at each level (21 queries of 10 hits: 78 -> 35 µs a query)."""
    for hit in hits:
        added = into.add(id=hit.id, score=hit.score)
        if hit.video is not None:
            _fill_record(added.video, hit.video)


def add_copies(into, found: list[tuple[copies.Match, base.StoredVideo]], with_payload: bool) -> None:
    """Appends each (match, its record) to a repeated Copy field; the record (payload only) when asked."""
    for match, video in found:
        added = into.add()
        added.MergeFrom(match.to_proto())
        if with_payload:
            _fill_record(added.video, video)


def _range(bounds: common_pb2.Range) -> base.Range | None:
    gte = bounds.gte if bounds.HasField("gte") else None
    lte = bounds.lte if bounds.HasField("lte") else None
    return None if gte is None and lte is None else base.Range(gte=gte, lte=lte)


def to_filter(f: common_pb2.Filter) -> base.Filter:
    return base.Filter(
        author_ids=list(f.author_ids),
        hashtags=list(f.hashtags),
        likes=_range(f.likes),
        created_at=_range(f.created_at),
        exclude_ids=list(f.exclude_ids),
        content_sha256=f.content_sha256,
        only_incomplete=f.only_incomplete,
    )


def check_id(video_id: str) -> str:
    if not video_id.strip():
        raise errors.InvalidInput("id must not be empty")
    return video_id


def check_vector(name: str, values, dims: dict[str, int] = modalities.DIMS) -> list[float]:
    """`dims`: the collection's vector sizes."""
    expected = dims.get(name)
    if expected is None:
        raise errors.InvalidInput(
            f"unknown vector {name!r}: expected one of {', '.join(dims)}"
        )
    if len(values) != expected:
        raise errors.InvalidInput(f"{name} vector has {len(values)} values, expected {expected}")
    values = list(values)  # numpy reads a list of floats in a third less time than a repeated field
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all():
        raise errors.InvalidInput(f"{name} vector has NaN or infinite values")
    if not array.any():
        # cosine is undefined for it, and the contract says a missing modality is left out
        raise errors.InvalidInput(f"{name} vector is all zeros: leave a missing modality out")
    return values


def check_frames(frames: common_pb2.Frames) -> copies.Track:
    """Frame descriptors come from the visual model's `descriptor` output: rows of FRAME_DIM."""
    track = copies.Track.from_proto(frames)
    if track.dim != modalities.FRAME_DIM:
        raise errors.InvalidInput(f"frames have {track.dim} values a row, expected {modalities.FRAME_DIM} "
                                  "(the visual model's whitened descriptors)")
    if not track.vectors.any(axis=1).all() or (track.views is not None and not track.views.any(axis=2).all()):
        raise errors.InvalidInput("frames hold a row of zeros: cosine is undefined for it")
    return track


def check_embeddings(embeddings: common_pb2.Embeddings, dims: dict[str, int] = modalities.DIMS) -> dict[str, list[float]]:
    return {name: check_vector(name, v.values, dims) for name, v in embeddings.vectors.items()}


def clamp(value: int, default: int, maximum: int) -> int:
    """An unset (0) or negative count takes the default; larger ones are capped."""
    return default if value <= 0 else min(value, maximum)
