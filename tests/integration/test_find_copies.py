"""Copy detection end to end on the real stack: real clips indexed through the gateway, edited copies
made with the evaluation's media tools, and the seconds FindCopies (and Predict) locate on both
sides of each copy, checked against where the edit put them."""

from pathlib import Path

import grpc
import pytest
from checkout import ROOT

from reelvec import media, samples
from reelvec.tools import real_media
from reelvec.tools.evaluation import transforms
from reelvec.tools.evaluation.metrics import iou
from reelvec.v1 import common_pb2, gateway_pb2

pytestmark = pytest.mark.integration

TIMEOUT = 300  # seconds a call may take: each one encodes a clip on a busy 2-core machine
# The indexed originals, under ids no other test uses. world.mp4 and b.mp4 are cuts of one
# recording, so b stays out; a.mp4 is the footage nothing is copied from.
ORIGINALS = {"copies_world": "world.mp4", "copies_city": "city.mpg"}
UNRELATED = "a.mp4"
# Partial copies: (indexed id, start s, end s) of the excerpt spliced between stretches of a.mp4
EXCERPTS = [("copies_world", 10.0, 18.0), ("copies_city", 0.5, 7.0)]


def seconds(interval: tuple[float, float]) -> str:
    return f"{interval[0]:.2f}-{interval[1]:.2f} s"


def query(segment: common_pb2.CopiedSegment) -> tuple[float, float]:
    return segment.query_start, segment.query_end


def reference(segment: common_pb2.CopiedSegment) -> tuple[float, float]:
    return segment.ref_start, segment.ref_end


@pytest.fixture(scope="module")
def real() -> dict[str, Path]:
    return real_media.clips(ROOT / ".media")


@pytest.fixture(scope="module")
def originals(stack, real) -> dict[str, float]:
    """The originals indexed on the shared stack (their durations by id), deleted afterwards so that
    the other tests find the store as they left it."""
    stub = stack.stub()
    durations = {}
    for video_id, name in ORIGINALS.items():
        metadata = common_pb2.VideoMetadata(id=video_id)
        request = gateway_pb2.IndexRequest(video=real[name].read_bytes(), metadata=metadata)
        durations[video_id] = stub.Index(request, timeout=TIMEOUT).duration
    yield durations
    for video_id in ORIGINALS:
        stub.Delete(gateway_pb2.DeleteVideoRequest(id=video_id), timeout=30)


def find(stack, path: Path) -> list[common_pb2.Copy]:
    request = gateway_pb2.CopiesRequest(video=path.read_bytes())
    return list(stack.stub().FindCopies(request, timeout=TIMEOUT).copies)


def test_a_cropped_re_encoded_copy_finds_its_source_with_most_of_both_covered(stack, originals, real, tmp_path):
    cropped = transforms.make_copy(real["city.mpg"], tmp_path / "cropped.mp4", "crop")  # 70% of each side
    copy = samples.transcode(cropped, tmp_path / "copy.mp4", scale=0.75, bitrate=250_000)
    copy_seconds = media.probe(copy.read_bytes()).duration
    (found,) = find(stack, copy)
    best = found.segments[0]
    print(f"crop: score {found.score:.3f}, query {seconds(query(best))} of {copy_seconds:.2f} s, "
          f"reference {seconds(reference(best))} of {originals['copies_city']:.2f} s")
    assert found.id == "copies_city" and found.video.id == "copies_city"  # with its payload
    assert iou(query(best), (0.0, copy_seconds)) >= 0.8
    assert iou(reference(best), (0.0, originals["copies_city"])) >= 0.8


@pytest.mark.parametrize("source,start,end", EXCERPTS)
def test_an_excerpt_spliced_into_other_footage_is_located_on_both_sides(stack, originals, real, tmp_path,
                                                                         source, start, end):
    filler, excerpt = real[UNRELATED], real[ORIGINALS[source]]
    # another size than either clip: 640x360, where world is 480x270 and a.mp4 1920x1080
    placed = transforms.splice([(filler, 0.0, 4.0), (excerpt, start, end), (filler, 4.0, 7.0)],
                               tmp_path / "partial.mp4", size=(640, 360))
    copies = find(stack, tmp_path / "partial.mp4")
    assert [c.id for c in copies] == [source]
    best = copies[0].segments[0]
    overlaps = iou(query(best), placed[1]), iou(reference(best), (start, end))
    print(f"partial {source}: score {copies[0].score:.3f}, query {seconds(query(best))} for {seconds(placed[1])}, "
          f"reference {seconds(reference(best))} for {seconds((start, end))}: IoU {overlaps[0]:.2f}, {overlaps[1]:.2f}")
    assert min(overlaps) >= 0.5


def test_an_unrelated_clip_finds_no_copy(stack, originals, real, tmp_path):
    assert find(stack, real[UNRELATED]) == []


def test_a_streamed_upload_finds_the_same_copy(stack, originals, real, tmp_path):
    data = transforms.make_copy(real["world.mp4"], tmp_path / "scaled.mp4", "scale").read_bytes()
    chunks = (gateway_pb2.VideoChunk(data=data[at : at + 64 * 1024]) for at in range(0, len(data), 64 * 1024))
    streamed = stack.stub().FindCopiesStream(chunks, timeout=TIMEOUT).copies
    assert [c.id for c in streamed] == ["copies_world"]
    assert iou(reference(streamed[0].segments[0]), (0.0, originals["copies_world"])) >= 0.8


def test_predict_returns_the_copied_segments(stack, trained, originals, real, tmp_path):
    placed = transforms.splice([(real[UNRELATED], 0.0, 4.0), (real["world.mp4"], 10.0, 18.0)],
                               tmp_path / "partial.mp4", size=(640, 360))
    request = gateway_pb2.PredictRequest(video=(tmp_path / "partial.mp4").read_bytes())
    predicted = stack.stub().Predict(request, timeout=TIMEOUT)
    assert [c.id for c in predicted.copies] == ["copies_world"]
    assert iou(query(predicted.copies[0].segments[0]), placed[1]) >= 0.5


def _frames_zeroed(data: bytes) -> bytes:
    """An mp4 whose header is intact and whose coded frames are zeros: it opens, nothing decodes."""
    start, header = data.index(b"mdat") + 4, data.index(b"moov") - 4
    assert start < header, "the clip must keep its header after the frames"
    return data[:start] + bytes(header - start) + data[header:]


def test_a_query_with_no_decodable_frame_is_invalid_argument(stack, tmp_path, grpc_error):
    clip = samples.make_video(tmp_path / "clip.mp4", seconds=3, seed=4321, audio=False).read_bytes()
    refused = grpc_error(stack.stub().FindCopies, gateway_pb2.CopiesRequest(video=_frames_zeroed(clip)),
                         timeout=TIMEOUT)
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no decodable video frame" in refused.details()
