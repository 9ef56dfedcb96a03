"""Typed async clients of the internal services: one class a service, one named method an RPC, as
qdrant-client wraps its stubs. Every call carries its deadline and the request id, and a failure
reaches our caller as channels.call maps it ("search service unavailable: ...")."""

from collections.abc import Iterable

from reelvec import channels
from reelvec.tls import TLS
from reelvec.v1 import (
    common_pb2,
    encoder_pb2,
    encoder_pb2_grpc,
    regressor_pb2,
    regressor_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
    transcriber_pb2,
    transcriber_pb2_grpc,
)


class _Client:
    what = ""  # the service, as error messages name it
    stub_class = None

    def __init__(self, stub, timeout: float):
        self.stub, self.timeout = stub, timeout

    @classmethod
    def connect(cls, address: str, timeout: float, tls: TLS = TLS(), **timeouts):
        return cls(cls.stub_class(channels.open_channel(address, tls)), timeout, **timeouts)

    async def _call(self, method, request, timeout: float | None = None):
        return await channels.call(self.what, method, request, self.timeout if timeout is None else timeout)


class Encoder(_Client):
    what, stub_class = "encoder", encoder_pb2_grpc.EncoderStub

    async def encode(self, video: bytes, visual_version: str = "", audio_version: str = "",
                     with_views: bool = False) -> encoder_pb2.EncodeResponse:
        """`visual_version`, `audio_version`: the versions to embed with; empty: the served default.
        `with_views`: the frames carry their crops, as a copy query needs them."""
        request = encoder_pb2.EncodeRequest(video=video, visual_version=visual_version, audio_version=audio_version,
                                            with_views=with_views)
        return await self._call(self.stub.Encode, request)


class Transcriber(_Client):
    what, stub_class = "transcriber", transcriber_pb2_grpc.TranscriberStub

    def __init__(self, stub, timeout: float, embed_timeout: float | None = None):
        """`timeout` bounds a transcription, which grows with the clip; `embed_timeout` a text query."""
        super().__init__(stub, timeout)
        self.embed_timeout = timeout if embed_timeout is None else embed_timeout

    async def transcribe(self, video: bytes, caption: str = "", hashtags: Iterable[str] = ()) -> transcriber_pb2.TranscribeResponse:
        request = transcriber_pb2.TranscribeRequest(video=video, caption=caption, hashtags=list(hashtags))
        return await self._call(self.stub.Transcribe, request)

    async def embed_text(self, text: str) -> transcriber_pb2.EmbedTextResponse:
        return await self._call(self.stub.EmbedText, transcriber_pb2.EmbedTextRequest(text=text), self.embed_timeout)


class Search(_Client):
    """`collection`: empty for the one the alias points at."""

    what, stub_class = "search service", search_pb2_grpc.SearchStub

    async def upsert(self, video: common_pb2.VideoRecord, collection: str = "") -> search_pb2.UpsertResponse:
        return await self._call(self.stub.Upsert, search_pb2.UpsertRequest(video=video, collection=collection))

    async def query(self, request: search_pb2.QueryRequest, timeout: float) -> search_pb2.QueryResponse:
        return await self._call(self.stub.Query, request, timeout)

    async def query_batch(self, request: search_pb2.QueryBatchRequest, timeout: float) -> search_pb2.QueryBatchResponse:
        return await self._call(self.stub.QueryBatch, request, timeout)

    async def get(self, video_id: str, collection: str = "", with_vectors: bool = False) -> common_pb2.VideoRecord:
        request = search_pb2.GetRequest(id=video_id, collection=collection, with_vectors=with_vectors)
        return await self._call(self.stub.Get, request)

    async def delete(self, video_id: str, collection: str = "") -> search_pb2.DeleteResponse:
        return await self._call(self.stub.Delete, search_pb2.DeleteRequest(id=video_id, collection=collection))

    async def scroll(self, collection: str = "", offset: str = "", limit: int = 0, with_vectors: bool = False,
                     filter: common_pb2.Filter | None = None, only_with_likes: bool = False) -> search_pb2.ScrollResponse:
        request = search_pb2.ScrollRequest(collection=collection, offset=offset, limit=limit, with_vectors=with_vectors,
                                           filter=filter, only_with_likes=only_with_likes)
        return await self._call(self.stub.Scroll, request)

    async def analyze(self, request: search_pb2.AnalyzeRequest) -> search_pb2.AnalyzeResponse:
        """With `frames` (or by id), the copies and near_duplicate_of come from frame alignment."""
        return await self._call(self.stub.Analyze, request)

    async def find_copies(self, request: search_pb2.FindCopiesRequest) -> search_pb2.FindCopiesResponse:
        return await self._call(self.stub.FindCopies, request)

    async def list_collections(self) -> search_pb2.ListCollectionsResponse:
        return await self._call(self.stub.ListCollections, search_pb2.ListCollectionsRequest())

    async def create_collection(self, name: str, model_versions: dict[str, str],
                                dims: dict[str, int]) -> search_pb2.CollectionInfo:
        request = search_pb2.CreateCollectionRequest(name=name, model_versions=model_versions, dims=dims)
        return await self._call(self.stub.CreateCollection, request)

    async def switch_alias(self, collection: str, drop_previous: bool) -> search_pb2.ListCollectionsResponse:
        request = search_pb2.SwitchAliasRequest(collection=collection, drop_previous=drop_previous)
        return await self._call(self.stub.SwitchAlias, request)

    async def drop_collection(self, name: str) -> search_pb2.DropCollectionResponse:
        return await self._call(self.stub.DropCollection, search_pb2.DropCollectionRequest(name=name))


class Regressor(_Client):
    what, stub_class = "regressor", regressor_pb2_grpc.RegressorStub

    def __init__(self, stub, timeout: float, train_timeout: float | None = None):
        """`train_timeout` bounds a training run, which reads the whole store."""
        super().__init__(stub, timeout)
        self.train_timeout = timeout if train_timeout is None else train_timeout

    async def predict(self, video: common_pb2.VideoRecord) -> regressor_pb2.RegressResponse:
        return await self._call(self.stub.Predict, regressor_pb2.RegressRequest(video=video))

    async def train(self, request: regressor_pb2.TrainRequest) -> regressor_pb2.TrainReport:
        return await self._call(self.stub.Train, request, self.train_timeout)
