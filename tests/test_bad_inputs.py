"""The bad-input corpus through the encoder's decode path (frames.sample, the code the
Encode RPC runs, and media.decode_audio), with the outcome each must have, plus property-based
fuzzing of decoding and of request validation: whatever the bytes or fields, the answer is a
result or a ReelvecError (a clear gRPC status), never another exception, and no temporary files
are left behind. The gateway-level cases (oversize, unknown ids, empty queries, negative author
statistics) are in tests/integration."""

import glob
import os
import tempfile

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_media import encode_audio_only, encode_video

from reelvec import errors, frames, media, modalities
from reelvec.v1 import common_pb2
from services.gateway.ingest import check_metadata
from services.search import records

RNG = np.random.default_rng(0)


def noise(count=30, size=(120, 160)) -> list[np.ndarray]:
    return [RNG.integers(0, 255, (*size, 3), dtype=np.uint8) for _ in range(count)]


@pytest.fixture(scope="module")
def clip() -> bytes:
    return encode_video(noise(), fps=10)


def with_metadata(fmt: str, metadata: dict) -> bytes:
    return encode_video(noise(10), fmt=fmt, metadata=metadata, codec="mpeg4" if fmt == "avi" else "libx264")


def outcome(data: bytes, **limits) -> str:
    """"ok <frames>" or the InvalidInput message; any other exception fails the test."""
    try:
        sampled = frames.sample(data, 16, **limits)
        media.decode_audio(data)
        return f"ok {len(sampled.frames)}"
    except errors.InvalidInput as exc:
        return str(exc)


def corrupted(data: bytes) -> bytes:
    broken = bytearray(data)
    middle = len(broken) // 2
    broken[middle : middle + 300] = RNG.integers(0, 255, 300, dtype=np.uint8).tobytes()
    return bytes(broken)


def unknown_codec(data: bytes) -> bytes:
    at = data.rfind(b"avc1")  # the last one is the stream's sample entry, not the file brand
    return data[:at] + b"zzzz" + data[at + 4 :]


def test_the_bad_input_corpus(clip):
    avi = with_metadata("avi", {"title": "cafe~ montage"})
    assert b"cafe~" in avi
    cases = {
        # name: (bytes, limits, what the answer must contain)
        "empty": (b"", {}, "empty input"),
        "truncated at 1%": (clip[: len(clip) // 100], {}, "truncated or corrupt"),
        "truncated at 30%": (clip[: len(clip) * 3 // 10], {}, "truncated or corrupt"),
        "truncated at 99%": (clip[: len(clip) * 99 // 100], {}, "truncated or corrupt"),
        "wrong container (zip)": (b"PK\x03\x04" + bytes(200), {}, "not a media file"),
        "an image header, no image": (b"\x89PNG\r\n\x1a\n" + bytes(100), {}, "no frame size"),
        "audio only": (encode_audio_only(), {}, "no video stream, got an audio-only file"),
        "unknown codec in the sample description": (unknown_codec(clip), {}, "video stream's codec is unknown"),
        "hours long": (clip, {"max_duration": 2.0}, "limit is 2 s"),
        "decompression bomb (8192x8192 still)": (encode_video([np.full((8192, 8192, 3), 90, np.uint8)] * 2), {},
                                                  "more pixels a frame than 8K UHD"),
        # decodable, so accepted: what decodes is what gets embedded
        "corrupt stream in a valid container": (corrupted(clip), {}, "ok 16"),
        "zero duration (one frame)": (encode_video(noise(1)), {}, "ok"),
        "absurd frame rate (1000 fps)": (encode_video(noise(), fps=1000), {}, "ok 16"),
        "8K UHD": (encode_video([np.full((4320, 7680, 3), 90, np.uint8)] * 2), {}, "ok"),
        "1 MB of metadata": (with_metadata("mp4", {"comment": "x" * 1_000_000}), {}, "ok 16"),
        "Latin-1 metadata in an AVI": (avi.replace(b"cafe~", b"caf\xe9~"), {}, "ok 16"),
    }
    got = {name: outcome(data, **limits) for name, (data, limits, _) in cases.items()}
    for name, (_, _, expected) in cases.items():
        assert expected in got[name], (name, got[name])


def _temporary_files() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "*")))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mutation_of_a_video_is_a_result_or_invalid_input(clip, data):
    before = _temporary_files()
    mutated = bytearray(clip)
    for _ in range(data.draw(st.integers(1, 8), label="edits")):
        at = data.draw(st.integers(0, len(mutated) - 1), label="at")
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "zero"]), label="kind")
        if kind == "flip":
            mutated[at] ^= data.draw(st.integers(1, 255))
        elif kind == "cut":
            del mutated[at : at + data.draw(st.integers(1, 5000))]
        elif kind == "insert":
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=64))
        else:
            mutated[at : at + 512] = bytes(min(512, len(mutated) - at))
        if not mutated:
            break
    result = outcome(bytes(mutated))  # anything but a result or InvalidInput fails here
    if result.startswith("ok "):
        assert int(result.split()[1]) > 0  # an accepted video always yields frames to embed
    else:
        assert len(result) > 10  # a message that says what is wrong
    assert _temporary_files() <= before  # decoding works in memory


