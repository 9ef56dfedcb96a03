"""The evaluation's measures on hand-made vectors, and its copy transforms on real video."""

import json
import re
from pathlib import Path

import av
import numpy as np
import pytest
from checkout import ROOT
from PIL import Image

from reelvec import copies, media, samples
from reelvec.tools import plots, real_media
from reelvec.tools.evaluation import copy_methods, metrics, report, transforms
from reelvec.v1 import gateway_pb2


def test_copy_detection_recall_and_micro_ap():
    originals = np.eye(4)
    copies = np.array([[1, 0.1, 0, 0], [0.2, 1, 0, 0], [0, 0, 0.4, 0.5], [0, 0, 0, 0]])
    result = metrics.copy_detection(originals, copies, np.array([0, 1, 2, 3]))
    # copy 2 is closer to original 3 than to its own; copy 3 has no vector and finds nothing
    assert result["recall@1"] == 0.5 and result["recall@10"] == 0.75
    # pairs by similarity: (0,0) 0.995 hit, (1,1) 0.98 hit, (2,3) 0.78, (2,2) 0.62 hit, ...; copy 3
    # ranks last among 16 pairs (ties broken against it at -1)
    sims = metrics.similarities(copies, originals)
    assert sims[3].max() == -1.0
    order = np.argsort(-sims.ravel(), kind="stable")
    rank_of_last = int(np.flatnonzero(order == 15)[0]) + 1
    assert result["micro_ap"] == pytest.approx((1 + 1 + 3 / 4 + 4 / rank_of_last) / 4)


def test_micro_ap_ranks_a_true_pair_after_the_false_pairs_it_ties_with():
    # an aligner leaves unmatched pairs at 0: a true pair at 0 is found last, not by its position
    assert metrics.micro_ap(np.array([[0.0, 0.0]]), np.array([[True, False]])) == 0.5
    truth = np.eye(2, dtype=bool)
    assert metrics.micro_ap(np.array([[0.9, 0.2], [0.5, 0.7]]), truth) == 1.0
    # 0.9 false, then the true pairs at 0.8 and 0.6 around a false 0.7: (1/2 + 2/4) / 2
    assert metrics.micro_ap(np.array([[0.8, 0.9], [0.7, 0.6]]), truth) == pytest.approx(0.5)
    assert metrics.micro_ap(np.zeros((1, 2)), np.zeros((1, 2), bool)) == 0.0


def test_the_decision_at_a_threshold_counts_found_and_false_copies():
    scores = np.array([[0.9, 0.7, 0.1], [0.2, 0.5, 0.1], [0.8, 0.0, 0.3]])
    truth = np.array([[True, False, False], [False, True, False], [False, False, False]])  # query 2: no copy
    decided = metrics.at_threshold(scores, truth, 0.6)
    assert decided == {"threshold": 0.6, "recall": 0.5, "precision": pytest.approx(1 / 3), "false_copies": 2,
                       "false_copy_rate": pytest.approx(2 / 7), "queries_with_false_copy": 2}
    nothing = metrics.at_threshold(scores, truth, 0.95)
    assert (nothing["recall"], nothing["precision"], nothing["false_copies"]) == (0.0, 1.0, 0)


def test_the_precision_recall_curve_and_its_operating_point():
    scores = np.array([[0.9, 0.3], [0.6, 0.6]])
    truth = np.eye(2, dtype=bool)
    curve = metrics.pr_curve(scores, truth)
    # one point per distinct score: the two pairs at 0.6 (one true, one false) come in together
    assert curve == [{"threshold": 0.9, "precision": 1.0, "recall": 0.5},
                     {"threshold": 0.6, "precision": pytest.approx(2 / 3), "recall": 1.0},
                     {"threshold": 0.3, "precision": 0.5, "recall": 1.0}]
    assert metrics.operating_point(curve, 0.99)["threshold"] == 0.9
    assert metrics.operating_point(curve, 0.6)["threshold"] == 0.6  # full recall, the higher threshold
    assert metrics.operating_point(metrics.pr_curve(scores, ~truth), 0.99) is None  # the best pair is false


