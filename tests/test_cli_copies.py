"""`reelvec copies` and the copied segments (and views) of `reelvec predict`, against an in-process fake gateway:
the JSON and the human lines they print, m:ss times, which RPC a file goes through, the argument
rules and how a gRPC status is reported."""

import json

import grpc
import pytest

from reelvec.tools import cli, client
from reelvec.v1 import common_pb2, gateway_pb2


class Status(grpc.RpcError):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def copy(video_id: str, score: float, *segments: tuple[float, float, float, float, float]) -> common_pb2.Copy:
    return common_pb2.Copy(id=video_id, score=score, segments=[
        common_pb2.CopiedSegment(query_start=a, query_end=b, ref_start=c, ref_end=d, score=s)
        for a, b, c, d, s in segments])


# a whole copy of food_3 with two stretches, and a partial one of bikes_1 (float32 scores, seconds
# off the one-a-second frame grid, as the alignment gives them)
COPIES = [copy("food_3", 0.97, (4.0, 10.2, 26.0, 32.04, 0.95), (12.5, 14.5, 61.4, 63.6, 0.81)),
          copy("bikes_1", 0.72, (0.0, 3.0, 119.6, 122.7, 0.72))]


class FakeGateway:
    def __init__(self, copies=(), missing: str | None = None, views: common_pb2.Estimate | None = None):
        self.copies, self.missing, self.views = list(copies), missing, views
        self.calls: list[tuple[str, object]] = []

    def FindCopies(self, request, timeout=None):
        self.calls.append(("FindCopies", request))
        if request.id == self.missing:
            raise Status(grpc.StatusCode.NOT_FOUND, f"no video {request.id}")
        return gateway_pb2.CopiesResponse(copies=self.copies)

    def FindCopiesStream(self, chunks, timeout=None):
        chunks = list(chunks)
        self.calls.append(("FindCopiesStream", b"".join(c.data for c in chunks)))
        k = chunks[0].k or len(self.copies)  # the gateway reads k from the first chunk
        return gateway_pb2.CopiesResponse(copies=self.copies[:k])

    def Predict(self, request, timeout=None):
        return gateway_pb2.PredictResponse(likes=1200, likes_low=300, likes_high=4000, originality=0.1,
                                           near_duplicate_of="food_3", copies=self.copies, views=self.views)


@pytest.fixture
def run(monkeypatch, capsys):
    """`reelvec ARGS...` against a gateway: (exit code, stdout, stderr)."""

    def run(gateway, *argv):
        monkeypatch.setattr(client, "connect", lambda address, api_key=None: gateway)
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"a small clip")
    return path


@pytest.mark.parametrize("seconds, shown", [(0.0, "0:00"), (4.0, "0:04"), (26.9, "0:26"), (59.99, "0:59"),
                                            (60.0, "1:00"), (605.5, "10:05")])
def test_times_are_whole_minutes_and_seconds_as_a_player_shows_them(seconds, shown):
    assert cli._clock(seconds) == shown


def test_json_names_each_copy_and_its_segments_in_seconds(run, clip):
    gateway = FakeGateway(COPIES)
    code, out, _ = run(gateway, "copies", str(clip), "--json")
    assert code == 0
    assert json.loads(out) == {"copies": [
        {"id": "food_3", "score": 0.97, "segments": [
            {"query_start": 4.0, "query_end": 10.2, "ref_start": 26.0, "ref_end": 32.04, "score": 0.95},
            {"query_start": 12.5, "query_end": 14.5, "ref_start": 61.4, "ref_end": 63.6, "score": 0.81}]},
        {"id": "bikes_1", "score": 0.72, "segments": [
            {"query_start": 0.0, "query_end": 3.0, "ref_start": 119.6, "ref_end": 122.7, "score": 0.72}]},
    ]}
    [(rpc, request)] = gateway.calls
    assert rpc == "FindCopies" and request.video == b"a small clip" and request.k == 10


def test_a_line_per_copied_segment(run, clip):
    code, out, _ = run(FakeGateway(COPIES), "copies", str(clip))
    assert code == 0
    assert out.splitlines() == [
        "0:04-0:10 of your clip matches 0:26-0:32 of food_3 (score 0.95)",
        "0:12-0:14 of your clip matches 1:01-1:03 of food_3 (score 0.81)",
        "0:00-0:03 of your clip matches 1:59-2:02 of bikes_1 (score 0.72)",
    ]


