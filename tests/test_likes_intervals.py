"""Mechanics of the conditional 80% interval (reelvec/likes/intervals.py) on synthetic residuals whose
spread is set by one author column: the band must follow it. Coverage on real posts is in
tests/test_real_posts.py and docs/regressor.md."""

import json

import numpy as np
import pytest

from reelvec.likes import features, intervals, model, validation

WIDTH = len(features.NAMES)


def _heteroscedastic(n, rng):
    """Rows whose residual's scale grows fourfold with log1p(followers)."""
    rows = np.zeros((n, WIDTH))
    rows[:, features.FOLLOWERS] = rng.uniform(0, 10, n)
    sigma = 0.5 * np.exp(0.14 * rows[:, features.FOLLOWERS])
    centre = rng.normal(3, 1, n)
    return rows, centre, sigma * rng.normal(size=n)


def _inside(interval, rows, centre, residuals):
    low, high = interval.offsets(rows, centre)
    return (residuals >= low) & (residuals <= high), high - low


def test_the_band_follows_the_spread_and_covers_each_part_of_the_posts():
    rng = np.random.default_rng(0)
    fitted = intervals.Interval.calibrate(*_heteroscedastic(2000, rng))
    constant = intervals.Interval.calibrate(*_heteroscedastic(2000, rng), conditional=False)
    rows, centre, residuals = _heteroscedastic(4000, rng)
    quiet = rows[:, features.FOLLOWERS] < 3
    inside, width = _inside(fitted, rows, centre, residuals)
    assert np.median(width[quiet]) < 0.7 * np.median(width[~quiet])  # true sigmas: 0.62 vs 1.24
    assert 0.75 < inside[quiet].mean() < 0.85 and 0.75 < inside[~quiet].mean() < 0.85
    # the same band for everyone covers the quiet posts too often and the noisy ones too rarely
    flat, _ = _inside(constant, rows, centre, residuals)
    assert flat[quiet].mean() > 0.9 and flat[rows[:, features.FOLLOWERS] > 7].mean() < 0.75


def test_an_odd_post_gets_a_band_within_the_widths_seen_in_calibration():
    rng = np.random.default_rng(1)
    rows, centre, residuals = _heteroscedastic(500, rng)
    fitted = intervals.Interval.calibrate(rows, centre, residuals)
    odd = np.zeros((2, WIDTH))
    odd[:, features.FOLLOWERS] = [-1e6, 1e6]
    sigma = fitted.spread(odd, np.array([3.0, 3.0]))
    assert fitted.spread.low <= sigma.min() and sigma.max() <= fitted.spread.high
    assert np.all(np.isfinite(sigma)) and sigma.min() > 0


def test_cross_check_calibrates_each_fold_without_its_own_residuals():
    rng = np.random.default_rng(2)
    rows, centre, residuals = _heteroscedastic(600, rng)
    splits = validation.author_folds(np.arange(600) % 60)
    inside, width = intervals.cross_check(rows, centre, residuals, splits)
    assert 0.72 < inside.mean() < 0.88 and width.min() > 0
    # a wild residual in one fold changes no other post's verdict in that fold
    moved = residuals.copy()
    moved[splits[0].test[0]] = 1e6
    again, width_again = intervals.cross_check(rows, centre, moved, splits)
    rest = splits[0].test[1:]
    assert np.array_equal(again[rest], inside[rest]) and np.allclose(width_again[rest], width[rest])
    thirds = intervals.by_tercile(rows[:, features.FOLLOWERS], inside, width)
    assert [t["posts"] for t in thirds] == [200, 200, 200]
    assert thirds[0]["ratio"] < thirds[2]["ratio"]