def test_segments_are_scored_on_both_axes_and_located_by_their_overlap():
    truth = [(0, (5.0, 12.0, 10.0, 17.0))] * 4
    predicted = [
        {0: [(5.0, 12.0, 10.0, 17.0)], 1: [(0.0, 3.0, 0.0, 3.0)]},  # exact, and a false copy elsewhere
        {0: [(0.0, 17.0, 0.0, 30.0)]},  # a mean vector's claim: the whole of both videos
        {},  # not found
        {0: [(3.0, 9.0, 10.0, 16.0), (8.0, 10.0, 15.0, 17.0)]},  # two overlapping pieces of it
    ]
    result = metrics.segment_match(predicted, truth)
    whole = np.sqrt(7 / 17 * 7 / 30)
    pieces = [np.sqrt(4 / 6 * 1.0), 1.0]
    assert result["precision"] == pytest.approx(np.mean([1.0, 0.0, whole, *pieces]))
    # the pieces cover 5-10 of the query's 5-12 (their union, not 6 + 2 s) and all of 10-17
    assert result["recall"] == pytest.approx(np.mean([1.0, 1.0, 0.0, np.sqrt(5 / 7)]))
    # the whole videos overlap the excerpt by 7/17 and 7/30, each piece by less than half on the query
    assert result["located"] == 0.25 and result["located_long"] == 0.25  # every excerpt is 7 s
    assert metrics.segment_match([{}], truth[:1])["precision"] is None
    # of a 7 s excerpt found and a 4 s one missed, the 6 s target counts the first only
    short = [(0, (5.0, 12.0, 10.0, 17.0)), (0, (5.0, 9.0, 10.0, 14.0))]
    found = metrics.segment_match([{0: [short[0][1]]}, {}], short)
    assert found["located"] == 0.5 and found["located_long"] == 1.0
    assert metrics.segment_match([{}], short[1:])["located_long"] is None
    assert metrics.iou((0, 4), (2, 6)) == pytest.approx(1 / 3) and metrics.iou((0, 1), (2, 3)) == 0.0


def test_category_retrieval():
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    assert metrics.category_retrieval(vectors, ["a", "a", "b", "b"]) == {"precision@3": pytest.approx(1 / 3), "map": 1.0}
    mixed = metrics.category_retrieval(vectors, ["a", "b", "a", "b"])
    assert mixed["map"] < 1.0


def test_category_retrieval_queries_the_labelled_and_keeps_the_unlabelled_as_distractors():
    labelled = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    distractors = np.array([[0.95, 0.05], [0.05, 0.95]])  # each nearer to both videos of a category than they are to each other
    vectors = np.concatenate([labelled, distractors])
    result = metrics.category_retrieval(vectors, ["a", "a", "b", "b", "", ""])
    # every labelled query finds a distractor first, then its one relevant video: AP 1/2; 1 relevant in
    # the top 5. Were the distractors queries (matching each other) or left out of the search space,
    # the map would differ.
    assert result == {"precision@5": pytest.approx(1 / 5), "map": pytest.approx(0.5)}
    assert metrics.category_retrieval(vectors, [""] * 6) == {}


def test_elbow_and_purity():
    assert metrics.elbow({2: 100.0, 3: 40.0, 4: 35.0, 5: 32.0, 6: 30.0}) == 3
    assert metrics.purity(np.array([0, 0, 1, 1, 1]), ["a", "a", "b", "b", "a"]) == pytest.approx(4 / 5)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return samples.make_video(tmp_path_factory.mktemp("eval") / "clip.mp4", seconds=4, seed=5, size=(320, 240))


def _first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24").astype(float)


@pytest.mark.parametrize("kind", transforms.TRANSFORMS)
def test_each_transform_writes_a_playable_copy(clip, tmp_path, kind):
    copy = transforms.make_copy(clip, tmp_path / f"{kind}.mp4", kind)
    source, made = media.probe(clip.read_bytes()), media.probe(copy.read_bytes())
    assert made.has_audio and made.frame_count > 0
    expected_size = {"crop": (224, 168), "scale": (160, 120)}.get(kind, (320, 240))
    assert (made.width, made.height) == expected_size
    retimed = {name: 1 / speed for name, speed in transforms.SPEEDS.items()}
    expected_duration = {"trim": 0.6, **retimed}.get(kind, 1.0) * source.duration
    assert made.duration == pytest.approx(expected_duration, abs=0.25)


