"""The gateway's orchestration (Index, Delete, Predict, FindCopies, re-embedding, the completion of
degraded videos) with
in-process fakes of its typed clients (reelvec/clients.py), as Immich tests its ML app with a
patched model factory: fast, and each fault is made on purpose. The real processes and gRPC between
them are tests/integration's."""

import asyncio
import hashlib

import grpc
import numpy as np
import pytest

from reelvec import channels, copies, errors, modalities
from reelvec.v1 import common_pb2, encoder_pb2, gateway_pb2, regressor_pb2, search_pb2, transcriber_pb2
from services.gateway.completion import Completion
from services.gateway.server import Clients, Gateway, Settings

RNG = np.random.default_rng(0)
VIDEO = b"a video's bytes"
ACTIVE, BUILDING = "videos_v1", "videos_v2"


def vector(dim: int) -> list[float]:
    v = RNG.normal(size=dim)
    return (v / np.linalg.norm(v)).tolist()


def frames_of_version(visual_version: str) -> common_pb2.Frames:
    """Four frame descriptors a second apart, the same for one model version, others for another."""
    rows = np.random.default_rng(int(visual_version or 1)).normal(size=(4, modalities.FRAME_DIM))
    return copies.Track.of([0.5, 1.5, 2.5, 3.5], rows).to_proto()


def a_copy(video_id: str) -> common_pb2.Copy:
    segment = common_pb2.CopiedSegment(query_start=0.0, query_end=4.0, ref_start=10.0, ref_end=14.0, score=0.9)
    return common_pb2.Copy(id=video_id, score=0.9, segments=[segment])


def unavailable(what: str) -> channels.Upstream:
    return channels.Upstream(grpc.StatusCode.UNAVAILABLE, f"{what} unavailable: UNAVAILABLE: connection refused")


class FakeEncoder:
    def __init__(self):
        self.calls, self.fail, self.with_views = [], None, []

    async def encode(self, video, visual_version="", audio_version="", with_views=False):
        self.calls.append((video, visual_version))
        self.with_views.append(with_views)
        if self.fail:
            raise self.fail
        return encoder_pb2.EncodeResponse(
            visual=vector(modalities.VISUAL_DIM), audio=vector(modalities.AUDIO_DIM), duration=4.0, has_audio=True,
            visual_model=f"efficientnet_lite0:{visual_version or 1}", audio_model="stats", thumbnail_jpeg=b"jpeg",
            frames=frames_of_version(visual_version), descriptor_head=f"head-of-{visual_version or 1}")


class FakeTranscriber:
    def __init__(self):
        self.fail = None

    async def transcribe(self, video, caption="", hashtags=()):
        if self.fail:
            raise self.fail
        return transcriber_pb2.TranscribeResponse(
            transcript=common_pb2.Transcript(text="hello there", language="en"), text=vector(modalities.TEXT_DIM),
            whisper_model="whisper:tiny.en", text_model="minilm:1")


