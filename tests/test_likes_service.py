"""The regressor service's glue (services/regressor/server.py) without a stack: Train reads the
indexed videos (author, time, id) from a stand-in search, Predict fills the author's track record
from the trained model, and a views model serves beside the likes one when the videos carry views.
Mechanics only, on synthetic videos."""

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

from reelvec import errors, fusion, modalities
from reelvec.likes import neighbours
from reelvec.v1 import common_pb2, regressor_pb2
from services.regressor import server


def _video(i: int, author: str, likes: int, created_at: int, rng) -> common_pb2.VideoRecord:
    metadata = common_pb2.VideoMetadata(id=f"v{i}", caption="a clip", likes=likes, created_at=created_at,
                                        author=common_pb2.AuthorStats(id=author, followers=1000, videos=50))
    video = common_pb2.VideoRecord(id=f"v{i}", metadata=metadata)
    text = rng.normal(size=modalities.DIMS[modalities.TEXT])
    video.embeddings.vectors[modalities.TEXT].values.extend(text)
    # what the gateway stores beside the modality vectors
    video.embeddings.vectors[modalities.FUSED].values.extend(fusion.fuse({modalities.TEXT: text}))
    return video


class _Search:
    def __init__(self, videos):
        self.videos = videos
        self.queries = []

    async def query(self, request, timeout):
        """Exact cosine over the videos the filter leaves, as the search service's Query answers."""
        self.queries.append(request)
        f, asked = request.filter, np.asarray(request.vector.values)
        hits = []
        for video in self.videos:
            t = video.metadata.created_at
            if video.id in f.exclude_ids or (f.HasField("created_at") and not f.created_at.gte <= t <= f.created_at.lte):
                continue
            stored = np.asarray(video.embeddings.vectors[modalities.FUSED].values)
            hits.append(common_pb2.Hit(id=video.id, score=float(stored @ asked / np.linalg.norm(stored) / np.linalg.norm(asked)),
                                       video=video))
        return SimpleNamespace(hits=sorted(hits, key=lambda h: -h.score)[: request.k])

    async def scroll(self, offset, limit, with_vectors, only_with_likes):
        start = int(offset or 0)
        rest = start + limit < len(self.videos)
        return SimpleNamespace(videos=self.videos[start : start + limit], next_offset=str(start + limit) if rest else "")


