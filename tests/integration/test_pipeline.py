"""End to end over real gRPC: index, search, predict, bad input, restart. Each test states what it
needs of the shared stack (the indexed corpus, a trained likes model) as fixtures, so the order they
run in does not matter; the untrained regressor is tested on a stack of its own (test_fresh_stack)."""

import hashlib
import json
import os
import random

import grpc
import numpy as np
import pytest
from checkout import ROOT

from reelvec import samples
from reelvec.tools import real_media
from reelvec.v1 import common_pb2, gateway_pb2

pytestmark = pytest.mark.integration


def _video(path) -> bytes:
    return path.read_bytes()


def test_manifest_ingest_indexes_every_video_with_its_modalities(indexed, corpus):
    expected = [json.loads(line)["id"] for line in corpus.read_text().splitlines()]
    assert sorted(indexed) == sorted(expected)
    assert set(indexed["food_0"]["modalities"]) == {"visual", "audio", "text", "fused"}


def test_get_returns_payload_transcript_and_model_versions(stack, indexed, corpus):
    entry = next(json.loads(l) for l in corpus.read_text().splitlines() if json.loads(l)["id"] == "food_0")
    record = stack.stub().Get(gateway_pb2.GetVideoRequest(id="food_0", with_vectors=True), timeout=30)
    assert record.metadata.caption == entry["caption"]
    assert list(record.metadata.hashtags) == entry["hashtags"]
    assert record.metadata.likes == entry["likes"]
    assert record.metadata.author.followers == entry["author"]["followers"]
    assert record.has_audio and record.duration > 3
    assert "pasta" in record.transcript.lower()
    assert record.language == "en"
    assert {"visual", "audio", "text", "fused", "whisper"} <= set(record.model_versions)
    fused = np.asarray(record.embeddings.vectors["fused"].values)
    assert np.isclose(np.linalg.norm(fused), 1.0, atol=1e-4)


def test_search_by_video_finds_itself_first(stack, indexed, corpus):
    result = json.loads(stack.cli("search", "--video", str(corpus.parent / "travel_1.mp4"), "--json").stdout)
    assert result["hits"][0]["id"] == "travel_1"
    # not 1.0: the stored text vector also embedded the manifest's hashtags, the query has none
    assert result["hits"][0]["score"] > 0.95
    scores = [h["score"] for h in result["hits"]]
    assert scores == sorted(scores, reverse=True)
    visual = json.loads(
        stack.cli("search", "--video", str(corpus.parent / "travel_1.mp4"), "--modality", "visual", "--json").stdout
    )
    assert visual["hits"][0]["id"] == "travel_1" and visual["hits"][0]["score"] > 0.999


def test_search_by_text_finds_the_spoken_topic(stack, indexed):
    result = json.loads(stack.cli("search", "--text", "cooking pasta for dinner", "--k", "3", "--json").stdout)
    assert {h["id"] for h in result["hits"][:2]} == {"food_0", "food_1"}


def test_search_by_id_excludes_the_video_itself(stack, indexed):
    hits = json.loads(stack.cli("search", "--id", "pets_0", "--modality", "visual", "--json").stdout)["hits"]
    assert hits and "pets_0" not in {h["id"] for h in hits}


def test_filters_restrict_hits(stack, indexed, corpus):
    entries = [json.loads(l) for l in corpus.read_text().splitlines()]
    stub = stack.stub()
    author_hits = stub.Search(
        gateway_pb2.SearchRequest(id="food_0", k=50, filter=common_pb2.Filter(author_ids=["author1"])), timeout=30
    ).hits
    authors = {e["id"]: e["author"]["id"] for e in entries}
    assert author_hits and all(authors[h.id] == "author1" for h in author_hits)

    tagged = stub.Search(
        gateway_pb2.SearchRequest(id="food_0", k=50, filter=common_pb2.Filter(hashtags=["guitar"])), timeout=30
    ).hits
    assert {h.id for h in tagged} == {"music_0", "music_1"}

    likes = sorted(e["likes"] for e in entries)
    low, high = likes[3], likes[-4]
    ranged = stub.Search(
        gateway_pb2.SearchRequest(id="food_0", k=50, filter=common_pb2.Filter(likes=common_pb2.Range(gte=low, lte=high))),
        timeout=30,
    ).hits
    by_id = {e["id"]: e["likes"] for e in entries}
    assert ranged and all(low <= by_id[h.id] <= high for h in ranged)


