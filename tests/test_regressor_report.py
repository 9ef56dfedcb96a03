"""`reelvec train regressor --out DIR` end to end without a stack: the regressor service trains on
videos from a stand-in search, its TrainReport carries every video's out-of-fold prediction, and
the command, given that report by a stand-in gateway, writes report.md beside the PNGs it shows."""

import asyncio
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from test_likes_service import _Search, _video

from reelvec.likes import model
from reelvec.tools import cli, client, plots
from reelvec.tools.training import regressor_report
from reelvec.v1 import regressor_pb2
from services.regressor import server


@pytest.fixture
def trained(tmp_path, monkeypatch):
    """(TrainReport of the default choice, the videos' log1p(likes)) on 30 authors of 6 posts each."""
    monkeypatch.setattr(model, "CHOICE", ("ridge", "author", "mean"))  # gbm and quartile: slower, same report
    rng = np.random.default_rng(1)
    levels = {f"a{i}": rng.uniform(1, 9) for i in range(30)}
    videos = [_video(i, author, int(np.expm1(level + rng.normal(0, 0.5))), 1000 * (1 + i // 30), rng)
              for i, (author, level) in enumerate(list(levels.items()) * 6)]
    for video in videos:  # bigger accounts get more likes, so that author size means something
        video.metadata.author.followers = int(np.expm1(levels[video.metadata.author.id] + 2))

    async def train():
        service = server.Regressor(server.Settings(data_dir=str(tmp_path / "data"), page_size=64))
        service.search = _Search(videos)
        return await service.Train(regressor_pb2.TrainRequest(), None)

    return asyncio.run(train()), np.log1p([v.metadata.likes for v in videos])


@pytest.fixture
def run(monkeypatch, capsys):
    """`reelvec ARGS... --json` against a gateway answering TrainRegressor with `report`: (code, output)."""

    def run(report, *argv):
        gateway = SimpleNamespace(TrainRegressor=lambda request, timeout=None: report)
        monkeypatch.setattr(client, "connect", lambda address, api_key=None: gateway)
        code = cli.main([*argv, "--json"])
        return code, json.loads(capsys.readouterr().out)

    return run


def test_the_report_carries_every_videos_out_of_fold_prediction(trained):
    report, actual = trained
    posts = report.out_of_fold
    assert len(posts) == report.train_size == len(actual)
    assert np.allclose(sorted(p.actual for p in posts), sorted(actual))
    assert np.mean([p.inside for p in posts]) == pytest.approx(report.interval_coverage)
    assert len({p.followers for p in posts}) > 10 and all(p.followers > 0 for p in posts)
    assert np.corrcoef([p.actual for p in posts], [p.predicted for p in posts])[0, 1] > 0.5


def test_out_writes_report_md_beside_the_plots_it_shows(trained, run, tmp_path):
    report, _ = trained
    code, printed = run(report, "train", "regressor", "--out", str(tmp_path / "out"))
    assert code == 0 and "out_of_fold" not in printed  # per video: for the plots, not the terminal
    markdown = Path(printed["report"]).read_text()
    assert Path(printed["report"]) == tmp_path / "out" / "report.md"
    assert report.model_version in markdown and "Spearman" in markdown  # the printed summary
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert images == ["predicted-vs-actual.png", "interval-coverage.png", "error-by-followers.png", "ablations.png"]
    for name in images:
        with Image.open(tmp_path / "out" / name) as image:
            assert image.format == "PNG" and image.size == plots.SIZE
            assert len(image.getcolors(image.width * image.height)) > 3  # drawn on, not a blank page


def test_without_out_nothing_is_written(trained, run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, printed = run(trained[0], "train", "regressor")
    assert code == 0 and "report" not in printed and "out_of_fold" not in printed
    assert not list(tmp_path.glob("**/*.png")) and not list(tmp_path.glob("**/report.md"))
    # the stand-in videos carry no views: no views model, and the report says why
    assert "views" not in printed and "views" in printed["views_skipped"]


def test_the_summary_names_the_views_model_or_why_there_is_none(trained, monkeypatch, capsys):
    report = trained[0]
    with_views = regressor_pb2.TrainReport()
    with_views.CopyFrom(report)
    with_views.views.CopyFrom(report)
    with_views.views.model_version = "ridge-views"
    with_views.ClearField("views_skipped")
    for answer, says in ((with_views, ["views: trained ridge-views", "in log1p(views)"]),
                         (report, ["no views model: need at least 5 indexed videos with views, found 0"])):
        gateway = SimpleNamespace(TrainRegressor=lambda request, timeout=None, answer=answer: answer)
        monkeypatch.setattr(client, "connect", lambda address, api_key=None, gateway=gateway: gateway)
        assert cli.main(["train", "regressor"]) == 0
        printed = capsys.readouterr().out
        assert all(part in printed for part in says) and "in log1p(likes)" in printed


def test_without_author_statistics_or_ablations_only_the_plots_with_something_to_show(tmp_path):
    rng = np.random.default_rng(2)
    posts = [{"actual": float(a), "predicted": float(a + rng.normal()), "inside": bool(i), "followers": 0.0}
             for a, i in zip(rng.uniform(0, 8, 60), rng.random(60) < 0.8)]
    (tmp_path / "error-by-followers.png").write_bytes(b"an earlier run's")
    sections = regressor_report.draw({"out_of_fold": posts, "ablations": []}, tmp_path)
    assert [image for _, image, _ in sections] == ["predicted-vs-actual.png", "interval-coverage.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["interval-coverage.png", "predicted-vs-actual.png"]
    assert regressor_report.draw({}, tmp_path) == [] and not list(tmp_path.iterdir())