def _latin1_avi(path: Path) -> Path:
    """A small AVI whose container and stream titles are Latin-1 bytes (0xd3 is Ó), like real
    HMDB51 clips: written with ASCII placeholders, then patched in place at the same length."""
    with av.open(str(path), "w") as container:
        container.metadata["title"] = "CLIPXXXX"
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.metadata["title"] = "TRACKXXXX"
        for i in range(20):
            image = np.full((64, 96, 3), i * 12, np.uint8)
            image[:, : 4 + 4 * i] = 255  # a moving edge, so the frames differ
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = path.read_bytes()
    assert data.count(b"CLIPXXXX") == 1 and data.count(b"TRACKXXXX") == 1
    path.write_bytes(data.replace(b"CLIPXXXX", b"CLIP\xd3XXX").replace(b"TRACKXXXX", b"TRACK\xd3XXX"))
    return path


def test_the_copy_maker_reads_a_video_whose_metadata_is_latin1(tmp_path):
    source = _latin1_avi(tmp_path / "hmdb.avi")
    with pytest.raises(UnicodeDecodeError):  # what a bare av.open makes of it
        with av.open(str(source)):
            pass
    copy = transforms.make_copy(source, tmp_path / "copy.mp4", "hflip")
    made = media.probe(copy.read_bytes())
    assert (made.width, made.height, made.frame_count) == (96, 64, 20)


class _FakeGateway:
    """Embed answers a vector per video drawn from its bytes: copies differ from their originals."""

    def Embed(self, request, timeout=None):
        from reelvec import modalities
        from reelvec.v1 import common_pb2, gateway_pb2

        rng = np.random.default_rng(int.from_bytes(request.video[-64:].ljust(8, b"\0")[:8], "little"))
        return gateway_pb2.EmbedResponse(embeddings=common_pb2.Embeddings(vectors={
            name: common_pb2.Vector(values=rng.normal(size=dim).tolist()) for name, dim in modalities.DIMS.items()
        }))


def test_evaluate_names_and_skips_an_unusable_file_among_good_ones(clip, tmp_path, capsys):
    from reelvec.tools.evaluation import report
    from reelvec.v1 import common_pb2

    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(1).bytes(4096))
    paths = [clip, garbage, _latin1_avi(tmp_path / "hmdb.avi")]
    items = [(p, common_pb2.VideoMetadata(id=p.stem)) for p in paths]
    result = report.evaluate(_FakeGateway(), items, ["cat", "dog", ""], kinds=("hflip",), clip3d_steps=0)
    assert (result["videos"], result["copies"]) == (2, 2)
    assert [entry["path"] for entry in result["skipped"]] == [str(garbage)]
    assert f"skipping {garbage}: not a media file" in capsys.readouterr().err
    # the skipped video's label went with it; the one labelled video left is still a query
    assert result["labelled"] == 1 and result["category_retrieval"]["visual"]
    markdown = report.markdown(result)
    assert "garbage.mp4: not a media file" in markdown and "Each of the 1 labelled videos (of 2)" in markdown


def test_the_corpus_keeps_the_labels_of_a_partly_labelled_manifest(tmp_path):
    from reelvec.tools.evaluation import report

    lines = [{"path": f"v{i}.mp4", "id": f"v{i}"} | ({"label": "dance"} if i % 2 else {}) for i in range(4)]
    for line in lines:
        (tmp_path / line["path"]).write_bytes(b"")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    items, labels = report.corpus([], manifest, tmp_path)
    assert [m.id for _, m in items] == ["v0", "v1", "v2", "v3"] and labels == ["", "dance", "", "dance"]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({k: v for k, v in line.items() if k != "label"}) + "\n"
                                              for line in lines))
    assert report.corpus([], manifest, tmp_path)[1] is None


