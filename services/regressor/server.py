"""The reelvec.v1.Regressor service: serves the current likes model (and views model, when the
training videos carried views) and trains new ones."""

import asyncio
import dataclasses
import logging
from pathlib import Path

import numpy as np

from reelvec import clients, config, errors, modalities
from reelvec.likes import estimators, features, model, neighbours, validation
from reelvec.tls import TLS
from reelvec.v1 import common_pb2, regressor_pb2, regressor_pb2_grpc, search_pb2

log = logging.getLogger(__name__)

HOW_TO_TRAIN = (
    "no likes model has been trained yet: index videos that carry likes "
    "(reelvec index --manifest FILE.jsonl) and run `reelvec train regressor`"
)


@dataclasses.dataclass
class Settings(config.ServerSettings):
    search_url: str = "127.0.0.1:50054"
    search_timeout: float = 30.0
    # Predict's search for the similar posts' likes (reelvec/likes/neighbours.py): one k-NN query
    neighbours_timeout: float = 3.0
    page_size: int = 256


class Regressor(regressor_pb2_grpc.RegressorServicer):
    def __init__(self, settings: Settings):
        self.settings = settings
        self.artifact = Path(settings.data_dir) / "regressor" / "likes-model.json"
        self.views_artifact = self.artifact.with_name("views-model.json")
        self.model: model.LikesModel | None = None
        self.views_model: model.LikesModel | None = None  # none until enough training videos carry views
        self.search = clients.Search.connect(settings.search_url, settings.search_timeout, TLS.of(settings))
        self._training = asyncio.Lock()

    def load(self) -> None:
        if self.artifact.exists():
            self.model = model.LikesModel.load(self.artifact)
            log.info("model loaded", extra={"version": self.model.version})
        if self.views_artifact.exists():
            self.views_model = model.LikesModel.load(self.views_artifact)
            log.info("views model loaded", extra={"version": self.views_model.version})

    async def Predict(self, request, context):
        current, views = self.model, self.views_model
        if current is None:
            raise errors.Precondition(HOW_TO_TRAIN)
        try:
            row = features.row(request.video)
        except ValueError as exc:
            raise errors.InvalidInput(str(exc)) from None
        video = request.video
        similar = await self._similar(video, row) if current.reads_neighbours else ()
        asked = (row, video.metadata.author.id, video.id, video.metadata.created_at, similar)
        likes, low, high = current.predict(*asked)
        response = regressor_pb2.RegressResponse(
            likes=likes, likes_low=low, likes_high=high, model_version=current.version
        )
        if views is not None:
            value, value_low, value_high = views.predict(*asked)
            response.views.CopyFrom(common_pb2.Estimate(value=value, low=value_low, high=value_high))
            response.views_model_version = views.version
        return response

    async def _similar(self, video: common_pb2.VideoRecord, row: np.ndarray) -> tuple[tuple[float, int], ...]:
        """(cosine, likes) of the posts a likes model's neighbours column reads, nearest first."""
        query = search_pb2.QueryRequest(
            vector=common_pb2.Vector(values=_search_vector(video, row).tolist()), modality=common_pb2.MODALITY_FUSED,
            filter=neighbours.search_filter(video), k=neighbours.K, with_payload=True)
        found = await self.search.query(query, self.settings.neighbours_timeout)
        return tuple((hit.score, hit.video.metadata.likes) for hit in found.hits)

    async def Train(self, request, context):
        if request.model and request.model not in estimators.KINDS:
            raise errors.InvalidInput(f"unknown model {request.model!r}: use one of {', '.join(estimators.KINDS)}")
        if self._training.locked():
            raise errors.Precondition("a training run is already in progress; retry when it ends")
        async with self._training:
            data = await self._training_data()
            try:
                fitted, report = await self._fit(request, data, "likes")
            except ValueError as exc:
                raise errors.Precondition(f"{exc}; index more videos with likes first") from None
            except ImportError as exc:  # the serving image leaves PyTorch out (deploy/docker)
                raise errors.Precondition(
                    f"{request.model} trains with PyTorch, which this regressor does not have ({exc.name}): "
                    "train ridge, gbm or quartile here, or run the regressor where torch is installed"
                ) from None
            views_fitted, views_report, skipped = None, None, ""
            try:
                views_fitted, views_report = await self._fit(request, data.with_views(), "views")
            except ValueError as exc:
                skipped = f"{exc} (of {len(data.ids)} training videos)"
            await asyncio.to_thread(fitted.save, self.artifact)
            self.model = fitted
            if views_fitted is not None:
                await asyncio.to_thread(views_fitted.save, self.views_artifact)
            else:
                # a views model from earlier data would answer beside a likes model that no longer matches it
                self.views_artifact.unlink(missing_ok=True)
                log.info("no views model", extra={"reason": skipped})
            self.views_model = views_fitted
            report.artifact = str(self.artifact)
            if views_report is not None:
                views_report.artifact = str(self.views_artifact)
                report.views.CopyFrom(views_report)
            report.views_skipped = skipped
            return report

    async def _fit(self, request, data: "_TrainingData", target: str):
        """Trains the `target` model (likes or views) as `request` asks; returns it and its report.
        Raises what model.train raises."""
        fitted, report = await asyncio.to_thread(
            model.train, data.rows, data.counts[target], request.model, request.huber, request.test_fraction or 0.2,
            request.seed, request.compare, data.authors, data.created_at, ids=data.ids, target_name=target,
            similar_by=data.similar,
        )
        tables = {name: [regressor_pb2.ModelScore(**row) for row in report.pop(name, [])]
                  for name in ("comparison", "time_holdout", "ablations")}
        posts = [regressor_pb2.OutOfFoldPost(**post) for post in report.pop("out_of_fold")]
        # no field for it in TrainReport: the log keeps the interval's coverage by author size
        by_followers = report.pop("interval_by_followers", [])
        log.info("model trained", extra={"target": target, "version": fitted.version, **report,
                                         "interval_by_followers": by_followers})
        return fitted, regressor_pb2.TrainReport(**report, **tables, out_of_fold=posts, model_version=fitted.version)

    async def _training_data(self) -> "_TrainingData":
        """Every video with likes; the author id is the video's own where the author is unknown, so
        that it stands alone in the author folds."""
        rows, likes, views, authors, created_at, ids, similar, offset = [], [], [], [], [], [], [], ""
        while True:
            page = await self.search.scroll(offset=offset, limit=self.settings.page_size, with_vectors=True,
                                            only_with_likes=True)
            for video in page.videos:
                try:
                    rows.append(features.row(video))
                except ValueError:
                    continue  # indexed before fusion existed: nothing to learn from
                similar.append(_search_vector(video, rows[-1]))
                likes.append(video.metadata.likes)
                views.append(video.metadata.views if video.metadata.HasField("views") else np.nan)
                authors.append(validation.author_group(video.metadata.author.id, video.id))
                created_at.append(video.metadata.created_at)
                ids.append(video.id)
            offset = page.next_offset
            if not offset:
                break
        rows = np.stack(rows) if rows else np.zeros((0, len(features.NAMES)))
        return _TrainingData(
            rows, {"likes": np.asarray(likes, np.float64), "views": np.asarray(views, np.float64)},
            np.asarray(authors, str), np.asarray(created_at, np.int64), np.asarray(ids, str),
            # stored fused vectors of two sizes (a collection half re-embedded): the rows' own
            np.stack(similar) if len({len(v) for v in similar}) == 1 else rows[:, features.FUSED],
        )


def _search_vector(video: common_pb2.VideoRecord, row: np.ndarray) -> np.ndarray:
    """The vector search compares `video` by: its fused vector as stored (a learned fusion's, where
    one is served), else the row's weighted concatenation, which the default fusion stores."""
    if modalities.FUSED in video.embeddings.vectors:
        return np.asarray(video.embeddings.vectors[modalities.FUSED].values, np.float32)
    return row[features.FUSED].astype(np.float32)


@dataclasses.dataclass
class _TrainingData:
    rows: np.ndarray
    counts: dict[str, np.ndarray]  # likes and views of each video; NaN views where unknown
    authors: np.ndarray
    created_at: np.ndarray  # unix seconds, 0 unknown
    ids: np.ndarray
    similar: np.ndarray  # each video's vector as search compares it (_search_vector)

    def with_views(self) -> "_TrainingData":
        """The videos whose views are known."""
        known = ~np.isnan(self.counts["views"])
        return _TrainingData(self.rows[known], {k: v[known] for k, v in self.counts.items()},
                             self.authors[known], self.created_at[known], self.ids[known], self.similar[known])
