"""The reelvec.v1.Regressor service: serves the current likes model and trains new ones."""

import asyncio
import dataclasses
import logging
from pathlib import Path

import numpy as np

from reelvec import clients, config, errors
from reelvec.likes import estimators, features, model
from reelvec.tls import TLS
from reelvec.v1 import regressor_pb2, regressor_pb2_grpc

log = logging.getLogger(__name__)

HOW_TO_TRAIN = (
    "no likes model has been trained yet: index videos that carry likes "
    "(reelvec index --manifest FILE.jsonl) and run `reelvec train regressor`"
)


@dataclasses.dataclass
class Settings(config.ServerSettings):
    search_url: str = "127.0.0.1:50054"
    search_timeout: float = 30.0
    page_size: int = 256


class Regressor(regressor_pb2_grpc.RegressorServicer):
    def __init__(self, settings: Settings):
        self.settings = settings
        self.artifact = Path(settings.data_dir) / "regressor" / "likes-model.json"
        self.model: model.LikesModel | None = None
        self.search = clients.Search.connect(settings.search_url, settings.search_timeout, TLS.of(settings))
        self._training = asyncio.Lock()

    def load(self) -> None:
        if self.artifact.exists():
            self.model = model.LikesModel.load(self.artifact)
            log.info("model loaded", extra={"version": self.model.version})

    async def Predict(self, request, context):
        current = self.model
        if current is None:
            raise errors.Precondition(HOW_TO_TRAIN)
        try:
            row = features.row(request.video)
        except ValueError as exc:
            raise errors.InvalidInput(str(exc)) from None
        video = request.video
        likes, low, high = current.predict(row, video.metadata.author.id, video.id, video.metadata.created_at)
        return regressor_pb2.RegressResponse(
            likes=likes, likes_low=low, likes_high=high, model_version=current.version
        )

    async def Train(self, request, context):
        if request.model and request.model not in estimators.KINDS:
            raise errors.InvalidInput(f"unknown model {request.model!r}: use one of {', '.join(estimators.KINDS)}")
        if self._training.locked():
            raise errors.Precondition("a training run is already in progress; retry when it ends")
        async with self._training:
            rows, likes, authors, created_at, ids = await self._training_data()
            try:
                fitted, report = await asyncio.to_thread(
                    model.train, rows, likes, request.model, request.huber, request.test_fraction or 0.2,
                    request.seed, request.compare, authors, created_at, ids=ids,
                )
            except ValueError as exc:
                raise errors.Precondition(f"{exc}; index more videos with likes first") from None
            except ImportError as exc:  # the serving image leaves PyTorch out (deploy/docker)
                raise errors.Precondition(
                    f"{request.model} trains with PyTorch, which this regressor does not have ({exc.name}): "
                    "train ridge, gbm or quartile here, or run the regressor where torch is installed"
                ) from None
            await asyncio.to_thread(fitted.save, self.artifact)
            self.model = fitted
            tables = {name: [regressor_pb2.ModelScore(**row) for row in report.pop(name, [])]
                      for name in ("comparison", "time_holdout", "ablations")}
            posts = [regressor_pb2.OutOfFoldPost(**post) for post in report.pop("out_of_fold")]
            # no field for it in TrainReport: the log keeps the interval's coverage by author size
            by_followers = report.pop("interval_by_followers", [])
            log.info("model trained", extra={"version": fitted.version, **report,
                                             "interval_by_followers": by_followers})
            return regressor_pb2.TrainReport(
                **report, **tables, out_of_fold=posts, model_version=fitted.version, artifact=str(self.artifact)
            )

    async def _training_data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """rows, likes, author ids (the video's own id where the author is unknown, so that it
        stands alone in the author folds), created_at (0 unknown) and ids of every video with likes."""
        rows, likes, authors, created_at, ids, offset = [], [], [], [], [], ""
        while True:
            page = await self.search.scroll(offset=offset, limit=self.settings.page_size, with_vectors=True,
                                            only_with_likes=True)
            for video in page.videos:
                try:
                    rows.append(features.row(video))
                except ValueError:
                    continue  # indexed before fusion existed: nothing to learn from
                likes.append(video.metadata.likes)
                authors.append(video.metadata.author.id or f"video:{video.id}")
                created_at.append(video.metadata.created_at)
                ids.append(video.id)
            offset = page.next_offset
            if not offset:
                break
        if not rows:
            return (np.zeros((0, len(features.NAMES))), np.zeros(0), np.zeros(0, str), np.zeros(0, np.int64),
                    np.zeros(0, str))
        return (np.stack(rows), np.asarray(likes, np.float64), np.asarray(authors), np.asarray(created_at, np.int64),
                np.asarray(ids))