def _frame_at(path: Path, seconds: float) -> np.ndarray:
    (_, frame), = media.frames_at(path.read_bytes(), [seconds])
    return frame.to_ndarray(format="rgb24").astype(float)


def test_a_partial_copy_puts_the_middle_of_its_source_between_filler_at_another_size(clip, tmp_path):
    assert transforms.excerpt(30.0) == (11.5, 18.5)  # 7 s from the middle
    assert transforms.excerpt(5.0) == pytest.approx((1.0, 4.0))  # 60% of a shorter one
    filler = transforms.generated(tmp_path / "filler.mp4", transforms.FILLER_SEED, 2 * transforms.FILLER_S)
    box = transforms.make_partial(clip, filler, tmp_path / "partial.mp4")
    start, end = transforms.excerpt(media.probe(clip.read_bytes()).duration)
    assert box == pytest.approx((transforms.FILLER_S, transforms.FILLER_S + end - start, start, end))
    made = media.probe((tmp_path / "partial.mp4").read_bytes())
    assert (made.width, made.height) == (240, 180)  # 3/4 of the source's 320 x 240
    assert made.duration == pytest.approx(2 * transforms.FILLER_S + end - start, abs=0.1)
    # one second into the excerpt the partial copy shows what the source shows one second after `start`
    inside = _frame_at(tmp_path / "partial.mp4", box[0] + 1.0)
    source = np.asarray(Image.fromarray(_frame_at(clip, start + 1.0).astype(np.uint8)).resize((240, 180))).astype(float)
    before = _frame_at(tmp_path / "partial.mp4", box[0] - 1.0)
    assert np.abs(inside - source).mean() < 0.3 * np.abs(before - source).mean()


def test_a_spliced_stretch_counts_seconds_from_the_start_of_the_stream(tmp_path):
    # city.mpg's first frame is stamped 0.54 s: its second 2.0 is the frame sampler's, not 2.54 s
    city = real_media.clips(ROOT / ".media")["city.mpg"]
    transforms.splice([(city, 2.0, 3.0)], tmp_path / "stretch.mp4", (360, 202))
    first = _frame_at(tmp_path / "stretch.mp4", 0.0)
    at = {t: np.asarray(Image.fromarray(_frame_at(city, t).astype(np.uint8)).resize((360, 202))).astype(float)
          for t in (2.0, 2.54)}
    assert np.abs(first - at[2.0]).mean() < 0.3 * np.abs(first - at[2.54]).mean()


def _track(rows: np.ndarray) -> copies.Track:
    return copies.Track.of(np.arange(len(rows)) + 0.5, rows)  # one frame a second


def _constructed():
    """(copy_methods.compare's section, the queries' and originals' tracks) of a full copy, a partial
    copy (seconds 3-10 of original 1 at seconds 5-12 of the query) and a video that copies nothing
    but looks like three originals of its kind (as generated textures do)."""
    rng = np.random.default_rng(4)
    rows = lambda n: rng.normal(size=(n, 64))  # noqa: E731 (random 64-d frames: cosines near 0)
    first, second, kind = rows(12), rows(12), rows(8)
    kin = [kind + 0.58 * rows(8) for _ in range(4)]  # frames of one kind: cosine about 0.75 to each other
    full = first + 0.02 * rng.normal(size=first.shape)
    partial = np.concatenate([rows(5), second[3:10] + 0.02 * rng.normal(size=(7, 64)), rows(5)])
    tracks = [_track(r) for r in (first, second, *kin[:3], full, partial, kin[3])]
    responses = [gateway_pb2.EmbedResponse(frames=t.to_proto(), duration=float(len(t))) for t in tracks]
    visual = np.stack([t.vectors.mean(axis=0) for t in tracks])
    about = [copy_methods.Query("crop", 0), copy_methods.Query(copy_methods.PARTIAL, 1, (5.0, 12.0, 3.0, 10.0)),
             copy_methods.Query(copy_methods.UNRELATED, -1)]
    ids = ["a", "b", "k1", "k2", "k3"]
    assert copies.align(tracks[-1], tracks[2])[0].score >= copies.THRESHOLD  # a chain, by the threshold a copy
    return copy_methods.compare(responses[:5], responses[5:], (visual[:5], visual[5:]), about, ids), tracks