def test_reindexing_the_same_id_replaces_it(stack, corpus):
    # a video of its own: a corpus video changed here would change what the likes models train on
    stub = stack.stub()
    data = _video(corpus.parent / "food_1.mp4")
    for caption, created in (("the first caption", True), ("a new caption", False)):
        metadata = common_pb2.VideoMetadata(id="food_again", caption=caption)
        response = stub.Index(gateway_pb2.IndexRequest(video=data, metadata=metadata), timeout=300)
        assert response.created is created
    assert stub.Get(gateway_pb2.GetVideoRequest(id="food_again"), timeout=30).metadata.caption == "a new caption"
    assert stub.Delete(gateway_pb2.DeleteVideoRequest(id="food_again"), timeout=30).deleted


def _chunks(metadata, data, size=64 * 1024):
    yield gateway_pb2.IndexChunk(metadata=metadata)
    for start in range(0, len(data), size):
        yield gateway_pb2.IndexChunk(data=data[start : start + size])


def test_streaming_upload_in_chunks(stack, tmp_path):
    data = samples.make_video(tmp_path / "big.mp4", seconds=6, size=(1280, 720), seed=99).read_bytes()
    assert len(data) > 3 * 64 * 1024
    response = stack.stub().IndexStream(_chunks(common_pb2.VideoMetadata(id="big-upload"), data), timeout=300)
    assert response.id == "big-upload" and response.duration > 5


def test_upload_over_the_limit_is_refused_and_not_stored(stack, grpc_error):
    # the test stack runs with REELVEC_MAX_VIDEO_MB=8
    data = random.Random(1).randbytes(9 * 2**20)
    error = grpc_error(stack.stub().IndexStream, _chunks(common_pb2.VideoMetadata(id="too-big"), data), timeout=60)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "8 MiB limit" in error.details()
    assert grpc_error(stack.stub().Get, gateway_pb2.GetVideoRequest(id="too-big"), timeout=30).code() == grpc.StatusCode.NOT_FOUND


def test_video_without_audio_is_indexed_without_audio_or_speech(stack, tmp_path):
    silent = samples.make_video(tmp_path / "mute.mp4", seed=5, audio=False)
    result = json.loads(stack.cli("index", str(silent), "--json").stdout)
    assert result["id"] == "mute"
    assert "audio" not in result["modalities"] and "visual" in result["modalities"]
    transcript = json.loads(stack.cli("transcribe", str(silent), "--json").stdout)
    assert transcript == {"text": "", "language": "", "segments": []}


def test_transcribe_and_embed_commands(stack, corpus):
    transcript = json.loads(stack.cli("transcribe", str(corpus.parent / "fitness_0.mp4"), "--json").stdout)
    assert "beginners" in transcript["text"].lower() and transcript["language"] == "en"
    assert all(s["start"] < s["end"] for s in transcript["segments"])
    embedded = json.loads(stack.cli("embed", str(corpus.parent / "fitness_0.mp4"), "--json").stdout)
    assert len(embedded["visual"]) == 1280 and len(embedded["text"]) == 384 and len(embedded["audio"]) > 0
    assert len(embedded["fused"]) == len(embedded["visual"]) + len(embedded["audio"]) + len(embedded["text"])
    assert "beginners" in embedded["transcript"].lower()


BAD_INPUTS = {
    "empty": lambda corpus, tmp: b"",
    "not a video": lambda corpus, tmp: b"this is a text file, not a video\n" * 100,
    "random bytes": lambda corpus, tmp: random.Random(0).randbytes(50_000),
    "truncated": lambda corpus, tmp: _video(corpus.parent / "tech_0.mp4")[:3000],
    "audio only": lambda corpus, tmp: _audio_only(tmp),
}