class FakeSearch:
    """Collections of records by id, the way the search service keeps them."""

    def __init__(self, building: bool = False):
        self.active = ACTIVE
        self.collections: dict[str, dict] = {ACTIVE: {}}
        self.versions: dict[str, dict[str, str]] = {ACTIVE: {}}  # each collection's model versions
        self.building: set[str] = set()
        if building:
            self._create(BUILDING, {modalities.VISUAL: "efficientnet_lite0:2"})
        self.refuse_next_upsert = False  # as the store does when the alias moved under a writer
        self.copy_requests = []

    def _of(self, collection: str) -> dict:
        return self.collections[collection or self.active]

    def _create(self, name: str, model_versions) -> None:
        self.collections.setdefault(name, {})
        self.versions[name] = dict(model_versions)
        self.building.add(name)

    async def list_collections(self):
        Info = search_pb2.CollectionInfo
        infos = [Info(name=name, state=Info.BUILDING if name in self.building else Info.ACTIVE,
                      model_versions=self.versions[name], videos=len(videos))
                 for name, videos in self.collections.items()]
        return search_pb2.ListCollectionsResponse(alias="videos", active=self.active, collections=infos)

    async def create_collection(self, name, model_versions, dims):
        self._create(name, model_versions)
        return search_pb2.CollectionInfo(name=name)

    async def switch_alias(self, collection, drop_previous):
        previous, self.active = self.active, collection
        self.building.discard(collection)
        if drop_previous:
            del self.collections[previous], self.versions[previous]
        return await self.list_collections()

    async def upsert(self, video, collection=""):
        if self.refuse_next_upsert:
            self.refuse_next_upsert = False
            self.versions[self.active] = {modalities.VISUAL: "efficientnet_lite0:2"}
            raise channels.Upstream(grpc.StatusCode.FAILED_PRECONDITION, "the collection holds efficientnet_lite0:2")
        created = video.id not in self._of(collection)
        self._of(collection)[video.id] = common_pb2.VideoRecord.FromString(video.SerializeToString())
        return search_pb2.UpsertResponse(created=created)

    async def get(self, video_id, collection="", with_vectors=False):
        if video_id not in self._of(collection):
            raise channels.Upstream(grpc.StatusCode.NOT_FOUND, f"no video with id {video_id!r}")
        return self._of(collection)[video_id]

    async def delete(self, video_id, collection=""):
        return search_pb2.DeleteResponse(deleted=self._of(collection).pop(video_id, None) is not None)

    async def scroll(self, collection="", offset="", limit=0, with_vectors=False, filter=None, only_with_likes=False):
        videos = list(self._of(collection).values())
        if filter is not None and filter.content_sha256:
            videos = [v for v in videos if v.content_sha256 == filter.content_sha256]
        if filter is not None and filter.only_incomplete:
            videos = [v for v in videos if v.incomplete]
        return search_pb2.ScrollResponse(videos=videos[:limit or None])

    async def query_batch(self, request, timeout):
        raise AssertionError("these tests make no search queries")

    async def analyze(self, request):
        stored = self._of("")[request.id] if request.id else None
        # frame alignment runs on the frames given, or on the stored video's own
        frames = request.HasField("frames") or (stored is not None and stored.HasField("frames"))
        found = [a_copy("orig")] if frames else []
        return search_pb2.AnalyzeResponse(originality=0.8, video=stored, copies=found,
                                          near_duplicate_of=found[0].id if found else "")

    async def find_copies(self, request):
        self.copy_requests.append(request)
        return search_pb2.FindCopiesResponse(copies=[a_copy("orig")])


class FakeRegressor:
    def __init__(self):
        self.seen = []
        self.views = None  # a views model's answer, once one is "trained"

    async def predict(self, video):
        self.seen.append(video)
        response = regressor_pb2.RegressResponse(likes=100 + video.metadata.author.followers, likes_low=50,
                                                 likes_high=300, model_version="ridge-1")
        if self.views is not None:
            response.views.CopyFrom(self.views)
            response.views_model_version = "gbm-2"
        return response


@pytest.fixture
def fakes():
    return Clients(FakeEncoder(), FakeTranscriber(), FakeSearch(), FakeRegressor())


def gateway_of(services, tmp_path) -> Gateway:
    return Gateway(Settings(data_dir=str(tmp_path)), services)


def index(gateway, video_id="clip0", data=VIDEO, **metadata):
    request = gateway_pb2.IndexRequest(video=data, metadata=common_pb2.VideoMetadata(id=video_id, **metadata))
    return asyncio.run(gateway.Index(request, None))


def test_index_embeds_fuses_and_stores_one_whole_record(fakes, tmp_path):
    gateway = gateway_of(fakes, tmp_path)
    response = index(gateway, caption="my dog", likes=12)
    stored = fakes.search.collections[ACTIVE]["clip0"]
    assert response.created and response.id == "clip0" and not response.incomplete
    assert set(stored.embeddings.vectors) == {"visual", "audio", "text", "fused"}
    fused = np.asarray(stored.embeddings.vectors["fused"].values)
    assert len(fused) == modalities.DIMS["fused"] and np.linalg.norm(fused) == pytest.approx(1.0, abs=1e-5)
    assert stored.transcript == "hello there" and stored.metadata.caption == "my dog" and stored.metadata.likes == 12
    assert stored.content_sha256 == hashlib.sha256(VIDEO).hexdigest()
    assert dict(stored.model_versions)["visual"] == "efficientnet_lite0:1"
    assert gateway.media.kept(stored.content_sha256).read_bytes() == VIDEO  # the upload, for re-embedding
    assert gateway.thumbnails.kept(stored.content_sha256).read_bytes() == b"jpeg"


