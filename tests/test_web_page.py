"""The web page's server side without a stack: the JSON it makes of a prediction with copies and views, and the
byte ranges its kept files are served with (what lets a player start at a copied second)."""

import pytest

from reelvec.v1 import common_pb2, gateway_pb2
from services.web.app import prediction, ranged


def test_a_prediction_carries_each_copy_with_its_segments_thumbnail_and_file():
    source = common_pb2.VideoRecord(id="food_3", metadata=common_pb2.VideoMetadata(caption="pasta in ten minutes"))
    response = gateway_pb2.PredictResponse(likes=1200, near_duplicate_of="food_3", copies=[
        common_pb2.Copy(id="food_3", score=0.97, video=source, segments=[
            common_pb2.CopiedSegment(query_start=4.0, query_end=10.2, ref_start=26.0, ref_end=32.04, score=0.95)]),
        common_pb2.Copy(id="bikes_1", score=0.72, segments=[
            common_pb2.CopiedSegment(query_start=0.0, query_end=3.0, ref_start=119.6, ref_end=122.7, score=0.72)]),
    ])
    assert prediction(response)["copies"] == [
        {"id": "food_3", "score": 0.97, "caption": "pasta in ten minutes",
         "thumbnail": "/api/videos/food_3/thumbnail", "file": "/api/videos/food_3/file",
         "segments": [{"query_start": 4.0, "query_end": 10.2, "ref_start": 26.0, "ref_end": 32.04, "score": 0.95}]},
        {"id": "bikes_1", "score": 0.72, "caption": "",
         "thumbnail": "/api/videos/bikes_1/thumbnail", "file": "/api/videos/bikes_1/file",
         "segments": [{"query_start": 0.0, "query_end": 3.0, "ref_start": 119.6, "ref_end": 122.7, "score": 0.72}]},
    ]


def test_a_prediction_without_copies_says_so():
    shown = prediction(gateway_pb2.PredictResponse(likes=3))
    assert shown["copies"] == [] and shown["likes"] == 3 and shown["near_duplicate_of"] is None
    assert shown["views"] is None  # no views model: the page leaves the views block hidden


def test_a_prediction_with_views_carries_them_with_their_interval():
    shown = prediction(gateway_pb2.PredictResponse(likes=3, views=common_pb2.Estimate(value=90, low=20, high=400)))
    assert shown["views"] == {"value": 90, "low": 20, "high": 400} and shown["likes"] == 3


DATA = bytes(range(100))


@pytest.mark.parametrize("header, status, body, content_range", [
    (None, 200, DATA, None),
    ("bytes=0-", 206, DATA, "bytes 0-99/100"),
    ("bytes=10-19", 206, DATA[10:20], "bytes 10-19/100"),
    ("bytes=90-500", 206, DATA[90:], "bytes 90-99/100"),
    ("bytes=-5", 206, DATA[95:], "bytes 95-99/100"),
    ("bytes=100-", 416, b"", "bytes */100"),
    ("bytes=20-10", 200, DATA, None),  # not well formed: the whole file, as HTTP allows
    ("bytes=0-1,5-6", 200, DATA, None),  # several ranges: the whole file too
])
def test_kept_files_are_served_with_byte_ranges(header, status, body, content_range):
    response = ranged(DATA, header, "video/mp4")
    assert response.status_code == status and response.body == body
    assert response.headers.get("content-range") == content_range
    if status != 416:
        assert response.headers["accept-ranges"] == "bytes"
