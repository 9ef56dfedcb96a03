"""The encoder's model cache (services/encoder/models.py): each pinned version built once, however
many calls ask for it at the same moment, and the least recently used one closed past the size,
but only once no call holds it. The models themselves run on Triton in tests/test_encoder.py."""

import asyncio

import numpy as np
import pytest

from reelvec import modalities
from services.encoder import models


class Recorded(models.Model):
    def __init__(self, kind, version):
        super().__init__(kind, version)
        self.closed = False

    async def load(self, timeout):
        return None

    async def _run(self, batch):
        return [np.ones((len(batch), dim), np.float32) for _, dim in self.kind.outputs]

    async def close(self):
        self.closed = True


def cache_of(size):
    built = []

    async def build(kind, version):
        await asyncio.sleep(0.01)  # concurrent first calls arrive while it is being built
        built.append(Recorded(kind, version))
        return built[-1]

    return models.ModelCache(build, size), built


def test_concurrent_first_calls_share_one_build():
    cache, built = cache_of(size=4)

    async def ask():
        async with cache.use(models.VISUAL, "2") as model:
            return model

    async def main():
        return await asyncio.gather(*(ask() for _ in range(8)))

    got = asyncio.run(main())
    assert len(built) == 1 and all(model is built[0] for model in got)


def test_past_its_size_the_least_recently_used_closes_once_unused():
    cache, built = cache_of(size=2)

    async def main():
        async with cache.use(models.VISUAL, "1") as held:  # a call still holds version 1 ...
            async with cache.use(models.VISUAL, "2"):
                pass
            async with cache.use(models.AUDIO, "1"):
                pass  # ... which is now the least recently used of three
            assert len(cache) == 2 and not held.closed
        assert held.closed  # closed when that call let go
        async with cache.use(models.VISUAL, "1") as again:
            assert again is not held  # built anew
        await cache.close()

    asyncio.run(main())
    assert [m.version for m in built] == ["1", "2", "1", "1"] and all(m.closed for m in built)


def test_predict_splits_batches_and_checks_the_rows():
    model = Recorded(models.VISUAL, "1")
    model.max_batch = 3
    embedded, described, heads = asyncio.run(model.predict(np.zeros((7, 4))))
    assert embedded.shape == (7, modalities.VISUAL_DIM) and described.shape == (7, modalities.FRAME_DIM)
    assert heads.shape == (7, 1)

    class Broken(Recorded):
        async def _run(self, batch):
            return [np.full((len(batch), dim), np.nan, np.float32) for _, dim in self.kind.outputs]

    with pytest.raises(Exception, match="audio_logmel:1 returned embedding"):
        asyncio.run(Broken(models.AUDIO, "1").predict(np.zeros((2, 4))))

    class Short(Recorded):  # a model version without the descriptor output
        async def _run(self, batch):
            return [np.ones((len(batch), modalities.VISUAL_DIM), np.float32), np.ones((len(batch), 3), np.float32),
                    np.ones((len(batch), 1), np.int64)]

    with pytest.raises(Exception, match=r"returned descriptor \(2, 3\)"):
        asyncio.run(Short(models.VISUAL, "1").predict(np.zeros((2, 4))))