def _audio_only(tmp):
    path = tmp / "speech.wav"
    samples.speak("only sound here", path)
    return path.read_bytes()


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_bad_input_is_invalid_argument_and_nothing_is_stored(stack, indexed, corpus, tmp_path, grpc_error, kind):
    stub = stack.stub()
    data = BAD_INPUTS[kind](corpus, tmp_path)
    error = grpc_error(
        stub.Index,
        gateway_pb2.IndexRequest(video=data, metadata=common_pb2.VideoMetadata(id=f"bad-{kind.replace(' ', '-')}")),
        timeout=120,
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert len(error.details()) > 10
    missing = grpc_error(stub.Get, gateway_pb2.GetVideoRequest(id=f"bad-{kind.replace(' ', '-')}"), timeout=30)
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    # and the stack keeps serving
    assert stub.Get(gateway_pb2.GetVideoRequest(id="food_0"), timeout=30).id == "food_0"


def test_cli_failure_is_one_line_naming_the_status(stack, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    result = stack.cli("predict", str(junk), "--json", check=False)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "INVALID_ARGUMENT" in result.stderr


def test_unreadable_files_fail_without_stopping_the_batch(stack, corpus, tmp_path):
    locked = tmp_path / "a_folder.mp4"  # unreadable as a file even for root
    locked.mkdir()
    good = samples.make_video(tmp_path / "good_one.mp4", seed=77)
    result = stack.cli("index", str(tmp_path / "missing.mp4"), str(locked), str(good), "--json", check=False)
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors)
    assert "missing.mp4" in errors[0] or "missing.mp4" in errors[1]
    assert json.loads(result.stdout)["id"] == "good_one"  # the readable file was still indexed


def test_train_regressor_serves_the_best_model_under_author_folds(stack, indexed):
    report = json.loads(stack.cli("train", "regressor", "--json").stdout)
    assert report["train_size"] == report["test_size"] >= 10  # each video predicted once, out of fold
    assert report["folds"] == 4 and "4 authors" in report["validation"]  # the sample corpus has 4 authors
    table = {row["model"]: row for row in report["comparison"]}
    # the kinds that train in seconds; --compare adds mlp and transformer (the test below)
    assert set(table) == {"ridge", "gbm", "quartile", "author", "mean"}
    assert table[report["model"]]["mae"] == report["mae"] and table["mean"]["mae"] == report["baseline_mae"]
    assert report["model_version"].startswith(report["model"] + "-")
    assert [row["features"] for row in report["ablations"]] == [
        "author", "author+text", "author+text+visual", "author+text+visual+audio",
        "author+text+visual+audio+neighbours"]
    # likes follow the author's followers in the sample corpus: a model of the author statistics must
    # beat always answering the training mean by far, where one that learned nothing would not
    assert table["author"]["mae"] < 0.5 * report["baseline_mae"], table
    # every sample video carries views too: a views model, measured the same way
    assert report["views"]["train_size"] == report["train_size"] and report["views_skipped"] == ""
    assert {row["model"] for row in report["views"]["comparison"]} == set(table)


def test_the_served_likes_model_beats_the_mean_predictor(trained):
    assert trained["mae"] < 0.5 * trained["baseline_mae"], trained


def test_train_another_model_with_the_comparison_table(stack, indexed):
    report = json.loads(stack.cli("train", "regressor", "--model", "gbm", "--huber", "--compare", "--json").stdout)
    assert report["model"] == "gbm+huber" and report["model_version"].startswith("gbm+huber-")
    table = {row["model"]: row for row in report["comparison"]}
    assert set(table) == {"ridge", "gbm", "mlp", "transformer", "quartile", "author", "mean"}
    assert table["gbm"]["mae"] == report["mae"] and table["mean"]["r2"] <= 0.0
    human = stack.cli("train", "regressor").stdout  # the default choice again serves the tests below
    assert "author folds" in human and "author+text+visual" in human
    bad = stack.cli("train", "regressor", "--model", "forest", check=False)
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr and "unknown model 'forest'" in bad.stderr


def test_predict_returns_likes_interval_originality_and_suggestions(stack, trained, corpus, tmp_path):
    copy = samples.transcode(corpus.parent / "pets_0.mp4", tmp_path / "pets_copy.mp4", scale=0.75)
    result = json.loads(stack.cli("predict", str(copy), "--followers", "50000", "--author-videos", "30", "--json").stdout)
    assert 0 <= result["likes_low"] <= result["likes"] <= result["likes_high"]
    assert 0 <= result["views_low"] <= result["views"] <= result["views_high"]  # the sample carries views
    assert result["near_duplicate_of"] == "pets_0"
    assert 0.0 <= result["originality"] < 0.3
    assert result["similar"][0]["id"] == "pets_0"
    assert {"pets", "dog", "training"} & set(result["hashtags"])

    # real footage the corpus lacks: a generated clip would be a texture of a sample clip's family,
    # which the copy decision may call a copy (docs/copies.md, 6)
    fresh = real_media.clips(ROOT / ".media")["city.mpg"]
    original = json.loads(stack.cli("predict", str(fresh), "--json").stdout)
    assert original["near_duplicate_of"] is None
    assert original["originality"] > result["originality"]


def test_predict_by_id_uses_the_stored_video(stack, trained, grpc_error):
    stub = stack.stub()
    response = stub.Predict(gateway_pb2.PredictRequest(id="music_0", k=5), timeout=60)
    assert response.likes > 0 and len(response.similar) == 5
    assert "music_0" not in {h.id for h in response.similar}
    stored = stub.Get(gateway_pb2.GetVideoRequest(id="music_0"), timeout=30)
    assert response.transcript.text == stored.transcript
    # the sample corpus carries views, so a views model serves beside the likes one
    served = {name: response.model_versions[name] for name in ("likes", "views")}
    assert {**stored.model_versions, **served} == dict(response.model_versions)
    assert 0 <= response.views.low <= response.views.value <= response.views.high
    missing = grpc_error(stub.Predict, gateway_pb2.PredictRequest(id="no_such_video"), timeout=30)
    assert missing.code() == grpc.StatusCode.NOT_FOUND and "no_such_video" in missing.details()


def test_delete_removes_the_video(stack, tmp_path, grpc_error):
    stub = stack.stub()
    assert stack.cli("delete", "street_x", "--json", check=False).returncode == 0  # unknown id: deleted false
    clip = samples.make_video(tmp_path / "doomed.mp4", seed=6543, seconds=2).read_bytes()
    stub.Index(gateway_pb2.IndexRequest(video=clip, metadata=common_pb2.VideoMetadata(id="doomed")), timeout=300)
    assert stub.Delete(gateway_pb2.DeleteVideoRequest(id="doomed"), timeout=30).deleted
    assert grpc_error(stub.Get, gateway_pb2.GetVideoRequest(id="doomed"), timeout=30).code() == grpc.StatusCode.NOT_FOUND


def test_uploads_are_kept_once_per_content_until_the_last_video_goes(stack, tmp_path):
    stub = stack.stub()
    data = samples.make_video(tmp_path / "twice.mp4", seed=4321, seconds=2, tone_hz=523.0).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    for video_id in ("twice_a", "twice_b"):
        response = stub.Index(gateway_pb2.IndexRequest(video=data, metadata=common_pb2.VideoMetadata(id=video_id)),
                              timeout=300)
        assert response.content_sha256 == sha
    kept = stack.data_dir / "media" / sha[:2] / sha
    assert kept.read_bytes() == data
    assert stub.Delete(gateway_pb2.DeleteVideoRequest(id="twice_a"), timeout=30).deleted
    assert kept.exists()  # twice_b still points at it
    assert stub.Delete(gateway_pb2.DeleteVideoRequest(id="twice_b"), timeout=30).deleted
    assert not kept.exists()  # a deleted video leaves no copy of itself behind


def test_metrics_endpoints_count_rpcs(stack, tmp_path, grpc_error):
    import re
    import urllib.request


    # an upload and a refused one of its own: a restart of the stack sets the counters back to zero
    stub = stack.stub()
    clip = samples.make_video(tmp_path / "counted.mp4", seed=8765, seconds=2).read_bytes()
    stub.Index(gateway_pb2.IndexRequest(video=clip, metadata=common_pb2.VideoMetadata(id="counted")), timeout=300)
    assert stub.Delete(gateway_pb2.DeleteVideoRequest(id="counted"), timeout=30).deleted
    empty = gateway_pb2.IndexRequest(video=b"", metadata=common_pb2.VideoMetadata(id="counted-empty"))
    assert grpc_error(stub.Index, empty, timeout=60).code() == grpc.StatusCode.INVALID_ARGUMENT
    state = json.loads((stack.data_dir / "stack.json").read_text())

    def scrape(process):
        return urllib.request.urlopen(f"http://{state[process]['metrics']}/metrics", timeout=10).read().decode()

    body = scrape("gateway")
    assert 'reelvec_rpc_requests_total{code="OK",method="Index"}' in body
    assert 'code="INVALID_ARGUMENT"' in body
    assert 'reelvec_rpc_latency_seconds_count{code="OK",method="Index"}' in body
    encoder = scrape("encoder")
    for stage in ("queued", "decode", "model", "features"):
        assert f'reelvec_stage_seconds_count{{stage="{stage}"}}' in encoder, stage
    # every metric the Grafana dashboard and the autoscaling rules query is one a process exports
    exported = set()
    for process in ("gateway", "encoder", "transcriber", "search", "regressor", "triton"):
        for name in re.findall(r"^# TYPE (\w+) (\w+)", scrape(process), re.M):
            exported |= {name[0], name[0] + "_bucket", name[0] + "_count", name[0] + "_sum"}
    monitoring = ROOT / "deploy" / "k8s" / "monitoring"
    queried = set(re.findall(r"\b((?:reelvec|nv)_[a-z_]+)\b", (monitoring / "grafana-dashboard.json").read_text()
                             + (monitoring / "prometheus-adapter-rules.yaml").read_text()))
    assert queried and queried <= exported, sorted(queried - exported)


def test_the_load_generator_runs_a_bounded_mix_against_the_stack(stack, trained, corpus, tmp_path):
    """`make loadtest`'s Locust file, for a few seconds, with Index traffic from two sample clips."""
    import csv
    import subprocess


    locust = ROOT / ".venv-loadtest" / "bin" / "locust"
    assert locust.exists(), "run `make loadtest-env` (make test does)"
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("travel_1", "food_0"):
        (clips / f"{name}.mp4").write_bytes((corpus.parent / f"{name}.mp4").read_bytes())
    before = stack.stub().Search(gateway_pb2.SearchRequest(text="video", k=100), timeout=30).hits
    result = subprocess.run(
        [str(locust), "-f", "services/loadgen/locustfile.py", "--headless", "--host", stack.gateway,
         "--users", "4", "--spawn-rate", "4", "--run-time", "8s", "--stop-timeout", "60", "--only-summary",
         "--csv", str(tmp_path / "load")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "LOADGEN_VIDEOS": str(clips)},
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row["Name"]: row for row in csv.DictReader(open(tmp_path / "load_stats.csv"))}
    for name in ("Search id", "Search text", "Predict id"):
        assert int(rows[name]["Request Count"]) > 0 and int(rows[name]["Failure Count"]) == 0, rows[name]
        assert float(rows[name]["50%"]) <= float(rows[name]["99%"])
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    assert "Response time percentiles" in result.stderr + result.stdout  # the table `make loadtest` prints
    after = stack.stub().Search(gateway_pb2.SearchRequest(text="video", k=100), timeout=30).hits
    assert {h.id for h in after} == {h.id for h in before}  # its uploads are deleted again


def test_a_short_soak_has_no_errors_and_no_memory_growth(stack, trained, corpus):
    """reelvec.tools.soak for 45 s at 12 calls/s (`make soak` runs the same for minutes)."""
    import asyncio

    from reelvec.tools import soak

    uploads = [(corpus.parent / f"{name}.mp4").read_bytes() for name in ("travel_1", "food_0")]
    report = asyncio.run(soak.soak(stack.gateway, stack.pids(), seconds=45, rate=12, uploads=uploads))
    summary = report.summary()
    assert report.errors == {}, summary
    assert all(summary["calls"][name]["ok"] > 0 for name in ("Search id", "Search text", "Predict id")), summary
    assert set(summary["memory"]) == set(stack.pids())
    for name, memory in summary["memory"].items():  # steady traffic, steady memory
        assert memory["growth_mib"] <= max(30.0, 0.15 * memory["first_mib"]), (name, memory)
    print(report.render())


def test_everything_survives_a_restart(stack, trained):
    before = stack.stub().Get(gateway_pb2.GetVideoRequest(id="food_0", with_vectors=True), timeout=30)
    stack.restart()
    stub = stack.stub()
    after = stub.Get(gateway_pb2.GetVideoRequest(id="food_0", with_vectors=True), timeout=30)
    assert after == before
    # the trained regressor comes back too
    assert stub.Predict(gateway_pb2.PredictRequest(id="food_0"), timeout=60).likes > 0
