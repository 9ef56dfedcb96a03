import numpy as np
import pytest

from services.regressor import model


def _data(n, rng, noise=0.3):
    rows = rng.normal(size=(n, 40))
    truth = 3.0 + rows[:, 0] * 1.5 - rows[:, 1] + noise * rng.normal(size=n)
    return rows, np.expm1(np.clip(truth, 0, None))


def test_training_beats_the_mean_and_round_trips_through_json(tmp_path):
    rng = np.random.default_rng(0)
    rows, likes = _data(200, rng)
    fitted, report = model.train(rows, likes, test_fraction=0.25, seed=1)
    assert report["test_size"] == 50 and report["train_size"] == 150
    assert report["r2"] > 0.6
    assert report["mae"] < 0.6 * report["baseline_mae"]
    assert report["spearman"] > 0.8
    path = tmp_path / "m.json"
    fitted.save(path)
    loaded = model.LikesModel.load(path)
    likes_hat, low, high = loaded.predict(rows[0])
    assert (likes_hat, low, high) == fitted.predict(rows[0])
    assert 0 <= low <= likes_hat <= high


def test_interval_covers_about_eighty_percent_of_new_data():
    rng = np.random.default_rng(3)
    rows, likes = _data(400, rng)
    fitted, _ = model.train(rows, likes, test_fraction=0.5, seed=2)
    new_rows, new_likes = _data(400, rng)
    inside = [low <= y <= high for (_, low, high), y in ((fitted.predict(r), y) for r, y in zip(new_rows, new_likes))]
    assert 0.65 < np.mean(inside) < 0.95


def test_too_few_videos_is_an_error():
    with pytest.raises(ValueError, match="at least"):
        model.train(np.zeros((3, 4)), np.ones(3))


def test_a_pickle_or_foreign_file_is_refused(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a"):
        model.LikesModel.load(path)


def test_primal_and_dual_ridge_agree():
    from services.regressor.model import _ridge

    rng = np.random.default_rng(4)
    for n, d in ((30, 80), (200, 40)):  # fewer videos than features, and more
        z, y = rng.normal(size=(n, d)), rng.normal(size=n)
        dual = z.T @ np.linalg.solve(z @ z.T + 3.0 * np.eye(n), y)
        primal = np.linalg.solve(z.T @ z + 3.0 * np.eye(d), z.T @ y)
        assert np.allclose(dual, primal)
        assert np.allclose(_ridge(z, y, 3.0), primal)