def test_no_copy(run, clip):
    assert run(FakeGateway(), "copies", str(clip), "--json")[:2] == (0, '{"copies": []}\n')
    assert run(FakeGateway(), "copies", str(clip))[:2] == (0, "no copies found\n")


def test_a_stored_video_by_id(run):
    gateway = FakeGateway(COPIES[1:])
    code, out, _ = run(gateway, "copies", "--id", "bikes_1_reupload", "--k", "3")
    assert code == 0 and out == "0:00-0:03 of bikes_1_reupload matches 1:59-2:02 of bikes_1 (score 0.72)\n"
    [(rpc, request)] = gateway.calls
    assert rpc == "FindCopies" and request.id == "bikes_1_reupload" and request.k == 3


def test_a_file_larger_than_one_message_is_streamed_with_k(run, clip, monkeypatch):
    monkeypatch.setattr(client, "STREAM_ABOVE_BYTES", 5)
    gateway = FakeGateway(COPIES)
    code, out, _ = run(gateway, "copies", str(clip), "--k", "1", "--json")
    assert gateway.calls == [("FindCopiesStream", b"a small clip")]
    assert code == 0 and [c["id"] for c in json.loads(out)["copies"]] == ["food_3"]


@pytest.mark.parametrize("argv, says", [
    ((), "one of the arguments file --id is required"),
    (("clip.mp4", "--id", "food_3"), "argument --id: not allowed with argument file"),
])
def test_a_file_or_an_id_exactly(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["copies", *argv])
    assert exit_.value.code == 2 and says in capsys.readouterr().err


def test_errors_are_reported_as_the_other_commands_do(run, tmp_path):
    assert run(FakeGateway(missing="nobody"), "copies", "--id", "nobody") == (1, "", "error: NOT_FOUND: no video nobody\n")
    code, _, err = run(FakeGateway(), "copies", str(tmp_path / "absent.mp4"))
    assert code == 2 and err.startswith("error: ") and "absent.mp4" in err


def test_predict_names_every_copied_segment(run, clip):
    code, out, _ = run(FakeGateway(COPIES), "predict", str(clip), "--json")
    assert code == 0
    assert json.loads(out)["copied_segments"] == [
        {"id": "food_3", "query_start": 4.0, "query_end": 10.2, "ref_start": 26.0, "ref_end": 32.04, "score": 0.95},
        {"id": "food_3", "query_start": 12.5, "query_end": 14.5, "ref_start": 61.4, "ref_end": 63.6, "score": 0.81},
        {"id": "bikes_1", "query_start": 0.0, "query_end": 3.0, "ref_start": 119.6, "ref_end": 122.7, "score": 0.72},
    ]
    code, out, _ = run(FakeGateway(COPIES), "predict", str(clip))
    assert out.splitlines()[-3:] == [
        "copied: 0:04-0:10 of your clip matches 0:26-0:32 of food_3 (score 0.95)",
        "copied: 0:12-0:14 of your clip matches 1:01-1:03 of food_3 (score 0.81)",
        "copied: 0:00-0:03 of your clip matches 1:59-2:02 of bikes_1 (score 0.72)",
    ]


def test_predict_without_copies(run, clip):
    code, out, _ = run(FakeGateway(), "predict", str(clip), "--json")
    assert code == 0 and json.loads(out)["copied_segments"] == []
    assert "copied" not in run(FakeGateway(), "predict", str(clip))[1]


def test_predict_prints_views_with_their_interval_when_a_views_model_answers(run, clip):
    views = common_pb2.Estimate(value=25_000, low=6_000, high=110_000)
    code, out, _ = run(FakeGateway(views=views), "predict", str(clip), "--json")
    printed = json.loads(out)
    assert code == 0 and (printed["views"], printed["views_low"], printed["views_high"]) == (25_000, 6_000, 110_000)
    lines = run(FakeGateway(views=views), "predict", str(clip))[1].splitlines()
    assert lines[:2] == ["likes 1,200 (80% interval 300 - 4,000)", "views 25,000 (80% interval 6,000 - 110,000)"]


def test_predict_without_a_views_model_prints_null_views(run, clip):
    printed = json.loads(run(FakeGateway(), "predict", str(clip), "--json")[1])
    assert printed["views"] is printed["views_low"] is printed["views_high"] is None
    assert "views" not in run(FakeGateway(), "predict", str(clip))[1]