VALID_ID = st.text(alphabet=st.sampled_from("abcXYZ019_.-:@é"), min_size=1, max_size=128)
# What an id may not contain: whitespace (a trailing newline too), separators, controls, quotes.
BAD_ID_CHARACTER = st.sampled_from(list("\n\r\t /\\#?%*\"'<>|,;") + ["\x00", "\x7f", "\u2028"])


def metadata_check(metadata) -> str | None:
    """None when accepted, else the InvalidInput message; any other exception fails the test."""
    try:
        check_metadata(metadata)
    except errors.InvalidInput as exc:
        return str(exc)
    return None


@settings(max_examples=300, deadline=None)
@given(valid=VALID_ID, bad=BAD_ID_CHARACTER, at=st.integers(0, 128))
def test_an_id_with_one_bad_character_anywhere_is_refused(valid, bad, at):
    valid = valid[:127]  # room for the bad character within the length limit
    at = min(at, len(valid))
    video_id = valid[:at] + bad + valid[at:]
    assert metadata_check(common_pb2.VideoMetadata(id=video_id)) is not None
    assert "1-128 letters" in metadata_check(common_pb2.VideoMetadata(id=valid + "\n"))


@settings(max_examples=200, deadline=None)
@given(video_id=VALID_ID, likes=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
       followers=st.integers(0, 2**63 - 1), caption=st.text(max_size=500))
def test_valid_metadata_is_accepted(video_id, likes, followers, caption):
    metadata = common_pb2.VideoMetadata(id=video_id, caption=caption,
                                        author=common_pb2.AuthorStats(followers=followers))
    if likes is not None:
        metadata.likes = likes
    assert metadata_check(metadata) is None


@settings(max_examples=100, deadline=None)
@given(count=st.integers(-(2**63), -1), field=st.sampled_from(["likes", "views", "followers", "following",
                                                                "author_likes", "videos"]))
def test_a_negative_count_is_refused_naming_the_field(count, field):
    metadata = common_pb2.VideoMetadata(id="clip0")
    if field in ("likes", "views"):
        setattr(metadata, field, count)
    else:
        setattr(metadata.author, field.removeprefix("author_"), count)
    assert field.removeprefix("author_") in metadata_check(metadata)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=400))
def test_vector_validation_never_lets_a_bad_vector_through(values):
    try:
        checked = records.check_vector("audio", values)
    except errors.InvalidInput:
        return
    array = np.asarray(checked)
    assert len(checked) == 195 and np.isfinite(array).all() and array.any()


AUDIO_DIM = modalities.DIMS["audio"]
FINITE = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(FINITE, min_size=AUDIO_DIM, max_size=AUDIO_DIM).filter(any),
       poison=st.sampled_from([float("nan"), float("inf"), float("-inf")]), at=st.integers(0, AUDIO_DIM - 1))
def test_a_right_length_vector_with_one_poisoned_value_is_refused(values, poison, at):
    assert records.check_vector("audio", values) == values  # the clean vector passes
    values[at] = poison
    with pytest.raises(errors.InvalidInput, match="NaN or infinite"):
        records.check_vector("audio", values)


@settings(max_examples=50, deadline=None)
@given(zero=st.sampled_from([0.0, -0.0]), length=st.sampled_from([AUDIO_DIM - 1, AUDIO_DIM, AUDIO_DIM + 1]))
def test_all_zero_and_wrong_length_vectors_are_refused(zero, length):
    expected = "all zeros" if length == AUDIO_DIM else f"has {length} values, expected {AUDIO_DIM}"
    with pytest.raises(errors.InvalidInput, match=expected):
        records.check_vector("audio", [zero] * length)


def test_names_with_a_trailing_newline_are_refused(tmp_path):
    from services.gateway.media_store import MediaStore
    from services.search.catalog import Catalog

    digest = "ab" * 32
    assert MediaStore(tmp_path).path(digest).name == digest
    with pytest.raises(ValueError, match="not a sha256"):
        MediaStore(tmp_path).path(digest + "\n")
    class EmptyStore:  # the name is checked before any store is opened
        def scroll(self, limit):
            return [], None

    catalog = Catalog(tmp_path, open_store=lambda name, dims: EmptyStore(), default="videos_v1")
    with pytest.raises(errors.InvalidInput, match="collection name"):
        catalog.create("videos_v2\n", {})


def test_one_video_size_check_says_invalid_argument_and_the_limit():
    from reelvec import limits

    limits.check_video(b"x" * 2**20, 1)  # the limit itself is allowed
    with pytest.raises(errors.InvalidInput, match=r"over the 1 MiB limit \(REELVEC_MAX_VIDEO_MB\): 1.0 MiB"):
        limits.check_video(b"x" * (2**20 + 1), 1)
    with pytest.raises(errors.InvalidInput, match="empty"):
        limits.check_video(b"", 1)
    with pytest.raises(errors.InvalidInput, match="over the 8 MiB limit"):
        limits.check_video_size(9 * 2**20, 8)  # a stream that is still coming
    assert errors.InvalidInput.code == grpc.StatusCode.INVALID_ARGUMENT


def test_k_is_checked_the_same_everywhere():
    from reelvec import limits

    assert limits.check_k(0) == limits.DEFAULT_K and limits.check_k(limits.MAX_K) == limits.MAX_K
    for bad in (-1, limits.MAX_K + 1):
        with pytest.raises(errors.InvalidInput, match=f"k must be between 1 and {limits.MAX_K}, got {bad}"):
            limits.check_k(bad)
