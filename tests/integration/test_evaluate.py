"""`reelvec evaluate` against the real stack: transformed copies embedded through the gateway."""

import json

import pytest

pytestmark = pytest.mark.integration

LABELED = {"bigbuckbunny": "footage", "bikes": "footage", "food_0": "talk", "travel_0": "talk"}
KINDS = ("hflip", "low_bitrate", "audio_replaced")


def test_evaluate_finds_the_originals_of_transformed_copies(stack, corpus, tmp_path):
    entries = [json.loads(line) for line in corpus.read_text().splitlines()]
    manifest = tmp_path / "labeled.jsonl"
    manifest.write_text("".join(
        json.dumps({**e, "path": str(corpus.parent / e["path"]), "label": LABELED[e["id"]]}) + "\n"
        for e in entries if e["id"] in LABELED
    ))
    out = tmp_path / "report"
    result = stack.cli("evaluate", "--manifest", str(manifest), "--transforms", ",".join(KINDS),
                       "--out", str(out), "--clip3d-steps", "5", "--json")
    report = json.loads(result.stdout)
    assert report == json.loads((out / "report.json").read_text())
    assert (report["videos"], report["copies"]) == (4, 12)
    assert {"visual", "whisper", "text"} <= set(report["model_versions"])
    fused = report["copy_detection"]["fused (served)"]
    assert fused["recall@1"] >= 0.75 and fused["micro_ap"] >= 0.75
    # a new soundtrack leaves the picture: the visual vector still finds every original
    assert report["copy_detection_by_transform"]["visual"]["audio_replaced"] == 1.0
    assert set(report["category_retrieval"]["visual"]) == {"precision@3", "map"}
    assert set(report["originality"]) == {"similarity", "knn", "isolation_forest", "lof"}
    for method in ("similarity", "knn"):  # a copy sits next to its original: less original
        scored = report["originality"][method]
        assert scored["copies_mean"] < scored["originals_mean"]
        assert -1.0 <= scored["spearman_with_likes"] <= 1.0  # the sample manifest has likes
    assert report["regressors"] == []  # 4 videos: too few to hold any out
    markdown = (out / "report.md").read_text()
    assert "## Copy detection" in markdown and "| fused (served) |" in markdown
    for name in ("fused (served)", "visual", "audio", "text", "concat (unweighted)", "pca-3 of concat",
                 "autoencoder-256 of concat", "3d-conv clips (SimCLR from scratch)"):
        assert 0.0 <= report["copy_detection"][name]["recall@1"] <= 1.0


def test_evaluate_refuses_an_unknown_transform(stack):
    result = stack.cli("evaluate", "--transforms", "hflip,mirror", check=False)
    assert result.returncode == 2 and "unknown transform mirror" in result.stderr
