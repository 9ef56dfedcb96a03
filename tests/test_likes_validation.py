"""Mechanics of the likes models' validation (reelvec/likes/validation.py) and of the default choice,
on synthetic rows: they test what the code does, never how accurate it is (tests/test_real_posts.py)."""

import numpy as np
import pytest

from reelvec.likes import features, model, validation

WIDTH = len(features.NAMES)


def test_author_folds_keep_every_author_on_one_side_and_stay_balanced():
    rng = np.random.default_rng(0)
    # one prolific author and a long tail, as real platforms have
    groups = np.concatenate([np.full(120, "star"), rng.integers(0, 300, 600).astype(str)])
    splits = validation.author_folds(groups, folds=5, seed=3)
    assert len(splits) == 5
    tested = np.concatenate([s.test for s in splits])
    assert sorted(tested) == list(range(len(groups)))  # each row tested exactly once
    for split in splits:
        assert not set(groups[split.train]) & set(groups[split.test])
        assert len(split.train) + len(split.test) == len(groups)
    sizes = [len(s.test) for s in splits]
    assert max(sizes) - min(sizes) <= 120  # the star's fold is no bigger than the star alone makes it


def test_fewer_authors_than_folds_gives_one_fold_per_author():
    splits = validation.author_folds(np.array(list("aabbbc")), folds=5)
    assert len(splits) == 3
    with pytest.raises(ValueError, match="2 authors"):
        validation.author_folds(np.array(["a"] * 6))


def test_the_time_hold_out_tests_only_posts_newer_than_every_training_post():
    created = np.array([50, 10, 0, 40, 30, 30, 20, 60, 70, 70, 80, 0, 15, 25, 35, 45])  # 0: unknown
    split = validation.time_holdout(created, test_fraction=0.4)
    assert created[split.test].min() > created[split.train].max()
    assert 0 not in created[split.train] and 0 not in created[split.test]
    assert validation.time_holdout(np.zeros(20, int), 0.2) is None  # no time known
    assert validation.time_holdout(np.arange(1, 8), 0.2) is None  # too few posts for both sides


def _authored(n_authors=40, per_author=6, seed=0):
    """Likes set by each author's level (hidden, partly seen through followers) and one embedding column."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_authors).astype(str), per_author)
    level = rng.normal(size=n_authors)[groups.astype(int)]
    rows = rng.normal(size=(len(groups), WIDTH))
    rows[:, features.AUTHOR.start] = level + 0.3 * rng.normal(size=len(groups))
    truth = 3.0 + 1.5 * level - 0.5 * rows[:, 0] + 0.3 * rng.normal(size=len(groups))
    created = 1_700_000_000 + rng.permutation(len(groups)) * 3600
    return rows, np.expm1(np.clip(truth, 0, None)), groups, created


def test_the_default_choice_serves_the_best_measured_model_and_reports_the_table():
    rows, likes, groups, created = _authored()
    kinds = ("ridge", "gbm", "author", "mean")  # the neural kinds cost minutes: their mechanics are the same
    fitted, report = model.train(rows, likes, groups=groups, created_at=created, folds=3, kinds=kinds)
    table = {row["model"]: row for row in report["comparison"]}
    newest = {row["model"]: row for row in report["time_holdout"]}
    assert list(table) == list(newest) == list(kinds)

    def selection(kind):
        return (table[kind]["r2"] + newest[kind]["r2"]) / 2

    assert report["model"] == max(kinds, key=selection)
    assert fitted.version.startswith(report["model"] + "-")
    assert report["r2"] == table[report["model"]]["r2"] > table["mean"]["r2"]
    assert report["baseline_mae"] == table["mean"]["mae"]
    assert "40 authors" in report["validation"] and "time hold-out" in report["validation"]
    assert [a["features"] for a in report["ablations"]] == list(features.ABLATIONS)
    assert {a["model"] for a in report["ablations"]} == {report["model"]}
    assert report["ablations"][-1]["r2"] == report["r2"]  # every column: the served model itself
    assert 0.0 < report["interval_coverage"] <= 1.0 and report["interval_ratio"] > 1.0


def test_a_forced_model_is_served_and_measured_alone():
    rows, likes, groups, created = _authored()
    fitted, report = model.train(rows, likes, kind="ridge", groups=groups, created_at=created)
    assert report["model"] == "ridge" and fitted.estimator.kind == "ridge"
    assert "comparison" not in report and "ablations" not in report
    assert {row["model"] for row in report["time_holdout"]} == {"ridge", "mean"}


def test_one_author_falls_back_to_holding_out_posts():
    rows, likes, _, _ = _authored()
    _, report = model.train(rows, likes, kind="author", groups=np.full(len(rows), "me"))
    assert "one author" in report["validation"] and report["folds"] == 5


def test_the_default_choice_leaves_the_slow_kinds_to_compare():
    rows, likes, groups, _ = _authored(n_authors=12, per_author=4)
    _, chosen = model.train(rows, likes, groups=groups, folds=2)
    assert {row["model"] for row in chosen["comparison"]} == set(model.CHOICE)
    assert not {"mlp", "transformer"} & set(model.CHOICE)


def test_a_video_without_an_author_is_a_group_of_its_own():
    groups = [validation.author_group(author, video) for author, video in [("a", "1"), ("a", "2"), ("", "3"), ("", "4")]]
    assert groups[0] == groups[1] == "a"
    assert len({groups[2], groups[3], "a"}) == 3  # two unknown authors never share a fold group
