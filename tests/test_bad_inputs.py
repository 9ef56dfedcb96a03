"""The bad-input corpus (issue 6) through the encoder's decode path (frames.sample, the code the
Encode RPC runs, and media.decode_audio), with the outcome each must have, plus property-based
fuzzing of decoding and of request validation: whatever the bytes or fields, the answer is a
result or a ReelvecError (a clear gRPC status), never another exception, and no temporary files
are left behind. The gateway-level cases (oversize, unknown ids, empty queries, negative author
statistics) are in tests/integration."""

import glob
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_media import encode_audio_only, encode_video

from reelvec import client, errors, media
from reelvec.v1 import common_pb2
from services.encoder import frames
from services.gateway.server import _check_metadata
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


def test_malformed_manifest_lines_name_the_line(tmp_path):
    manifest = tmp_path / "videos.jsonl"
    for bad in ('{"path": "a.mp4"}\n{not json}\n', '{"path": "a.mp4"}\n["a list"]\n', '{"id": "no path"}\n'):
        manifest.write_text(bad)
        with pytest.raises(ValueError, match=r"videos.jsonl:\d+: not a manifest entry"):
            client.read_manifest(manifest)


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


@settings(max_examples=200, deadline=None)
@given(
    video_id=st.text(max_size=200),
    likes=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    followers=st.integers(-(2**63), 2**63 - 1),
    caption=st.text(max_size=500),
)
def test_request_validation_refuses_with_invalid_argument_or_accepts(video_id, likes, followers, caption):
    metadata = common_pb2.VideoMetadata(id=video_id, caption=caption,
                                        author=common_pb2.AuthorStats(followers=followers))
    if likes is not None:
        metadata.likes = likes
    try:
        _check_metadata(metadata)
        accepted = True
    except errors.InvalidInput as exc:
        accepted = False
        assert str(exc)  # says what to fix
    should = (not video_id or (len(video_id) <= 128 and all(c.isalnum() or c in "_.-:@" for c in video_id))) \
        and (likes is None or likes >= 0) and followers >= 0
    assert accepted == should


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=400))
def test_vector_validation_never_lets_a_bad_vector_through(values):
    try:
        checked = records.check_vector("audio", values)
    except errors.InvalidInput:
        return
    array = np.asarray(checked)
    assert len(checked) == 195 and np.isfinite(array).all() and array.any()
