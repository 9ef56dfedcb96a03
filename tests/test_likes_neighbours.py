"""The similar posts' likes (reelvec/likes/neighbours.py): which posts a post sees and how their likes
are weighed. The search service's side of the same rule is tested against `column` in
tests/test_search_service.py; what the column is worth on real posts, in docs/regressor.md."""

import numpy as np
import pytest

from reelvec.likes import features, model, neighbours
from reelvec.v1 import common_pb2


def test_a_post_sees_only_strictly_older_posts_and_never_itself():
    vectors = np.ones((5, 3))  # all alike: only the times choose
    times = np.asarray([100, 200, 200, 0, 300])
    log_likes = np.asarray([1.0, 2.0, 3.0, 4.0, 5.0])
    values = neighbours.column(vectors, log_likes, times, fallback=9.0)
    # post 0 has nothing older; 1 and 2 (the same second) see post 0 only; post 3's time is
    # unknown, so it sees every other post; post 4 sees 0, 1 and 2 but not the unknown-time post 3
    assert values.tolist() == pytest.approx([9.0, 1.0, 1.0, np.mean([1, 2, 3, 5]), 2.0])


def test_nearer_posts_weigh_more_and_opposite_ones_not_at_all():
    query = np.asarray([[1.0, 0.0]])
    others = np.asarray([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])  # cosines 1, 0.707, -1
    vectors = np.vstack([others, query])
    values = neighbours.column(vectors, np.asarray([2.0, 6.0, 100.0, 0.0]), np.asarray([1, 2, 3, 4]), fallback=0.0)
    assert values[3] == pytest.approx((1.0 * 2 + 0.7071 * 6) / 1.7071, abs=1e-3)
    assert neighbours.weighted([-0.2, 0.0], [5.0, 7.0], fallback=3.0) == 3.0


def test_only_the_k_nearest_count():
    rng = np.random.default_rng(0)
    query = rng.standard_normal(8)
    near = query + 0.01 * rng.standard_normal((3, 8))
    far = rng.standard_normal((20, 8))
    vectors = np.vstack([near, far, query])
    log_likes = np.concatenate([np.full(3, 7.0), np.zeros(20), [0.0]])
    values = neighbours.column(vectors, log_likes, np.arange(1, 25), fallback=0.0, k=3)
    assert values[-1] == pytest.approx(7.0)


def test_the_search_filter_asks_for_what_column_sees():
    video = common_pb2.VideoRecord(id="v9", metadata=common_pb2.VideoMetadata(created_at=1_700_000_000))
    found = neighbours.search_filter(video)
    assert found.likes.gte == 0 and not found.likes.HasField("lte")
    assert (found.created_at.gte, found.created_at.lte) == (1, 1_699_999_999)
    assert list(found.exclude_ids) == ["v9"]
    unknown = neighbours.search_filter(common_pb2.VideoRecord())
    assert not unknown.HasField("created_at") and not unknown.exclude_ids


def test_a_likes_model_reads_its_neighbours_and_an_older_artifact_does_not(tmp_path):
    rng = np.random.default_rng(1)
    # four topics, a, -a, b, -b: posts near a or -a get 1000x the likes of those near b or -b, authors
    # alike. No linear function of the vector tells a and -a from b and -b; their neighbours do.
    a, b = rng.standard_normal((2, features.FUSED.stop))
    topics = np.stack([a, -a, b, -b])
    rows = np.zeros((200, len(features.NAMES)))
    which = rng.integers(0, 4, 200)
    rows[:, features.FUSED] = topics[which] + 0.5 * rng.standard_normal((200, features.FUSED.stop))
    likes = np.where(which < 2, 5000, 5) * rng.uniform(0.8, 1.2, 200)
    fitted, _ = model.train(rows, likes, kind="ridge", created_at=np.arange(1, 201))
    assert fitted.reads_neighbours
    post = rows[0]
    popular = fitted.predict(post, similar=((0.9, 5000),) * 10)[0]
    quiet = fitted.predict(post, similar=((0.9, 5),) * 10)[0]
    assert popular > 3 * quiet
    path = tmp_path / "likes-model.json"
    fitted.save(path)
    assert model.LikesModel.load(path).predict(post, similar=((0.9, 5),) * 10)[0] == pytest.approx(quiet)
    # an artifact from before the column: its rows end earlier, and nothing asks search for it
    older = model.LikesModel(fitted.estimator, fitted.interval, "old", width=neighbours.COLUMN)
    assert not older.reads_neighbours
    views, _ = model.train(rows, likes, kind="ridge", created_at=np.arange(1, 201), target_name="views")
    assert not views.reads_neighbours
