"""Mechanics of the author's track record (reelvec/likes/history.py): a post sees only its author's
other, older posts, in training as in serving. Its measured effect on real posts is in
docs/regressor.md."""

import numpy as np
import pytest

from reelvec.likes import features, history, model

WIDTH = len(features.NAMES)
POSTS, MEAN = history.COLUMNS


def test_a_post_sees_only_its_authors_older_posts_never_its_own_label():
    ids = np.array(["p1", "p2", "p3", "q1", "p4"])
    authors = np.array(["a", "a", "a", "b", "a"])
    created = np.array([10, 20, 30, 20, 0])  # p4: time unknown
    target = np.array([1.0, 2.0, 9.0, 5.0, 4.0])
    record = history.History.build(ids, authors, created, target)
    rows = record.fill(np.zeros((5, WIDTH)), ids, authors, created)
    # the author's first post: the mean of all posts, the same for every post without a record
    assert rows[0, POSTS] == 0 and rows[0, MEAN] == pytest.approx(target.mean())
    assert rows[1, POSTS] == pytest.approx(np.log1p(1)) and rows[1, MEAN] == pytest.approx(1.0)
    assert rows[2, MEAN] == pytest.approx(1.5)  # not its own 9
    assert rows[3, POSTS] == 0 and rows[3, MEAN] == rows[0, MEAN]  # another author's posts never count
    # a post of unknown time sees every other post of its author, with a time or not
    assert rows[4, POSTS] == pytest.approx(np.log1p(3)) and rows[4, MEAN] == pytest.approx(4.0)
    assert not rows[:, : features.AUTHOR.start].any()  # no other column touched


def _authors(rng, n_authors=40, per_author=6):
    """Likes set by a hidden author level that no author statistic shows: only the track record can."""
    groups = np.repeat([f"a{i}" for i in range(n_authors)], per_author)
    level = np.repeat(rng.normal(0, 2, n_authors), per_author)
    created = np.tile(np.arange(1, per_author + 1) * 1000, n_authors)
    rows = rng.normal(size=(len(groups), WIDTH))
    rows[:, history.COLUMNS] = rng.normal(size=(len(groups), len(history.COLUMNS)))  # whatever the caller put there
    likes = np.expm1(np.clip(5 + level + 0.3 * rng.normal(size=len(groups)), 0, None))
    return rows, likes, groups, created


def test_training_fills_the_track_record_and_serving_reads_it_from_the_artifact(tmp_path):
    rng = np.random.default_rng(0)
    rows, likes, groups, created = _authors(rng)
    fitted, report = model.train(rows, likes, kind="gbm", groups=groups, created_at=created, seed=1)
    # under author folds the model never saw the author, yet the older posts' likes place it (no
    # column but the track record shows the level: R^2 would be about 0 without it; each author's
    # first post has no record)
    assert report["r2"] > 0.2
    path = tmp_path / "m.json"
    fitted.save(path)
    loaded = model.LikesModel.load(path)
    star, quiet = groups[np.argmax(likes)], groups[np.argmin(likes)]
    later = int(created.max()) + 1
    new = rows[0].copy()
    assert loaded.predict(new, star, "new", later)[0] > 3 * loaded.predict(new, quiet, "new", later)[0]
    assert loaded.predict(new, star, "new", later) == pytest.approx(fitted.predict(new, star, "new", later))
    # a stranger reads as no history, whatever the row carried there, and lands between the two
    stranger = loaded.predict(new, "nobody", "new", later)
    odd = new.copy()
    odd[history.COLUMNS] = [9.0, -9.0]
    assert stranger == pytest.approx(loaded.predict(odd))
    assert loaded.predict(new, quiet, "new", later)[0] < stranger[0] < loaded.predict(new, star, "new", later)[0]


def test_an_indexed_post_does_not_see_its_own_likes_when_served(tmp_path):
    rng = np.random.default_rng(1)
    rows, likes, groups, created = _authors(rng, n_authors=10)
    fitted, _ = model.train(rows, likes, kind="ridge", groups=groups, created_at=created, seed=1)
    filled = fitted.track_record.fill(rows[:1], ["0"], [groups[0]], [0])  # time unknown: every other post
    others = np.log1p(likes[1:6])
    assert filled[0, history.COLUMNS[1]] == pytest.approx(others.mean())