def test_a_transcriber_that_is_down_stores_the_video_degraded_and_completion_mends_it(fakes, tmp_path):
    gateway = gateway_of(fakes, tmp_path)
    fakes.transcriber.fail = unavailable("transcriber")
    response = index(gateway)
    stored = fakes.search.collections[ACTIVE]["clip0"]
    assert list(response.incomplete) == ["transcript"] == list(stored.incomplete)
    assert set(stored.embeddings.vectors) == {"visual", "audio", "fused"} and not stored.transcript

    completion = Completion(gateway.search, fakes.transcriber, gateway.versions, gateway.media, gateway.fusion)
    with pytest.raises(channels.Upstream):  # still down: forever() tries again later
        asyncio.run(completion.once())
    assert fakes.search.collections[ACTIVE]["clip0"].incomplete
    fakes.transcriber.fail = None
    assert asyncio.run(completion.once()) == 1
    mended = fakes.search.collections[ACTIVE]["clip0"]
    assert not mended.incomplete and mended.transcript == "hello there" and "text" in mended.embeddings.vectors
    assert not np.allclose(mended.embeddings.vectors["fused"].values, stored.embeddings.vectors["fused"].values)


def test_without_degraded_index_a_transcriber_that_is_down_fails_the_call_and_stores_nothing(fakes, tmp_path):
    gateway = Gateway(Settings(data_dir=str(tmp_path), degraded_index=False), fakes)
    fakes.transcriber.fail = unavailable("transcriber")
    with pytest.raises(channels.Upstream) as failed:
        index(gateway)
    assert failed.value.code == grpc.StatusCode.UNAVAILABLE and not fakes.search.collections[ACTIVE]


def test_an_encoder_failure_stores_nothing_not_even_the_upload(fakes, tmp_path):
    gateway = gateway_of(fakes, tmp_path)
    fakes.encoder.fail = channels.Upstream(grpc.StatusCode.INVALID_ARGUMENT, "not a media file")
    with pytest.raises(channels.Upstream, match="not a media file"):
        index(gateway)
    assert not fakes.search.collections[ACTIVE]
    assert gateway.media.kept(hashlib.sha256(VIDEO).hexdigest()) is None


def test_bad_metadata_is_refused_before_any_service_is_called(fakes, tmp_path):
    gateway = gateway_of(fakes, tmp_path)
    with pytest.raises(errors.InvalidInput, match="id 'clip0\\\\n' is invalid"):
        index(gateway, video_id="clip0\n")
    assert fakes.encoder.calls == []


def test_while_a_re_embed_fills_a_collection_an_index_goes_there_too_with_its_versions(tmp_path):
    services = Clients(FakeEncoder(), FakeTranscriber(), FakeSearch(building=True), FakeRegressor())
    index(gateway_of(services, tmp_path))
    copy = services.search.collections[BUILDING]["clip0"]
    assert dict(copy.model_versions)["visual"] == "efficientnet_lite0:2"
    assert [version for _, version in services.encoder.calls] == ["", "2"]  # encoded again for the new one
    assert copy.transcript == services.search.collections[ACTIVE]["clip0"].transcript  # reused


def test_delete_removes_the_upload_with_the_last_video_of_those_bytes(fakes, tmp_path):
    gateway = gateway_of(fakes, tmp_path)
    index(gateway, "a")
    index(gateway, "b")  # the same bytes under another id
    sha = hashlib.sha256(VIDEO).hexdigest()
    asyncio.run(gateway.Delete(gateway_pb2.DeleteVideoRequest(id="a"), None))
    assert gateway.media.kept(sha) is not None
    deleted = asyncio.run(gateway.Delete(gateway_pb2.DeleteVideoRequest(id="b"), None))
    assert deleted.deleted and gateway.media.kept(sha) is None and gateway.thumbnails.kept(sha) is None


def test_predict_by_id_lets_the_caller_s_author_statistics_win(fakes, tmp_path):
    gateway = gateway_of(fakes, tmp_path)
    index(gateway, author=common_pb2.AuthorStats(followers=5))
    request = gateway_pb2.PredictRequest(id="clip0", author=common_pb2.AuthorStats(followers=900))
    predicted = asyncio.run(gateway.Predict(request, None))
    assert predicted.likes == 1000 and fakes.regressor.seen[-1].metadata.author.followers == 900
    assert predicted.transcript.text == "hello there" and predicted.model_versions["likes"] == "ridge-1"


def test_an_index_that_meets_a_moved_alias_is_embedded_again_with_the_new_versions(fakes, tmp_path):
    gateway = gateway_of(fakes, tmp_path)
    fakes.search.refuse_next_upsert = True
    index(gateway)
    assert [version for _, version in fakes.encoder.calls] == ["", "2"]
    assert dict(fakes.search.collections[ACTIVE]["clip0"].model_versions)["visual"] == "efficientnet_lite0:2"


