"""`reelvec index` against an in-process fake gateway: resuming a bulk ingest, --force, bad manifest
lines, and the progress of index and evaluate."""

import hashlib
import io
import json

import grpc
import numpy as np
import pytest

from reelvec import modalities, samples
from reelvec.tools import cli
from reelvec.tools.progress import BAR, LINES, QUIET, Progress, mode_for
from reelvec.v1 import common_pb2, gateway_pb2


class Status(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


class FakeGateway:
    """Get and Index as the gateway answers them: a record carries the sha256 of the bytes indexed."""

    def __init__(self):
        self.stored: dict[str, str] = {}
        self.indexed: list[str] = []

    def Get(self, request, timeout=None):
        if request.id not in self.stored:
            raise Status(grpc.StatusCode.NOT_FOUND, f"no video {request.id}")
        return common_pb2.VideoRecord(id=request.id, content_sha256=self.stored[request.id])

    def Index(self, request, timeout=None):
        if request.video.startswith(b"broken"):
            raise Status(grpc.StatusCode.INVALID_ARGUMENT, "not a video")
        video_id = request.metadata.id
        created = video_id not in self.stored
        self.stored[video_id] = hashlib.sha256(request.video).hexdigest()
        self.indexed.append(video_id)
        return gateway_pb2.IndexResponse(id=video_id, created=created, modalities=["visual"])


def run(stub, *argv):
    args = cli._parser().parse_args(["index", *argv])
    return args.func(args, stub)


@pytest.fixture
def videos(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.mp4").write_bytes(f"video {name}".encode())
    manifest = tmp_path / "videos.jsonl"
    # c is stored under the manifest's id, not its file name's stem
    manifest.write_text("".join(json.dumps(e) + "\n" for e in (
        {"path": "a.mp4"}, {"path": "b.mp4", "created_at": "2026-08-17T12:00:00Z"}, {"path": "c.mp4", "id": "cee"},
    )))
    return manifest


def test_a_rerun_skips_what_is_stored_with_the_same_bytes_and_says_so(videos, capsys):
    gateway = FakeGateway()
    assert run(gateway, "--manifest", str(videos)) == 0
    assert sorted(gateway.indexed) == ["a", "b", "cee"]
    capsys.readouterr()
    (videos.parent / "b.mp4").write_bytes(b"video b, edited")
    gateway.indexed.clear()
    assert run(gateway, "--manifest", str(videos)) == 0
    assert gateway.indexed == ["b"]  # changed bytes are indexed again; a and cee are not
    out, err = capsys.readouterr()
    assert out.splitlines() == ["indexed b (replaced)"]
    assert "1 indexed, 2 skipped as stored already with the same content" in err
    assert "--force" in err


def test_force_indexes_every_line_again(videos, capsys):
    gateway = FakeGateway()
    run(gateway, "--manifest", str(videos))
    gateway.indexed.clear()
    assert run(gateway, "--manifest", str(videos), "--force") == 0
    assert sorted(gateway.indexed) == ["a", "b", "cee"]


def test_skipped_lines_are_json_lines_too(videos, capsys):
    gateway = FakeGateway()
    run(gateway, "--manifest", str(videos))
    capsys.readouterr()
    run(gateway, "--manifest", str(videos), "--json")
    out, err = capsys.readouterr()
    assert sorted(json.loads(line)["id"] for line in out.splitlines()) == ["a", "b", "cee"]
    assert all(json.loads(line)["skipped"] for line in out.splitlines())
    assert err == ""  # --json: no progress, no summary


def test_files_named_on_the_command_line_are_indexed_even_when_stored(videos, capsys):
    gateway = FakeGateway()
    run(gateway, "--manifest", str(videos))
    gateway.indexed.clear()
    assert run(gateway, str(videos.parent / "a.mp4")) == 0
    assert gateway.indexed == ["a"]


def test_bad_lines_and_bad_videos_fail_the_run_but_not_the_other_lines(videos, capsys):
    (videos.parent / "broken.mp4").write_bytes(b"broken bytes")
    with videos.open("a") as out:
        out.write('{"path": "a.mp4", "id": "late", "created_at": "yesterday"}\n{"path": "broken.mp4"}\n')
    gateway = FakeGateway()
    assert run(gateway, "--manifest", str(videos)) == 1
    assert sorted(gateway.indexed) == ["a", "b", "cee"]
    err = capsys.readouterr().err
    assert f"error: {videos}:4: field 'created_at': " in err
    assert "error: " + str(videos.parent / "broken.mp4") + ": INVALID_ARGUMENT: not a video" in err
    assert "3 indexed, 0 skipped as stored already with the same content, 2 failed" in err


def test_a_failed_get_is_that_line_s_failure(videos, capsys):
    class Unavailable(FakeGateway):
        def Get(self, request, timeout=None):
            raise Status(grpc.StatusCode.UNAVAILABLE, "search is down")

    gateway = Unavailable()
    assert run(gateway, "--manifest", str(videos)) == 1
    assert gateway.indexed == []
    assert capsys.readouterr().err.count("UNAVAILABLE: search is down") == 3


def test_index_progress_lines_when_stderr_is_no_terminal(videos, capsys):
    run(FakeGateway(), "--manifest", str(videos))
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "index: 0/3"
    assert [line.split(",")[0] for line in err[1:4]] == ["index: 1/3", "index: 2/3", "index: 3/3"]
    assert "0 failed" in err[3] and "took" in err[3]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_rate_and_eta_leave_skipped_videos_out():
    clock, stream = Clock(), io.StringIO()
    progress = Progress(LINES, stream, clock)
    progress.stage("index", 10)
    assert progress.details() == "ETA ?, 0 failed"
    progress.advance(skipped=True)  # a resumed run's skip: instant, not the pace of real work
    clock.now = 60.0
    progress.advance()
    progress.advance(failed=True)
    # 2 videos worked in a minute, 7 to go
    assert progress.details() == "2.0 videos/min, ETA 3m 30s, 1 failed, 1 skipped"
    for _ in range(7):
        progress.advance()
    assert progress.details() == "9.0 videos/min, took 1m 00s, 1 failed, 1 skipped"
    lines = stream.getvalue().splitlines()
    assert lines[0] == "index: 0/10" and lines[-1].startswith("index: 10/10, 9.0 videos/min")


def test_lines_come_every_twentieth_of_a_long_stage():
    stream = io.StringIO()
    progress = Progress(LINES, stream, Clock())
    progress.stage("index", 1000)
    for _ in range(1000):
        progress.advance()
    assert len(stream.getvalue().splitlines()) == 21


def test_a_terminal_gets_a_bar_and_json_gets_nothing():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert (mode_for(False, Terminal()), mode_for(False, io.StringIO()), mode_for(True, Terminal())) == (
        BAR, LINES, QUIET)
    stream = Terminal()
    progress = Progress(BAR, stream, Clock())
    progress.stage("index", 4)
    progress.advance(failed=True)
    progress.close()
    assert "index:  25%|" in stream.getvalue() and "1/4" in stream.getvalue() and "1 failed" in stream.getvalue()
    quiet = io.StringIO()
    progress = Progress(QUIET, quiet)
    progress.stage("index", 4)
    progress.advance()
    assert quiet.getvalue() == ""


class FakeEmbedder:
    def Embed(self, request, timeout=None):
        rng = np.random.default_rng(len(request.video))
        response = gateway_pb2.EmbedResponse(model_versions={"visual": "1"})
        for name, dim in modalities.DIMS.items():
            response.embeddings.vectors[name].values.extend(rng.standard_normal(dim).tolist())
        return response


def test_evaluate_names_its_stages_on_stderr(tmp_path, monkeypatch):
    from reelvec.tools.evaluation import report

    monkeypatch.setattr(report, "_with_learned", lambda originals, copies: None)  # the autoencoder's training

    items = [(samples.make_video(tmp_path / f"{n}.mp4", seconds=1.0, size=(64, 48), seed=n),
              common_pb2.VideoMetadata(id=str(n))) for n in range(3)]
    stream = io.StringIO()
    report.evaluate(FakeEmbedder(), items, kinds=("hflip",), clip3d_steps=0,
                    progress=Progress(LINES, stream, prefix="evaluate: "))
    lines = stream.getvalue().splitlines()
    for stage in ("making 3 copies: 3/3", "embedding 3 videos: 3/3",
                  "making 3 partial copies and 3 unrelated videos: 6/6",
                  "embedding 3 copies and 6 other queries: 9/9", "measuring every representation...",
                  "aligning the frames of every query with every original..."):
        assert any(line.startswith(f"evaluate: {stage}") for line in lines), (stage, lines)