def test_train_then_predict_reads_the_authors_track_record(tmp_path):
    rng = np.random.default_rng(0)
    # the same public counts for everyone: only an author's older posts tell a star from a quiet one
    levels = {f"a{i}": rng.uniform(1, 9) for i in range(30)}
    videos = [_video(i, author, int(np.expm1(level + rng.normal(0, 0.3))), 1000 * (1 + i // 30), rng)
              for i, (author, level) in enumerate(list(levels.items()) * 6)]
    star, quiet = max(levels, key=levels.get), min(levels, key=levels.get)
    queries = {author: _video(999, author, 0, 10_000, rng) for author in (star, quiet, "stranger")}

    async def run():
        # grpc.aio channels need a running loop: each service is made inside one
        service = server.Regressor(server.Settings(data_dir=str(tmp_path), page_size=50))
        service.search = _Search(videos)
        report = await service.Train(regressor_pb2.TrainRequest(model="ridge"), None)
        assert report.train_size == len(videos) and (tmp_path / "regressor" / "likes-model.json").exists()
        answers = {author: await service.Predict(regressor_pb2.RegressRequest(video=video), None)
                   for author, video in queries.items()}
        # a restarted service loads the same model, track record included
        again = server.Regressor(server.Settings(data_dir=str(tmp_path)))
        again.search = service.search
        again.load()
        return answers, await again.Predict(regressor_pb2.RegressRequest(video=queries[star]), None)

    answers, repeat = asyncio.run(run())
    assert answers[star].likes > 10 * answers[quiet].likes
    assert answers[quiet].likes < answers["stranger"].likes < answers[star].likes
    for answer in answers.values():
        assert answer.likes_low <= answer.likes <= answer.likes_high
    assert repeat.likes == answers[star].likes


def test_predict_asks_search_for_the_older_similar_posts_and_reads_their_likes(tmp_path):
    rng = np.random.default_rng(5)
    videos = [_video(i, f"a{i}", int(rng.integers(1, 1000)), 1000 + i, rng) for i in range(60)]
    query = videos[40]

    async def run():
        service = server.Regressor(server.Settings(data_dir=str(tmp_path), page_size=50))
        service.search = _Search(videos)
        await service.Train(regressor_pb2.TrainRequest(model="ridge"), None)
        assert service.search.queries == []  # training finds the neighbours itself
        asked = lambda: service.Predict(regressor_pb2.RegressRequest(video=query), None)  # noqa: E731
        first = await asked()
        request = service.search.queries[-1]
        for video in videos:  # every post the search could answer becomes 100x as liked
            video.metadata.likes *= 100
        return request, first, await asked()

    request, first, liked = asyncio.run(run())
    assert request.modality == common_pb2.MODALITY_FUSED and request.k == neighbours.K and request.with_payload
    assert list(request.filter.exclude_ids) == ["v40"] and request.filter.created_at.lte == 1039
    assert list(request.vector.values) == pytest.approx(list(query.embeddings.vectors[modalities.FUSED].values))
    # the query's own likes are 100x too, and it is not among what search answers: the change
    # comes through the neighbours' column only
    assert liked.likes != pytest.approx(first.likes)


def _authors_videos(rng, views: bool):
    """30 authors of 6 posts each; likes and views follow two unrelated per-author levels, so that a
    views model that learnt likes would rank the authors wrongly."""
    likes_level = {f"a{i}": rng.uniform(1, 9) for i in range(30)}
    views_level = {author: rng.uniform(3, 12) for author in likes_level}
    videos = []
    for i, author in enumerate(list(likes_level) * 6):
        video = _video(i, author, int(np.expm1(likes_level[author] + rng.normal(0, 0.3))), 1000 * (1 + i // 30), rng)
        if views:
            video.metadata.views = int(np.expm1(views_level[author] + rng.normal(0, 0.3)))
        videos.append(video)
    return videos, views_level


def test_a_views_model_serves_beside_likes_when_the_videos_carry_views(tmp_path):
    rng = np.random.default_rng(3)
    videos, views_level = _authors_videos(rng, views=True)
    most, least = max(views_level, key=views_level.get), min(views_level, key=views_level.get)
    queries = {author: _video(999, author, 0, 10_000, rng) for author in (most, least)}

    async def run():
        service = server.Regressor(server.Settings(data_dir=str(tmp_path), page_size=50))
        service.search = _Search(videos)
        report = await service.Train(regressor_pb2.TrainRequest(model="ridge"), None)
        answers = {a: await service.Predict(regressor_pb2.RegressRequest(video=v), None) for a, v in queries.items()}
        again = server.Regressor(server.Settings(data_dir=str(tmp_path)))
        again.search = service.search
        again.load()
        return report, answers, await again.Predict(regressor_pb2.RegressRequest(video=queries[most]), None)

    report, answers, repeat = asyncio.run(run())
    assert report.HasField("views") and report.views_skipped == ""
    assert report.views.train_size == len(videos) and report.views.model == "ridge"
    assert report.views.artifact.endswith("views-model.json") and (tmp_path / "regressor" / "views-model.json").exists()
    # scored on the views themselves, not the likes
    actual = sorted(post.actual for post in report.views.out_of_fold)
    assert np.allclose(actual, sorted(np.log1p([v.metadata.views for v in videos])))
    for answer in answers.values():
        assert answer.HasField("views") and answer.views_model_version == report.views.model_version
        assert answer.views.low <= answer.views.value <= answer.views.high
    # views follow their own driver, not the likes one
    assert answers[most].views.value > 10 * answers[least].views.value
    assert repeat.HasField("views") and repeat.views.value == pytest.approx(answers[most].views.value)


def test_without_enough_views_no_views_model_serves_and_the_report_says_why(tmp_path):
    rng = np.random.default_rng(4)
    videos, _ = _authors_videos(rng, views=True)
    query = _video(999, "a0", 0, 10_000, rng)

    async def run():
        service = server.Regressor(server.Settings(data_dir=str(tmp_path), page_size=50))
        service.search = _Search(videos)
        first = await service.Train(regressor_pb2.TrainRequest(model="author"), None)
        for video in videos[3:]:  # views now known for 3 videos only
            video.metadata.ClearField("views")
        second = await service.Train(regressor_pb2.TrainRequest(model="author"), None)
        again = server.Regressor(server.Settings(data_dir=str(tmp_path)))
        again.search = service.search
        again.load()
        predict = regressor_pb2.RegressRequest(video=query)
        return first, second, await service.Predict(predict, None), await again.Predict(predict, None)

    first, second, answer, restarted = asyncio.run(run())
    assert first.HasField("views")
    assert not second.HasField("views") and "views" in second.views_skipped and "found 3" in second.views_skipped
    # the earlier views model is gone: it was fitted on data the likes model no longer matches
    assert not (tmp_path / "regressor" / "views-model.json").exists()
    for response in (answer, restarted):
        assert not response.HasField("views") and response.views_model_version == ""
        assert response.likes_low <= response.likes <= response.likes_high


def test_predict_before_any_likes_model_says_how_to_train(tmp_path):
    async def run():
        service = server.Regressor(server.Settings(data_dir=str(tmp_path)))
        service.load()
        video = _video(0, "a0", 0, 0, np.random.default_rng(0))
        await service.Predict(regressor_pb2.RegressRequest(video=video), None)

    with pytest.raises(errors.Precondition, match="reelvec train regressor"):
        asyncio.run(run())
