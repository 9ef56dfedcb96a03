import json

import numpy as np
import pytest

from reelvec.likes import estimators, features, model, neighbours

WIDTH = len(features.NAMES)


def _data(n, rng, noise=0.3):
    """Likes driven by the author's followers (log1p) and one embedding column. The similar posts'
    column is the last, and train fills it: the draws are the same as before it existed."""
    rows = np.insert(rng.normal(size=(n, WIDTH - 1)), neighbours.COLUMN, 0.0, axis=1)
    truth = 3.0 + rows[:, features.AUTHOR.start] * 1.5 - rows[:, 0] + noise * rng.normal(size=n)
    return rows, np.expm1(np.clip(truth, 0, None))


@pytest.fixture(scope="module")
def data():
    return _data(300, np.random.default_rng(0))


# R^2 each model reached on this data under a random 25% hold-out (0.15, 0.46, 0.05, 0.40, 0.52, 0.80;
# ridge 0.10 under the 3 folds below, on 200 training videos), with a margin: ridge and the MLP cannot single out the two useful columns among 1.9k with 225 videos; the
# trees, the token transformer (the author statistics are their own token), the quartile classifier
# (quartile accuracy 0.55) and the author-only baseline can. Every one must beat the mean. The
# transformer reached 0.29 under the 3 folds below with the two track-record columns in the row
# (constant here: every video is its own author), a different initialization from the same seed,
# and 0.20 with the similar posts' likes beside them (noise here: the embeddings are random).
MIN_R2 = {"ridge": 0.05, "gbm": 0.3, "mlp": 0.03, "transformer": 0.12, "quartile": 0.3, "author": 0.6}


@pytest.mark.parametrize("kind", list(MIN_R2))
def test_each_model_beats_the_mean_and_round_trips_through_json(kind, data, tmp_path):
    rows, likes = data
    fitted, report = model.train(rows, likes, kind=kind, seed=1, folds=3)
    # every video predicted once out of fold, and the served model fitted on all of them
    assert report["test_size"] == report["train_size"] == 300 and report["model"] == kind
    assert report["folds"] == 3 and "comparison" not in report
    assert report["r2"] > MIN_R2[kind] and report["spearman"] > 0.2
    assert report["mae"] < report["baseline_mae"]
    assert report["mse"] >= report["mae"] ** 2  # mean of squares >= square of the mean
    if MIN_R2[kind] >= 0.3:  # the stronger models also beat chance at the quartile (ridge: 0.20)
        assert report["quartile_accuracy"] > 0.25
    path = tmp_path / "m.json"
    fitted.save(path)
    body = json.loads(path.read_text())
    assert body["format"] == model.FORMAT and body["estimator"]["kind"] == kind
    loaded = model.LikesModel.load(path)
    assert loaded.predict(rows[0]) == pytest.approx(fitted.predict(rows[0]))
    likes_hat, low, high = loaded.predict(rows[0])
    assert 0 <= low <= likes_hat <= high


def test_compare_measures_every_model_on_the_same_split(data):
    rows, likes = data
    _, report = model.train(rows, likes, kind="gbm", seed=1, compare=True, folds=2)
    table = {row["model"]: row for row in report["comparison"]}
    assert list(table) == list(estimators.KINDS)
    assert table["gbm"]["mae"] == report["mae"]
    assert table["mean"]["r2"] <= 0.0 < table["author"]["r2"]  # the mean explains nothing
    assert table["ridge"]["mae"] < table["mean"]["mae"]
    assert table["author"]["quartile_accuracy"] > table["mean"]["quartile_accuracy"]


def test_huber_gbm_is_its_own_model(data):
    rows, likes = data
    squared, _ = model.train(rows, likes, kind="gbm", seed=1, folds=2)
    huber, report = model.train(rows, likes, kind="gbm", huber=True, seed=1, folds=2)
    assert report["model"] == "gbm+huber" and huber.version.startswith("gbm+huber-")
    assert huber.predict(rows[0]) != squared.predict(rows[0])


def test_interval_covers_about_eighty_percent_of_new_data():
    rng = np.random.default_rng(3)
    rows, likes = _data(400, rng)
    fitted, _ = model.train(rows, likes, kind="ridge", seed=2)
    new_rows, new_likes = _data(400, rng)
    inside = [low <= y <= high for (_, low, high), y in ((fitted.predict(r), y) for r, y in zip(new_rows, new_likes))]
    assert 0.65 < np.mean(inside) < 0.95


def test_too_few_videos_or_an_unknown_model_is_an_error():
    with pytest.raises(ValueError, match="at least"):
        model.train(np.zeros((3, WIDTH)), np.ones(3))
    with pytest.raises(ValueError, match="unknown model 'forest'"):
        model.train(np.zeros((30, WIDTH)), np.ones(30), kind="forest")


def test_a_pickle_or_foreign_file_is_refused(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a"):
        model.LikesModel.load(path)


def test_a_session_one_ridge_artifact_still_loads(data, tmp_path):
    rows, likes = data
    # session 1 rows had no history columns (nor the similar posts' likes after them)
    first = len(features.NAMES) - len(features.HISTORY + features.NEIGHBOURS)
    fitted = estimators.make("ridge").fit(rows[:, :first], np.log1p(likes), np.random.default_rng(1))
    state = fitted.to_json()
    legacy = {"format": model.LEGACY_FORMAT, "version": "ridge-old", "residual_low": -0.1, "residual_high": 0.1,
              **{k: state[k] for k in ("alpha", "target_mean", "target_scale", "feature_mean", "feature_scale", "weights")}}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(legacy))
    expected = np.expm1(fitted.predict_log(rows[:1, :first])[0])
    assert model.LikesModel.load(path).predict(rows[0])[0] == pytest.approx(expected)


def test_primal_and_dual_ridge_agree():
    rng = np.random.default_rng(4)
    for n, d in ((30, 80), (200, 40)):  # fewer videos than features, and more
        z, y = rng.normal(size=(n, d)), rng.normal(size=n)
        dual = z.T @ np.linalg.solve(z @ z.T + 3.0 * np.eye(n), y)
        primal = np.linalg.solve(z.T @ z + 3.0 * np.eye(d), z.T @ y)
        assert np.allclose(dual, primal)
        assert np.allclose(estimators._ridge(z, y, 3.0), primal)


def test_the_model_name_says_when_huber_trained_it():
    assert [estimators.make(k, huber=True).name for k in estimators.KINDS] == [
        "ridge", "gbm+huber", "mlp+huber", "transformer+huber", "quartile", "author", "mean"]
    assert estimators.make("gbm").name == "gbm"
