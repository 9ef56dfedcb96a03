"""The regressor service's glue (services/regressor/server.py) without a stack: Train reads the
indexed videos (author, time, id) from a stand-in search, Predict fills the author's track record
from the trained model. Mechanics only, on synthetic videos."""

import asyncio
from types import SimpleNamespace

import numpy as np

from reelvec import modalities
from reelvec.v1 import common_pb2, regressor_pb2
from services.regressor import server


def _video(i: int, author: str, likes: int, created_at: int, rng) -> common_pb2.VideoRecord:
    metadata = common_pb2.VideoMetadata(id=f"v{i}", caption="a clip", likes=likes, created_at=created_at,
                                        author=common_pb2.AuthorStats(id=author, followers=1000, videos=50))
    video = common_pb2.VideoRecord(id=f"v{i}", metadata=metadata)
    video.embeddings.vectors[modalities.TEXT].values.extend(rng.normal(size=modalities.DIMS[modalities.TEXT]))
    return video


class _Search:
    def __init__(self, videos):
        self.videos = videos

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
        again.load()
        return answers, await again.Predict(regressor_pb2.RegressRequest(video=queries[star]), None)

    answers, repeat = asyncio.run(run())
    assert answers[star].likes > 10 * answers[quiet].likes
    assert answers[quiet].likes < answers["stranger"].likes < answers[star].likes
    for answer in answers.values():
        assert answer.likes_low <= answer.likes <= answer.likes_high
    assert repeat.likes == answers[star].likes