def test_both_copy_methods_side_by_side_on_constructed_frames(tmp_path):
    """The alignment finds and locates both copies and, by the decision's background rule, names
    none of the kin; the mean vector finds the full copy only."""
    result, tracks = _constructed()
    assert result["queries"] == {"full": 1, "partial": 1, "unrelated": 1}
    frames, mean = result[copy_methods.FRAMES], result[copy_methods.MEAN]
    assert frames["micro_ap"] == 1.0 and frames["all"]["recall"] == 1.0 and frames["all"]["false_copies"] == 0
    assert frames["unrelated"]["queries_with_false_copy"] == 0 and frames["highest_false"] == 0.0
    assert frames["segments"] == {"precision": pytest.approx(1.0), "recall": pytest.approx(1.0), "located": 1.0,
                                  "located_long": 1.0}
    assert frames["by_kind"] == {"crop": 1.0, "partial": 1.0}
    assert frames["operating_point"]["recall"] == 1.0
    (row,) = result["partial_copies"]
    assert row["original"] == "b" and row["segment"] == pytest.approx([5.0, 12.0, 3.0, 10.0])
    # a mean over 17 frames of which 7 are copied is far from the original's mean
    assert mean["by_kind"] == {"crop": 1.0, "partial": 0.0} and mean["segments"]["located"] == 0.0
    markdown = "\n".join(copy_methods.markdown(result))
    assert "| partial copies located (IoU >= 0.5 on both sides) | 0.000 | 1.000 |" in markdown
    assert "| b | 5.0-12.0 | 3.0-10.0 | 5.0-12.0 / 3.0-10.0 | " in markdown
    # a replay from the saved descriptors redoes the frames' part alike, the mean vector's kept
    copy_methods.save_tracks(tmp_path / "frames.npz", tracks[5:], tracks[:5])
    emptied = result | {copy_methods.FRAMES: {}, "partial_copies": [row | {"segment": []}]}
    replayed = copy_methods.replay(json.loads(json.dumps(emptied)), tmp_path / "frames.npz")
    assert replayed[copy_methods.FRAMES] == json.loads(json.dumps(frames))
    assert replayed["partial_copies"] == json.loads(json.dumps(result["partial_copies"]))
    assert replayed[copy_methods.MEAN] == json.loads(json.dumps(mean))


def test_the_frame_scores_precision_recall_curve_is_drawn_and_shown_under_its_table(tmp_path):
    result, _ = _constructed()
    written = report.write(_report(copy_methods=result), tmp_path)
    assert [p.name for p in written] == ["report.json", "report.md", copy_methods.CURVE_PLOT]
    with Image.open(tmp_path / copy_methods.CURVE_PLOT) as image:
        assert image.format == "PNG" and image.size == plots.SIZE
        assert len(image.getcolors(image.width * image.height)) > 3
    markdown = (tmp_path / "report.md").read_text()
    assert _images(markdown) == [copy_methods.CURVE_PLOT]
    curve_table = markdown.index("### Frame score: precision and recall")
    assert curve_table < markdown.index(copy_methods.CURVE_PLOT) < markdown.index("### Partial copies")
    assert [p.name for p in report.write(_report(), tmp_path)] == ["report.json", "report.md"]
    assert not list(tmp_path.glob("*.png"))  # a report without copies leaves no earlier curve behind