def test_index_stores_the_encoder_s_frame_descriptors(fakes, tmp_path):
    index(gateway_of(fakes, tmp_path))
    assert fakes.search.collections[ACTIVE]["clip0"].frames == frames_of_version("")
    assert fakes.encoder.with_views == [False]  # the crops serve a copy query only: Index pays nothing for them


async def reembed(gateway, version: str) -> None:
    await gateway.reembed.start(version)
    while gateway.reembed.snapshot().state == gateway_pb2.ReembedStatus.RUNNING:
        await asyncio.sleep(0.01)


def test_a_re_embed_that_encodes_again_stores_the_new_model_s_frames(fakes, tmp_path):
    gateway = gateway_of(fakes, tmp_path)
    fakes.search.versions[ACTIVE] = {modalities.VISUAL: "efficientnet_lite0:1"}
    index(gateway)

    asyncio.run(reembed(gateway, "2"))
    assert gateway.reembed.snapshot().state == gateway_pb2.ReembedStatus.DONE
    stored = fakes.search.collections[fakes.search.active]["clip0"]
    assert dict(stored.model_versions)["visual"] == "efficientnet_lite0:2"
    assert dict(stored.model_versions)["descriptor"] == "head-of-2"
    assert stored.frames == frames_of_version("2") != frames_of_version("1")


def test_a_re_embed_to_a_version_without_a_head_names_none(fakes, tmp_path, monkeypatch):
    """Version 1's head must not stay beside frames of a version that has none."""
    gateway = gateway_of(fakes, tmp_path)
    fakes.search.versions[ACTIVE] = {modalities.VISUAL: "efficientnet_lite0:1"}
    index(gateway)
    assert dict(fakes.search.collections[ACTIVE]["clip0"].model_versions)["descriptor"] == "head-of-1"
    encode = fakes.encoder.encode

    async def headless(*args, **kwargs):
        encoded = await encode(*args, **kwargs)
        encoded.ClearField("descriptor_head")
        return encoded

    monkeypatch.setattr(fakes.encoder, "encode", headless)

    asyncio.run(reembed(gateway, "2"))
    stored = fakes.search.collections[fakes.search.active]["clip0"]
    assert dict(stored.model_versions)["visual"] == "efficientnet_lite0:2"
    assert "descriptor" not in stored.model_versions


def test_completion_writes_the_record_back_with_the_frames_it_read(fakes, tmp_path):
    gateway = gateway_of(fakes, tmp_path)
    fakes.transcriber.fail = unavailable("transcriber")
    index(gateway)
    fakes.transcriber.fail = None
    completion = Completion(gateway.search, fakes.transcriber, gateway.versions, gateway.media, gateway.fusion)
    assert asyncio.run(completion.once()) == 1
    assert fakes.search.collections[ACTIVE]["clip0"].frames == frames_of_version("")


def test_a_record_without_frames_leaves_the_field_unset_not_empty(fakes, tmp_path):
    """An encoder that sends no frames must not store an empty message: the store keeps what it has."""
    gateway = gateway_of(fakes, tmp_path)
    encode = fakes.encoder.encode

    async def without_frames(*args):
        encoded = await encode(*args)
        encoded.ClearField("frames")
        return encoded

    fakes.encoder.encode = without_frames
    index(gateway)
    assert not fakes.search.collections[ACTIVE]["clip0"].HasField("frames")


def test_find_copies_by_video_sends_the_pinned_model_s_frames_and_asks_for_payloads(fakes, tmp_path):
    gateway = gateway_of(fakes, tmp_path)
    fakes.search.versions[ACTIVE] = {modalities.VISUAL: "efficientnet_lite0:3"}
    found = asyncio.run(gateway.FindCopies(gateway_pb2.CopiesRequest(video=VIDEO, k=5), None))
    assert [c.id for c in found.copies] == ["orig"] and found.copies[0].segments[0].ref_start == 10.0
    assert fakes.encoder.calls == [(VIDEO, "3")] and fakes.encoder.with_views == [True]
    sent = fakes.search.copy_requests[-1]
    assert sent.frames == frames_of_version("3") and sent.k == 5 and sent.with_payload
    assert dict(sent.model_versions) == {"visual": "efficientnet_lite0:3", "descriptor": "head-of-3"}


