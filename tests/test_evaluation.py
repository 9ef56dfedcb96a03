"""The evaluation's measures on hand-made vectors, and its copy transforms on real video."""

import json
from pathlib import Path

import av
import numpy as np
import pytest

from reelvec import media, samples
from reelvec.tools.evaluation import metrics, transforms


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
    expected_duration = {"trim": 0.6, "speed": 1 / transforms.SPEED}.get(kind, 1.0) * source.duration
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


def test_the_report_compares_every_likes_model_when_likes_are_known():
    from reelvec import modalities
    from reelvec.tools.evaluation import report
    from reelvec.v1 import common_pb2, gateway_pb2

    rng = np.random.default_rng(6)
    items, responses, likes = [], [], []
    for i in range(12):
        followers = int(10 ** rng.uniform(2, 6))
        metadata = common_pb2.VideoMetadata(id=f"v{i}", likes=followers // 20,
                                            author=common_pb2.AuthorStats(followers=followers, videos=10))
        # the regressor's features are the weighted concatenation of these, whatever the served fusion
        embeddings = common_pb2.Embeddings(vectors={
            name: common_pb2.Vector(values=rng.normal(size=dim).tolist()) for name, dim in modalities.SOURCES.items()
        })
        items.append((Path(f"v{i}.mp4"), metadata))
        responses.append(gateway_pb2.EmbedResponse(embeddings=embeddings, duration=10.0))
        likes.append(float(metadata.likes))
    table = report._regressors(items, responses, likes)
    assert [row["model"] for row in table] == ["ridge", "gbm", "mlp", "transformer", "quartile", "author", "mean"]
    assert report._regressors(items, responses, None) == []
    markdown = report.markdown({"videos": 12, "copies": 0, "transforms": [], "model_versions": {},
                                "copy_detection": {}, "copy_detection_by_transform": {}, "category_retrieval": {},
                                "clustering": {}, "originality": {}, "regressors": table})
    assert "| transformer |" in markdown and "quartile accuracy" in markdown


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