def test_the_report_keeps_the_frame_descriptors_beside_its_json_for_a_replay(tmp_path, monkeypatch):
    """report.json stays JSON; frames.npz gives back every query's and original's descriptors in
    report order, a query without any as None, so a replay weighs exactly what the run weighed."""
    rng = np.random.default_rng(5)
    queries = [_track(rng.normal(size=(6, 16))), None, _track(rng.normal(size=(3, 16)))]
    originals = [_track(rng.normal(size=(4, 16)))]
    monkeypatch.setattr(report, "markdown", lambda whole, plots=(): "")  # the tables have their own tests
    written = report.write({"videos": 1, report.FRAME_TRACKS: (queries, originals)}, tmp_path)
    assert [p.name for p in written] == ["report.json", "report.md", "frames.npz"]
    assert json.loads((tmp_path / "report.json").read_text()) == {"videos": 1}
    loaded_queries, loaded_originals = copy_methods.load_tracks(tmp_path / "frames.npz")
    assert [None if t is None else len(t) for t in loaded_queries] == [6, None, 3]
    for saved, loaded in zip(queries[::2] + originals, loaded_queries[::2] + loaded_originals):
        assert np.array_equal(saved.times, loaded.times) and np.array_equal(saved.vectors, loaded.vectors)
    assert copy_methods.frame_pairs(loaded_queries, loaded_originals)[2] == copy_methods.frame_pairs(queries, originals)[2]


def test_hflip_mirrors_and_audio_replaced_changes_the_sound(clip, tmp_path):
    flipped = transforms.make_copy(clip, tmp_path / "flip.mp4", "hflip")
    original, mirrored = _first_frame(clip), _first_frame(flipped)
    assert np.abs(original[:, ::-1] - mirrored).mean() < 0.5 * np.abs(original - mirrored).mean()
    replaced = transforms.make_copy(clip, tmp_path / "audio.mp4", "audio_replaced")
    before, after = (media.decode_audio(p.read_bytes()) for p in (clip, replaced))
    n = min(len(before), len(after))
    assert abs(np.corrcoef(before[:n], after[:n])[0, 1]) < 0.3
    smaller = transforms.make_copy(clip, tmp_path / "low.mp4", "low_bitrate")
    assert smaller.stat().st_size < transforms.make_copy(clip, tmp_path / "same.mp4", "hflip").stat().st_size


def _likes_videos(count: int, seed: int = 6):
    """(items, embed responses) of `count` videos by count // 2 authors, with likes that follow followers."""
    from reelvec import modalities
    from reelvec.v1 import common_pb2, gateway_pb2

    rng = np.random.default_rng(seed)
    items, responses = [], []
    for i in range(count):
        followers = int(10 ** rng.uniform(2, 6))
        metadata = common_pb2.VideoMetadata(id=f"v{i}", likes=followers // 20, author=common_pb2.AuthorStats(
            id=f"a{i // 2}", followers=followers, videos=10))
        # the regressor's features are the weighted concatenation of these, whatever the served fusion
        embeddings = common_pb2.Embeddings(vectors={
            name: common_pb2.Vector(values=rng.normal(size=dim).tolist()) for name, dim in modalities.SOURCES.items()
        })
        items.append((Path(f"v{i}.mp4"), metadata))
        responses.append(gateway_pb2.EmbedResponse(embeddings=embeddings, duration=10.0))
    return items, responses


def _report(**measured) -> dict:
    """An evaluation report with empty sections but `measured`."""
    return {"videos": 12, "copies": 0, "transforms": [], "model_versions": {}, "copy_detection": {},
            "copy_detection_by_transform": {}, "category_retrieval": {}, "clustering": {}, "originality": {},
            "regressors": [], **measured}


QUICK_KINDS = ("ridge", "author", "mean")


@pytest.fixture(scope="module")
def likes_models():
    """What evaluate measures of the likes models on 12 videos by 6 authors, comparing the quick kinds
    only: the neural ones take minutes on a busy machine (tests/integration/test_evaluate.py
    compares all seven)."""
    from reelvec.likes import estimators

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(estimators, "KINDS", QUICK_KINDS)
        return report._regressors(*_likes_videos(12))


def test_the_report_compares_every_likes_model_when_likes_are_known(likes_models):
    assert [row["model"] for row in likes_models["regressors"]] == list(QUICK_KINDS)
    chosen = likes_models["likes_validation"]
    assert chosen["model"] in {row["model"] for row in likes_models["regressors"]}
    assert "6 authors, none on both sides" in chosen["validation"]  # grouped by author, as the service does
    assert len(chosen["out_of_fold"]) == 12 and len({p["followers"] for p in chosen["out_of_fold"]}) == 12
    markdown = report.markdown(_report(**likes_models))
    assert "| author |" in markdown and "quartile accuracy" in markdown and "6 authors" in markdown