def test_find_copies_by_id_uses_the_stored_frames_without_encoding(fakes, tmp_path):
    gateway = gateway_of(fakes, tmp_path)
    index(gateway)
    calls = len(fakes.encoder.calls)
    found = asyncio.run(gateway.FindCopies(gateway_pb2.CopiesRequest(id="clip0"), None))
    assert [c.id for c in found.copies] == ["orig"] and len(fakes.encoder.calls) == calls
    sent = fakes.search.copy_requests[-1]
    assert sent.id == "clip0" and not sent.HasField("frames") and sent.k == 10 and sent.with_payload


def test_find_copies_refuses_what_it_cannot_answer_before_the_store_is_asked(fakes, tmp_path):
    gateway = gateway_of(fakes, tmp_path)
    for request, words in [(gateway_pb2.CopiesRequest(video=VIDEO, k=101), "k must be between"),
                           (gateway_pb2.CopiesRequest(), "set one of video or id"),
                           (gateway_pb2.CopiesRequest(video=b""), "the video is empty")]:
        with pytest.raises(errors.InvalidInput, match=words):
            asyncio.run(gateway.FindCopies(request, None))
    fakes.encoder.fail = channels.Upstream(grpc.StatusCode.INVALID_ARGUMENT, "no decodable video frame: truncated")
    with pytest.raises(channels.Upstream, match="no decodable video frame") as refused:
        asyncio.run(gateway.FindCopies(gateway_pb2.CopiesRequest(video=VIDEO), None))
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT and not fakes.search.copy_requests


async def _chunks(*parts: bytes, k: int = 0):
    for index, part in enumerate(parts):
        yield gateway_pb2.VideoChunk(data=part, k=k if index == 0 else 0)


def test_find_copies_stream_joins_the_chunks_and_stops_at_the_size_limit(fakes, tmp_path):
    gateway = Gateway(Settings(data_dir=str(tmp_path), max_video_mb=1), fakes)
    found = asyncio.run(gateway.FindCopiesStream(_chunks(VIDEO[:5], VIDEO[5:]), None))
    assert [c.id for c in found.copies] == ["orig"] and fakes.encoder.calls == [(VIDEO, "")]
    with pytest.raises(errors.InvalidInput, match="k must be between"):
        asyncio.run(gateway.FindCopiesStream(_chunks(VIDEO[:5], VIDEO[5:], k=101), None))
    with pytest.raises(errors.InvalidInput, match="over the 1 MiB limit"):
        asyncio.run(gateway.FindCopiesStream(_chunks(bytes(2**19), bytes(2**19), b"x"), None))


def test_predict_by_video_analyses_its_frames_and_returns_the_copies(fakes, tmp_path):
    gateway = gateway_of(fakes, tmp_path)
    seen = []
    analyze = fakes.search.analyze

    async def recording(request):
        seen.append(request)
        return await analyze(request)

    fakes.search.analyze = recording
    predicted = asyncio.run(gateway.Predict(gateway_pb2.PredictRequest(video=VIDEO), None))
    assert seen[-1].frames == frames_of_version("") and fakes.encoder.with_views == [True]
    assert [c.id for c in predicted.copies] == ["orig"] and predicted.near_duplicate_of == "orig"


def test_predict_by_id_returns_the_copies_of_the_stored_frames(fakes, tmp_path):
    gateway = gateway_of(fakes, tmp_path)
    index(gateway)
    predicted = asyncio.run(gateway.Predict(gateway_pb2.PredictRequest(id="clip0"), None))
    assert [c.id for c in predicted.copies] == ["orig"] and predicted.copies[0].segments[0].query_end == 4.0


@pytest.mark.parametrize("by", ["id", "video"])
def test_predict_returns_views_beside_likes_only_when_a_views_model_answers(fakes, tmp_path, by):
    gateway = gateway_of(fakes, tmp_path)
    index(gateway)
    request = gateway_pb2.PredictRequest(id="clip0") if by == "id" else gateway_pb2.PredictRequest(video=VIDEO)
    without = asyncio.run(gateway.Predict(request, None))
    assert not without.HasField("views") and "views" not in without.model_versions
    fakes.regressor.views = common_pb2.Estimate(value=2000, low=400, high=9000)
    predicted = asyncio.run(gateway.Predict(request, None))
    assert predicted.views == fakes.regressor.views and predicted.model_versions["views"] == "gbm-2"
    assert predicted.likes == without.likes and predicted.model_versions["likes"] == "ridge-1"