def test_newer_posts_missed_differently_pull_the_band_their_way():
    """The time hold-out's posts (a fit on older posts predicting newer ones) over-predicted by
    about 1.5: the band calibrated with them reaches that far down for a share of the posts that
    the author folds alone leave out, and stays the author folds' band without them."""
    rng = np.random.default_rng(3)
    rows, centre, residuals = _heteroscedastic(1500, rng)
    newer_rows, newer_centre, newer_residuals = _heteroscedastic(300, rng)
    newer_residuals = newer_residuals - 1.5
    alone = intervals.Interval.calibrate(rows, centre, residuals)
    both = intervals.Interval.calibrate(rows, centre, residuals, forward=(newer_rows, newer_centre, newer_residuals))
    assert both.score_low < alone.score_low - 0.5 and abs(both.score_high - alone.score_high) < 0.5
    empty = intervals.Interval.calibrate(rows, centre, residuals, forward=(rows[:0], centre[:0], residuals[:0]))
    assert (empty.score_low, empty.score_high) == (alone.score_low, alone.score_high)
    # on new posts that are missed like the hold-out's, the pooled band covers near its level
    later_rows, later_centre, later_residuals = _heteroscedastic(4000, rng)
    later_residuals = later_residuals - 1.5
    assert _inside(alone, later_rows, later_centre, later_residuals)[0].mean() < 0.6
    assert _inside(both, later_rows, later_centre, later_residuals)[0].mean() > 0.6
    # the author folds' check leaves a fold's own hold-out posts out of its calibration
    splits = validation.author_folds(np.arange(1500) % 150)
    index = np.arange(1200, 1500)
    held = (index, centre[index], residuals[index] - 1.5)
    inside, _ = intervals.cross_check(rows, centre, residuals, splits, forward=held)
    moved = (index, centre[index], held[2].copy())
    first = np.flatnonzero(np.isin(index, splits[0].test))[0]
    moved[2][first] = 1e6
    again, _ = intervals.cross_check(rows, centre, residuals, splits, forward=moved)
    assert np.array_equal(again[splits[0].test], inside[splits[0].test])


def test_the_interval_survives_the_json_artifact(tmp_path):
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(120, WIDTH))
    rows[:, features.FOLLOWERS] = rng.uniform(0, 10, 120)
    likes = np.expm1(np.clip(1 + rows[:, features.FOLLOWERS] * (1 + 0.3 * rng.normal(size=120)), 0, 30))
    fitted, _ = model.train(rows, likes, kind="author", seed=1)
    assert fitted.interval.spread is not None
    path = tmp_path / "m.json"
    fitted.save(path)
    assert json.loads(path.read_text())["format"] == model.FORMAT
    loaded = model.LikesModel.load(path)
    for row in rows[:5]:
        assert loaded.predict(row) == pytest.approx(fitted.predict(row))
        likes_hat, low, high = loaded.predict(row)
        assert low <= likes_hat <= high


def test_a_constant_band_artifact_still_loads(tmp_path):
    rng = np.random.default_rng(4)
    rows = rng.normal(size=(60, WIDTH))
    fitted, _ = model.train(rows, np.expm1(rng.uniform(0, 5, 60)), kind="mean")
    path = tmp_path / "v2.json"
    path.write_text(json.dumps({"format": model.CONSTANT_FORMAT, "version": "mean-old", "residual_low": -1.0,
                                "residual_high": 2.0, "estimator": fitted.estimator.to_json()}))
    centre = fitted.estimator.target_mean
    likes_hat, low, high = model.LikesModel.load(path).predict(rows[0])
    assert (low, high) == pytest.approx((np.expm1(centre - 1.0), np.expm1(centre + 2.0)))


def test_too_few_residuals_give_one_band_for_every_post():
    rng = np.random.default_rng(5)
    rows, centre, residuals = _heteroscedastic(intervals.MIN_SPREAD - 1, rng)
    fitted = intervals.Interval.calibrate(rows, centre, residuals)
    assert fitted.spread is None
    low, high = fitted.offsets(rows, centre)
    assert np.ptp(low) == 0 and np.ptp(high) == 0 and high[0] > low[0]