def _images(markdown: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)


def test_the_report_embeds_the_likes_plots_it_writes_beside_it(likes_models, tmp_path):
    written = report.write(_report(**likes_models), tmp_path)
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert sorted(p.name for p in written if p.suffix == ".png") == pngs
    images = _images((tmp_path / "report.md").read_text())
    assert images == ["likes-predicted-vs-actual.png", "likes-interval-coverage.png",
                      "likes-error-by-followers.png", "likes-ablations.png"]
    assert sorted(images) == pngs
    for name in images:
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.size == plots.SIZE
            assert len(image.getcolors(image.width * image.height)) > 3  # drawn on, not a blank page
    # report.json keeps what the plots draw: a replay of the folder draws them again
    assert json.loads((tmp_path / "report.json").read_text())["likes_validation"]["out_of_fold"]


@pytest.mark.parametrize("count, missing, says", [(12, 1, "1 of 12 videos have no likes"),
                                                   (4, 0, "4 videos; the likes models need at least 5")])
def test_without_likes_no_plots_and_the_report_says_why(likes_models, tmp_path, count, missing, says):
    items, responses = _likes_videos(count)
    for _, metadata in items[:missing]:
        metadata.ClearField("likes")
    measured = report._regressors(items, responses)
    assert measured["regressors"] == [] and "likes_validation" not in measured
    report.write(_report(**likes_models), tmp_path)  # an earlier run's plots in the same folder
    written = report.write(_report(**measured), tmp_path)
    assert [p.name for p in written] == ["report.json", "report.md"] and not list(tmp_path.glob("*.png"))
    markdown = (tmp_path / "report.md").read_text()
    assert says in markdown and "No likes plots." in markdown and not _images(markdown)


def test_originality_correlates_with_likes_in_the_direction_they_go():
    from reelvec.tools.evaluation import report

    rng = np.random.default_rng(3)
    alone = np.eye(12)[:4]  # nothing like them in the corpus: original
    alike = np.eye(12)[4] + 0.05 * rng.normal(size=(4, 12))  # four takes on one video: not
    corpus = np.concatenate([alone, alike])
    copies = corpus + 0.01 * rng.normal(size=corpus.shape)
    likes = [1000.0] * 4 + [10.0] * 4
    # two tiers of likes against eight distinct originality scores: 0.87 is the most Spearman can give
    for method in ("similarity", "knn"):
        assert report._originality(corpus, copies, likes)[method]["spearman_with_likes"] > 0.8
        assert report._originality(corpus, copies, likes[::-1])[method]["spearman_with_likes"] < -0.8
    assert "spearman_with_likes" not in report._originality(corpus, copies, None)["similarity"]


def test_the_autoencoder_fusion_learns_and_keeps_neighbours_apart():
    from reelvec.tools.training.autoencoder import LATENT, Autoencoder

    rng = np.random.default_rng(8)
    centres = rng.normal(size=(4, 300))
    rows = np.concatenate([c + 0.3 * rng.normal(size=(15, 300)) for c in centres])
    learned = Autoencoder(rows)
    assert learned.losses[-1] < 0.5 * learned.losses[0]  # training lowered the reconstruction loss
    codes = learned.encode(rows)
    assert codes.shape == (60, LATENT)
    sims = metrics.similarities(codes, codes)
    np.fill_diagonal(sims, -np.inf)
    same_cluster = np.argmax(sims, axis=1) // 15 == np.arange(60) // 15
    assert same_cluster.mean() > 0.9  # each video's nearest code is from its own cluster


@pytest.mark.parametrize("films, corpus_clips, unrelated_clips, story_end", [
    (real_media.HELDOUT["bbb"], 16, 6, {"bbb": 480}),  # titles and credits left out
    (real_media.HELDOUT["debian"], 11, 6, {"ccfilm": 148, "freecol": 77, "fillets": 73}),
    # each cutscene a film of its own, cut whole; the end: the video's last frame (tree: before the hand)
    (real_media.HELDOUT["third"], 12, 5, {
        "blupiplay101": 6.49, "blupiplay103": 11.88, "blupiplay105": 8.89, "blupiplay107": 7.07,
        "blupiplay108": 6.9, "blupiplay110": 7.93, "blupiplay116": 7.9, "blupiplay118": 7.57,
        "blupiplay119": 5.93, "blupiplay124": 7.9, "blupihistory2": 11.88, "blupiwin005": 17.43,
        "blupiwin129": 12.88, "vtest": 79.5, "tree": 24.0, "gnomehelp": 37.1}),
])
def test_the_held_out_clips_are_disjoint_moments_of_their_films(films, corpus_clips, unrelated_clips, story_end):
    spans = {name: span for film in films for name, span in film.spans().items()}
    corpus = [span for name, span in spans.items() if "-corpus-" in name]
    unrelated = [span for name, span in spans.items() if "-unrelated-" in name]
    assert len(corpus) == corpus_clips and len(unrelated) == unrelated_clips
    for film in films:
        ordered = sorted(film.spans().values())
        # no two clips share a second, and each is gap_s from the next: no shot runs from one into another
        assert all(later[0] - earlier[1] >= film.gap_s for earlier, later in zip(ordered, ordered[1:]))
        assert ordered[0][0] >= 0 and ordered[-1][1] <= story_end[film.name]
    # every unrelated clip is long enough to be a partial copy's filler on both sides
    assert all(end - start >= 2 * transforms.FILLER_S for start, end in unrelated)


def test_a_film_whose_stills_leave_empty_slots_is_cut_at_its_real_pace(tmp_path):
    from fractions import Fraction

    # an AVI at 15 fps that holds a frame at 0, 1/15, 1, 16/15 and 8/3 s, like OpenCV's tree.avi
    film = tmp_path / "sparse.avi"
    with av.open(str(film), "w") as container:
        stream = container.add_stream("mpeg4", rate=15)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for level, pts in zip((20, 60, 100, 140, 180), (0, 1, 15, 16, 40)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), level, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 15)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())

    def levels(fill_gaps):
        target = tmp_path / f"clip-{fill_gaps}.mp4"
        real_media._cut(film, 0.4, 2.4, None, target, fill_gaps)
        with av.open(str(target)) as clip:
            return [frame.to_ndarray(format="rgb24").mean() for frame in clip.decode(video=0)]

    filled = levels(True)
    # 2 s at 15 fps: whatever frame was showing at each slot, the one at 1/15 s until 1 s
    assert len(filled) == 30
    assert filled[:9] == pytest.approx([60] * 9, abs=3) and filled[9] == pytest.approx(100, abs=3)
    assert filled[10:] == pytest.approx([140] * 20, abs=3)
    assert len(levels(False)) == 2  # frame for frame, as the sets measured before are cut


def test_the_users_unrelated_videos_are_the_negatives_and_the_partial_copies_filler(clip, tmp_path):
    from reelvec.tools.evaluation import report
    from reelvec.tools.progress import Progress

    own = [transforms.generated(tmp_path / f"own-{seed}.mp4", seed, 2 * transforms.FILLER_S) for seed in (102, 107)]
    work = tmp_path / "work"
    work.mkdir()
    made, about = report._partial_and_unrelated([clip, clip, clip], own, work, Progress())
    assert [q.kind for q in about] == [copy_methods.PARTIAL] * 3 + [copy_methods.UNRELATED] * 2
    assert made[3:] == own and not list(work.glob("unrelated-*")) and not (work / "filler.mp4").exists()
    # the filler goes round the user's videos: the first and third partial copies open on own[0]
    opening = [_frame_at(path, 1.0) for path in (made[0], made[1], made[2])]
    assert np.abs(opening[0] - opening[2]).mean() < 0.3 * np.abs(opening[0] - opening[1]).mean()
