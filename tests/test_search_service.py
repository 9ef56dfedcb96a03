"""The search service as a real process over real gRPC, once per store backend, in a temporary data
dir; and the analysis formulas on their own."""

import asyncio
import math
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from reelvec import channels, copies, modalities, originality
from reelvec.likes import neighbours
from reelvec.server import caller_deadline
from reelvec.tools.launcher import free_port
from reelvec.v1 import common_pb2, search_pb2, search_pb2_grpc
from services.gateway.query_batcher import QueryBatcher
from services.search import analysis
from services.search.stores import base
from services.search.stores.edge import EdgeStore

REPO = Path(__file__).resolve().parent.parent
DIMS = modalities.DIMS
SEARCH = "reelvec.v1.Search"
TIMEOUT = 10


class Server:
    def __init__(self, proc: subprocess.Popen, address: str, log: Path):
        self.proc, self.address, self.log = proc, address, log
        self.channel = grpc.insecure_channel(address)


def wait_serving(server: Server, seconds: float = 60) -> None:
    health = health_pb2_grpc.HealthStub(server.channel)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"search exited with {server.proc.returncode}:\n{server.log.read_text()}")
        try:
            reply = health.Check(health_pb2.HealthCheckRequest(service=SEARCH), timeout=1)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    pytest.fail(f"search not SERVING after {seconds}s:\n{server.log.read_text()}")


def start_server(data: Path, backend: str, *flags: str) -> Server:
    port = free_port()
    log = data / "server.log"
    command = [sys.executable, "-m", "services.search", "--port", str(port)]
    with open(log, "a") as out:
        proc = subprocess.Popen(
            [*command, "--data-dir", str(data), "--store", backend, *flags],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Server(proc, f"127.0.0.1:{port}", log)
    wait_serving(running)
    return running


def stop_server(running: Server) -> None:
    running.channel.close()
    if running.proc.poll() is None:
        running.proc.kill()
        running.proc.wait()


@pytest.fixture(scope="module", params=["edge", "qdrant"])
def server(request, tmp_path_factory):
    """One server per store backend; "qdrant" without a URL is qdrant-client's local mode."""
    running = start_server(tmp_path_factory.mktemp("search"), request.param)
    try:
        yield running
    finally:
        stop_server(running)


@pytest.fixture(scope="module")
def stub(server):
    return search_pb2_grpc.SearchStub(server.channel)


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


def unit(rng, dim) -> np.ndarray:
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)


def near(vector: np.ndarray, rng, noise: float) -> np.ndarray:
    return vector + noise * unit(rng, len(vector))


def embeddings(**vectors) -> common_pb2.Embeddings:
    return common_pb2.Embeddings(
        vectors={name: common_pb2.Vector(values=list(v)) for name, v in vectors.items()}
    )


def video(video_id, rng, author="au", hashtags=(), likes=None, sha="", **vectors):
    if not vectors:
        vectors = {"visual": unit(rng, DIMS["visual"]), "fused": unit(rng, DIMS["fused"])}
    metadata = common_pb2.VideoMetadata(
        id=video_id,
        caption=f"caption of {video_id}",
        hashtags=list(hashtags),
        created_at=1_700_000_000,
        author=common_pb2.AuthorStats(id=author, followers=1234, following=5, likes=99, videos=7),
    )
    if likes is not None:
        metadata.likes = likes
    return common_pb2.VideoRecord(
        id=video_id,
        metadata=metadata,
        duration=14.7,
        content_sha256=sha,
        model_versions={"visual": "effnet-lite0@1"},
        transcript="hello there",
        language="en",
        width=720,
        height=1280,
        has_audio=True,
        embeddings=embeddings(**vectors),
    )


def upsert(stub, record) -> bool:
    return stub.Upsert(search_pb2.UpsertRequest(video=record), timeout=TIMEOUT).created


def status_of(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


@pytest.mark.integration
def test_upsert_get_round_trip(stub, rng):
    record = video("rt-1", rng, hashtags=["cat", "piano"], likes=2**40, sha="f" * 64)
    record.metadata.views = 0  # optional and set to zero: presence must survive
    assert upsert(stub, record) is True
    assert upsert(stub, record) is False  # idempotent by id

    got = stub.Get(search_pb2.GetRequest(id="rt-1"), timeout=TIMEOUT)
    expected = common_pb2.VideoRecord()
    expected.CopyFrom(record)
    expected.ClearField("embeddings")
    assert got == expected
    assert got.metadata.HasField("views") and got.metadata.HasField("likes")

    with_vectors = stub.Get(search_pb2.GetRequest(id="rt-1", with_vectors=True), timeout=TIMEOUT)
    for name, v in record.embeddings.vectors.items():
        stored = with_vectors.embeddings.vectors[name].values
        np.testing.assert_allclose(stored, v.values, atol=1e-6)


@pytest.mark.integration
def test_query_by_vector_and_by_id(stub, rng):
    anchor = unit(rng, DIMS["fused"])
    for i, noise in enumerate([0.1, 0.3, 0.6]):
        upsert(stub, video(f"q-{i}", rng, author="q-author", fused=near(anchor, rng, noise)))
    upsert(stub, video("q-other", rng, author="someone-else", fused=near(anchor, rng, 0.05)))

    by_vector = stub.Query(
        search_pb2.QueryRequest(
            vector=common_pb2.Vector(values=list(anchor)),
            modality=common_pb2.MODALITY_FUSED,
            filter=common_pb2.Filter(author_ids=["q-author"]),
            k=10,
            with_payload=True,
        ),
        timeout=TIMEOUT,
    )
    assert [h.id for h in by_vector.hits] == ["q-0", "q-1", "q-2"]
    assert by_vector.hits[0].score > by_vector.hits[1].score > by_vector.hits[2].score
    assert by_vector.hits[0].video.metadata.author.id == "q-author"

    by_id = stub.Query(
        search_pb2.QueryRequest(id="q-0", filter=common_pb2.Filter(author_ids=["q-author"]), k=10),
        timeout=TIMEOUT,  # MODALITY_UNSPECIFIED means fused
    )
    assert [h.id for h in by_id.hits] == ["q-1", "q-2"]
    assert not by_id.hits[0].HasField("video")  # no payload unless asked


def same_hits(a: search_pb2.QueryResponse, b: search_pb2.QueryResponse) -> bool:
    """The same videos in the same order; scores equal up to float rounding (local mode sums in
    numpy, whose order can differ from call to call)."""
    return ([(h.id, h.video) for h in a.hits] == [(h.id, h.video) for h in b.hits]
            and np.allclose([h.score for h in a.hits], [h.score for h in b.hits], atol=1e-6))


@pytest.mark.integration
def test_query_batch_answers_each_query_as_query_alone_would(stub, rng):
    for i in range(3):
        upsert(stub, video(f"qb-{i}", rng, author="qb-author"))
    good = [
        search_pb2.QueryRequest(id="qb-0", filter=common_pb2.Filter(author_ids=["qb-author"]), k=5, with_payload=True),
        search_pb2.QueryRequest(vector=common_pb2.Vector(values=list(unit(rng, DIMS["fused"]))), k=2),
    ]
    missing = search_pb2.QueryRequest(id="qb-missing")
    short = search_pb2.QueryRequest(vector=common_pb2.Vector(values=[1.0, 0.0]))
    nobodys = search_pb2.QueryRequest(id="qb-0", filter=common_pb2.Filter(author_ids=["nobody"]))
    batch = stub.QueryBatch(search_pb2.QueryBatchRequest(queries=[good[0], missing, short, good[1], nobodys]),
                            timeout=TIMEOUT)
    outcomes = [r.WhichOneof("outcome") for r in batch.results]
    assert outcomes == ["response", "error", "error", "response", "response"]  # no hits is an answer too
    assert len(batch.results[4].response.hits) == 0
    assert same_hits(batch.results[0].response, stub.Query(good[0], timeout=TIMEOUT))
    assert [h.id for h in batch.results[0].response.hits] == ["qb-1", "qb-2"]
    assert same_hits(batch.results[3].response, stub.Query(good[1], timeout=TIMEOUT))
    assert batch.results[1].error.code == grpc.StatusCode.NOT_FOUND.value[0] and "qb-missing" in batch.results[1].error.message
    assert batch.results[2].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]

    too_many = search_pb2.QueryBatchRequest(queries=[good[0]] * 257)
    assert status_of(lambda: stub.QueryBatch(too_many, timeout=TIMEOUT)).code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.integration
def test_the_gateways_batcher_sends_concurrent_queries_together(server, stub, rng):
    ids = [f"bt-{i}" for i in range(6)]
    for video_id in ids:
        upsert(stub, video(video_id, rng))
    queries = [search_pb2.QueryRequest(id=ids[i % 6], k=3, with_payload=True) for i in range(30)]
    queries.append(search_pb2.QueryRequest(id="bt-missing"))

    async def run():
        async with grpc.aio.insecure_channel(server.address) as channel:
            aio = search_pb2_grpc.SearchStub(channel)
            calls = []

            async def send(batch, timeout):
                calls.append((len(batch.queries), timeout))
                return await aio.QueryBatch(batch, timeout=timeout)

            batcher = QueryBatcher(send, timeout=TIMEOUT, max_batch=8, max_calls=1)

            async def within(query, seconds):
                caller_deadline.set(time.monotonic() + seconds)
                return await batcher.query(query)

            together = await asyncio.gather(*(within(q, 5 + i % 3) for i, q in enumerate(queries)), return_exceptions=True)
            lone = await batcher.query(queries[0])  # no deadline: the batcher's own timeout
            return calls, together, lone

    calls, together, lone = asyncio.run(run())
    assert [size for size, _ in calls] == [8, 8, 8, 7, 1]
    assert all(0 < timeout <= 7 for _, timeout in calls[:-1]) and calls[-1][1] == TIMEOUT
    for query, answer in zip(queries[:-1], together):
        assert same_hits(answer, stub.Query(query, timeout=TIMEOUT))
    assert isinstance(together[-1], channels.Upstream) and together[-1].code == grpc.StatusCode.NOT_FOUND
    assert same_hits(lone, together[0])


def test_a_failed_batch_call_fails_every_query_in_it():
    async def run():
        async with channels.open_channel(f"127.0.0.1:{free_port()}") as channel:  # nothing listens
            aio = search_pb2_grpc.SearchStub(channel)
            batcher = QueryBatcher(lambda batch, timeout: channels.call("search service", aio.QueryBatch, batch, timeout), 2)
            return await asyncio.gather(*(batcher.query(search_pb2.QueryRequest(id=f"x{i}")) for i in range(5)),
                                        return_exceptions=True)

    failed = asyncio.run(run())
    assert all(isinstance(f, channels.Upstream) and f.code == grpc.StatusCode.UNAVAILABLE for f in failed)


@pytest.mark.integration
def test_analyze(stub, rng):
    anchor_fused, anchor_visual = unit(rng, DIMS["fused"]), unit(rng, DIMS["visual"])
    tags = [["dance", "fyp"], ["dance"], ["dance", "cooking"], ["fyp"]]
    for i, hashtags in enumerate(tags):
        upsert(
            stub,
            video(
                f"an-{i}",
                rng,
                hashtags=hashtags,
                sha=f"sha-an-{i}",
                fused=near(anchor_fused, rng, 0.2 + 0.1 * i),
                visual=near(anchor_visual, rng, 0.5),
            ),
        )
    request = search_pb2.AnalyzeRequest(
        embeddings=embeddings(fused=anchor_fused, visual=anchor_visual),
        k=5,
        known_hashtags=["#FYP"],
    )
    reply = stub.Analyze(request, timeout=TIMEOUT)
    assert [h.id for h in reply.similar][:4] == ["an-0", "an-1", "an-2", "an-3"]
    assert reply.similar[0].video.metadata.hashtags == ["dance", "fyp"]
    closest_visual = stub.Query(
        search_pb2.QueryRequest(vector=common_pb2.Vector(values=anchor_visual), modality=common_pb2.MODALITY_VISUAL, k=1),
        timeout=TIMEOUT,
    ).hits[0].score
    expected = 1 - min(max(np.mean([h.score for h in reply.similar[:5]]), closest_visual, 0), 1)
    assert reply.originality == pytest.approx(expected, abs=1e-5)
    assert 0 < reply.originality < 0.5
    assert reply.near_duplicate_of == ""  # visual similarity about 0.9: below 0.95
    assert reply.hashtags[0].tag == "dance" and reply.hashtags[0].score == pytest.approx(1.0)
    assert "fyp" not in [h.tag for h in reply.hashtags]  # known, so not suggested again

    stored_visual = stub.Get(search_pb2.GetRequest(id="an-2", with_vectors=True), timeout=TIMEOUT)
    same_frames = stored_visual.embeddings.vectors["visual"].values
    request.embeddings.vectors["visual"].CopyFrom(common_pb2.Vector(values=same_frames))
    assert stub.Analyze(request, timeout=TIMEOUT).near_duplicate_of == "an-2"
    request.exclude_id = "an-2"  # a video is never its own duplicate, nor its own neighbour
    excluded = stub.Analyze(request, timeout=TIMEOUT)
    assert excluded.near_duplicate_of == ""
    others = [h.id for h in reply.similar if h.id != "an-2"]
    assert [h.id for h in excluded.similar][: len(others)] == others  # the rest, in order, and k
    assert len(excluded.similar) >= len(others)  # filled up from beyond when there are more videos

    by_bytes = search_pb2.AnalyzeRequest(
        embeddings=embeddings(visual=unit(rng, DIMS["visual"])), content_sha256="sha-an-3"
    )
    assert stub.Analyze(by_bytes, timeout=TIMEOUT).near_duplicate_of == "an-3"

    # by id: the stored video's own vectors, hash and hashtags, itself left out, its record back
    by_id = stub.Analyze(search_pb2.AnalyzeRequest(id="an-2", k=5), timeout=TIMEOUT)
    stored = stub.Get(search_pb2.GetRequest(id="an-2", with_vectors=True), timeout=TIMEOUT)
    assert by_id.video == stored and by_id.video.embeddings.vectors["fused"].values
    as_given = stub.Analyze(search_pb2.AnalyzeRequest(
        embeddings=stored.embeddings, exclude_id="an-2", k=5, content_sha256="sha-an-2",
        known_hashtags=["dance", "cooking"]), timeout=TIMEOUT)
    assert [h.id for h in by_id.similar] == [h.id for h in as_given.similar] and "an-2" not in [h.id for h in by_id.similar]
    assert by_id.originality == pytest.approx(as_given.originality) and by_id.near_duplicate_of == ""
    assert [h.tag for h in by_id.hashtags] == [h.tag for h in as_given.hashtags]
    assert "dance" not in [h.tag for h in by_id.hashtags]  # its own hashtags are known
    retagged = stub.Analyze(search_pb2.AnalyzeRequest(id="an-2", k=5, known_hashtags=["x"]), timeout=TIMEOUT)
    assert retagged.hashtags[0].tag == "dance"  # the caller's hashtags replace the stored ones
    missing = status_of(lambda: stub.Analyze(search_pb2.AnalyzeRequest(id="nobody"), timeout=TIMEOUT))
    assert missing.code() == grpc.StatusCode.NOT_FOUND and "nobody" in missing.details()


@pytest.mark.integration
def test_scroll_only_with_likes(stub, rng):
    for i in range(7):
        upsert(stub, video(f"sc-{i}", rng, likes=i if i % 2 else None))
    seen, offset = [], ""
    while True:
        page = stub.Scroll(
            search_pb2.ScrollRequest(offset=offset, limit=2, only_with_likes=True), timeout=TIMEOUT
        )
        assert len(page.videos) <= 2
        seen += [v.id for v in page.videos]
        offset = page.next_offset
        if not offset:
            break
    assert {i for i in seen if i.startswith("sc-")} == {"sc-1", "sc-3", "sc-5"}
    assert len(seen) == len(set(seen))


@pytest.mark.integration
def test_the_similar_posts_query_sees_the_posts_the_likes_column_sees(stub, rng):
    """Predict's search for the similar posts' likes (reelvec/likes/neighbours.py) through the real
    service: likes known, strictly older, never the post itself, as `neighbours.column` chooses at
    training. Posts in a collection of their own, so that no other test's videos take part; dropped
    after, as the module's other tests expect the aliased collection alone."""
    stub.CreateCollection(search_pb2.CreateCollectionRequest(name="likes_posts"), timeout=TIMEOUT)
    try:
        _similar_posts_match_the_column(stub, rng)
    finally:
        stub.DropCollection(search_pb2.DropCollectionRequest(name="likes_posts"), timeout=TIMEOUT)


def _similar_posts_match_the_column(stub, rng):
    topic = unit(rng, DIMS["fused"])
    posts = []
    for i in range(24):
        # times repeat (a post is not older than one of its own second) and some are unknown (0)
        record = video(f"lp-{i}", rng, likes=None if i % 5 == 4 else 10 * i, fused=near(topic, rng, 1.0))
        record.metadata.created_at = 0 if i % 7 == 6 else 1_700_000_000 + 60 * (i // 2)
        stub.Upsert(search_pb2.UpsertRequest(video=record, collection="likes_posts"), timeout=TIMEOUT)
        posts.append(record)
    known = [p for p in posts if p.metadata.HasField("likes")]
    vectors = np.asarray([p.embeddings.vectors["fused"].values for p in known])
    log_likes = np.log1p([p.metadata.likes for p in known])
    expected = neighbours.column(vectors, log_likes, np.asarray([p.metadata.created_at for p in known]), -1.0, k=5)
    for post, value in zip(known, expected):
        request = search_pb2.QueryRequest(vector=post.embeddings.vectors["fused"], filter=neighbours.search_filter(post),
                                          k=5, with_payload=True, collection="likes_posts")
        hits = stub.Query(request, timeout=TIMEOUT).hits
        assert post.id not in {h.id for h in hits}
        if post.metadata.created_at:
            assert all(0 < h.video.metadata.created_at < post.metadata.created_at for h in hits)
        found = neighbours.weighted([h.score for h in hits], np.log1p([h.video.metadata.likes for h in hits]), -1.0)
        assert found == pytest.approx(value, abs=0.02), post.id
    assert sum(v == -1.0 for v in expected) >= 2  # the oldest posts see none and get the fallback


def test_delete(stub, rng):
    upsert(stub, video("del-1", rng))
    assert stub.Delete(search_pb2.DeleteRequest(id="del-1"), timeout=TIMEOUT).deleted is True
    assert stub.Delete(search_pb2.DeleteRequest(id="del-1"), timeout=TIMEOUT).deleted is False
    error = status_of(lambda: stub.Get(search_pb2.GetRequest(id="del-1"), timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def frame_rows(rng, n) -> np.ndarray:
    rows = rng.standard_normal((n, modalities.FRAME_DIM))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def frames(rows: np.ndarray, start: float = 0.0) -> common_pb2.Frames:
    """One row a second from `start`."""
    return common_pb2.Frames(times=list(start + np.arange(len(rows))), vectors=rows.ravel().tolist(), dim=rows.shape[1])


def spliced(rng, source: np.ndarray, first: int, last: int, before: int, after: int) -> np.ndarray:
    """`before` unrelated frames, source[first:last] re-encoded (noise: cosine about 0.9 to the
    original frame), then `after` unrelated frames: an excerpt inside somebody else's video."""
    copied = source[first:last] + 0.5 * frame_rows(rng, last - first)
    return np.vstack([frame_rows(rng, before), copied, frame_rows(rng, after)])


def with_frames(record: common_pb2.VideoRecord, rows: np.ndarray) -> common_pb2.VideoRecord:
    record.frames.CopyFrom(frames(rows))
    return record


def find_copies(stub, **request) -> search_pb2.FindCopiesResponse:
    return stub.FindCopies(search_pb2.FindCopiesRequest(**request), timeout=TIMEOUT)


@pytest.mark.integration
def test_find_copies_locates_the_copied_seconds(stub, rng):
    source = frame_rows(rng, 30)
    upsert(stub, with_frames(video("fc-src", rng), source))
    upsert(stub, with_frames(video("fc-other", rng), frame_rows(rng, 30)))
    upsert(stub, video("fc-no-frames", rng))
    # seconds 20-27 of the source, at seconds 5-12 of a 25 s clip
    query = spliced(rng, source, 20, 28, before=5, after=12)

    found = find_copies(stub, frames=frames(query), with_payload=True)
    assert [c.id for c in found.copies] == ["fc-src"]
    copy = found.copies[0]
    assert 0.7 < copy.score <= 1 and copy.score == pytest.approx(copy.segments[0].score)
    segment = copy.segments[0]
    located = [segment.query_start, segment.query_end, segment.ref_start, segment.ref_end]
    assert np.allclose(located, [4.5, 12.5, 19.5, 27.5], atol=1.0), located
    assert copy.video.metadata.caption == "caption of fc-src" and not copy.video.embeddings.vectors
    assert not find_copies(stub, frames=frames(query)).copies[0].HasField("video")  # payload when asked
    assert find_copies(stub, frames=frames(query), exclude_id="fc-src").copies == []
    assert find_copies(stub, frames=frames(frame_rows(rng, 25))).copies == []  # nothing copied

    # by id: a stored video's own frames, itself left out; each side finds the other
    upsert(stub, with_frames(video("fc-copy", rng), query))
    assert [c.id for c in find_copies(stub, id="fc-copy").copies] == ["fc-src"]
    back = find_copies(stub, id="fc-src").copies
    assert [c.id for c in back] == ["fc-copy"]
    segment = back[0].segments[0]
    located = [segment.query_start, segment.query_end, segment.ref_start, segment.ref_end]
    assert np.allclose(located, [19.5, 27.5, 4.5, 12.5], atol=1.0), located

    # a record update without frames keeps them; Get with vectors returns them
    upsert(stub, video("fc-src", rng))
    assert [c.id for c in find_copies(stub, id="fc-copy").copies] == ["fc-src"]
    stored = stub.Get(search_pb2.GetRequest(id="fc-src", with_vectors=True), timeout=TIMEOUT)
    assert list(stored.frames.times) == list(range(30)) and stored.frames.dim == modalities.FRAME_DIM
    np.testing.assert_allclose(np.reshape(stored.frames.vectors, (30, -1)), source, atol=1e-6)
    assert not stub.Get(search_pb2.GetRequest(id="fc-src"), timeout=TIMEOUT).HasField("frames")

    # a deleted video is no copy of anything
    stub.Delete(search_pb2.DeleteRequest(id="fc-copy"), timeout=TIMEOUT)
    assert find_copies(stub, id="fc-src").copies == []


@pytest.mark.integration
def test_find_copies_meets_a_picture_shown_small_through_the_views(stub, rng):
    """Whole query frames unlike anything stored, one view of each the stored video's frame (a
    picture-in-picture): found through the views, which vote and align less VIEW_PENALTY; a view
    as close as the whole frames were is no longer enough. Views sent to Upsert are not stored."""
    from reelvec import copies

    source = frame_rows(rng, 20)
    upsert(stub, with_frames(video("fv-src", rng), source))
    inset = source[5:15] + 0.2 * frame_rows(rng, 10)  # cosine about 0.98 to the source frame
    views = np.stack([frame_rows(rng, 10), inset, frame_rows(rng, 10)], axis=1)
    query = copies.Track.of(np.arange(10) + 0.5, frame_rows(rng, 10), views)
    assert find_copies(stub, frames=query.whole().to_proto()).copies == []
    (copy,) = find_copies(stub, frames=query.to_proto()).copies
    assert copy.id == "fv-src" and copy.score < 1 - copies.VIEW_PENALTY + 0.02
    segment = copy.segments[0]
    assert np.allclose([segment.ref_start, segment.ref_end], [5, 14], atol=1.0), segment

    record = video("fv-viewed", rng)
    record.frames.CopyFrom(query.to_proto())
    upsert(stub, record)
    stored = stub.Get(search_pb2.GetRequest(id="fv-viewed", with_vectors=True), timeout=TIMEOUT).frames
    assert stored.views_per_frame == 0 and not stored.view_vectors and len(stored.times) == 10


@pytest.mark.integration
def test_find_copies_rejects_what_it_cannot_answer(stub, rng):
    upsert(stub, video("fcx-no-frames", rng))
    good = frames(frame_rows(rng, 4))
    short = frames(frame_rows(rng, 4)[:, :100])
    uneven = common_pb2.Frames(times=[0.0, 1.0], vectors=[0.5] * modalities.FRAME_DIM, dim=modalities.FRAME_DIM)
    backwards = frames(frame_rows(rng, 3))
    backwards.times[:] = [2.0, 1.0, 0.0]
    zeros = frames(np.zeros((2, modalities.FRAME_DIM)))
    for request in [
        {"frames": short}, {"frames": uneven}, {"frames": backwards}, {"frames": zeros},
        {"frames": common_pb2.Frames(dim=modalities.FRAME_DIM)}, {}, {"frames": good, "k": 101},
    ]:
        error = status_of(lambda: find_copies(stub, **request))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, request
    assert str(modalities.FRAME_DIM) in status_of(lambda: find_copies(stub, frames=short)).details()
    missing = status_of(lambda: find_copies(stub, id="fcx-nobody"))
    assert missing.code() == grpc.StatusCode.NOT_FOUND and "fcx-nobody" in missing.details()
    indexed_before = status_of(lambda: find_copies(stub, id="fcx-no-frames"))
    assert indexed_before.code() == grpc.StatusCode.FAILED_PRECONDITION and "re-index" in indexed_before.details()
    other_model = status_of(lambda: find_copies(stub, frames=good, model_versions={"visual": "effnet-lite0@9"}))
    assert other_model.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert find_copies(stub, frames=good, model_versions={"visual": "effnet-lite0@1"}).copies == []
    error = status_of(lambda: stub.Upsert(search_pb2.UpsertRequest(video=with_frames(video("fcx-bad", rng), frame_rows(rng, 2)[:, :100])),
                                          timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.integration
def test_frames_of_another_descriptor_head_are_never_compared(stub, rng):
    """The visual model exported again with another whitening under the same version: its frames
    and the stored ones cannot be compared, so a query of the new head is refused, the first write
    of the new head drops the old frames (the videos stay), and its own frames are found after."""
    stub.CreateCollection(search_pb2.CreateCollectionRequest(name="heads"), timeout=TIMEOUT)

    def record(video_id, rows, head):
        made = with_frames(video(video_id, rng), rows)
        made.model_versions[modalities.DESCRIPTOR] = head
        return search_pb2.UpsertRequest(video=made, collection="heads")

    def find(rows, head):
        return find_copies(stub, frames=frames(rows), collection="heads",
                           model_versions={"visual": "effnet-lite0@1", modalities.DESCRIPTOR: head})

    old, new = frame_rows(rng, 20), frame_rows(rng, 20)
    stub.Upsert(record("head-old", old, "aaaa"), timeout=TIMEOUT)
    assert [c.id for c in find(old, "aaaa").copies] == ["head-old"]
    error = status_of(lambda: find(old, "bbbb"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "reelvec index --force" in error.details()
    analyzed = stub.Analyze(search_pb2.AnalyzeRequest(  # a Predict still answers, without copies
        embeddings=embeddings(visual=unit(rng, DIMS["visual"]), fused=unit(rng, DIMS["fused"])), frames=frames(old),
        k=3, collection="heads", model_versions={modalities.DESCRIPTOR: "bbbb"}), timeout=TIMEOUT)
    assert not analyzed.copies

    stub.Upsert(record("head-new", new, "bbbb"), timeout=TIMEOUT)
    assert find(old, "bbbb").copies == [] and [c.id for c in find(new, "bbbb").copies] == ["head-new"]
    assert stub.Get(search_pb2.GetRequest(id="head-old", collection="heads"), timeout=TIMEOUT).id == "head-old"
    error = status_of(lambda: find_copies(stub, id="head-old", collection="heads"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "re-index" in error.details()
    listed = stub.ListCollections(search_pb2.ListCollectionsRequest(), timeout=TIMEOUT)
    assert next(c for c in listed.collections if c.name == "heads").model_versions[modalities.DESCRIPTOR] == "bbbb"
    stub.DropCollection(search_pb2.DropCollectionRequest(name="heads"), timeout=TIMEOUT)  # the module's stub is shared


@pytest.mark.integration
def test_analyze_with_frames(stub, rng):
    source = frame_rows(rng, 30)
    record = with_frames(video("af-src", rng, sha="sha-af-src"), source)
    upsert(stub, record)
    unrelated = {"visual": unit(rng, DIMS["visual"]), "fused": unit(rng, DIMS["fused"])}

    def analyze(rows, **request) -> search_pb2.AnalyzeResponse:
        if rows is not None:
            request["frames"] = frames(rows)
        request.setdefault("embeddings", embeddings(**unrelated))
        return stub.Analyze(search_pb2.AnalyzeRequest(k=5, **request), timeout=TIMEOUT)

    # 6 s of the source inside a 30 s clip whose mean vectors resemble nothing stored
    excerpt = spliced(rng, source, 12, 18, before=10, after=14)
    reply = analyze(excerpt)
    assert reply.near_duplicate_of == "af-src" and [c.id for c in reply.copies] == ["af-src"]
    covered = sum(s.query_end - s.query_start for s in reply.copies[0].segments)
    assert covered == pytest.approx(6.0, abs=1.0)
    assert reply.originality <= 1 - covered / 29.5 + 1e-6 and reply.originality <= 0.81
    plain = analyze(None)  # the same clip without its frames: the mean vector sees no copy
    assert plain.near_duplicate_of == "" and not plain.copies and plain.originality > 0.9

    full = analyze(source + 0.3 * frame_rows(rng, 30))  # the whole clip re-encoded
    assert full.near_duplicate_of == "af-src" and full.originality == pytest.approx(0.0, abs=0.02)
    # with frames the copy decision is theirs: the same mean visual vector, other frames, no copy
    same_mean = {**unrelated, "visual": record.embeddings.vectors["visual"].values}
    assert analyze(None, embeddings=embeddings(**same_mean)).near_duplicate_of == "af-src"
    assert analyze(frame_rows(rng, 30), embeddings=embeddings(**same_mean)).near_duplicate_of == ""
    assert analyze(frame_rows(rng, 30), content_sha256="sha-af-src").near_duplicate_of == "af-src"  # same bytes
    assert analyze(excerpt, exclude_id="af-src").copies == []

    # by id: the stored video's own frames; its record comes back with vectors, not frames
    upsert(stub, with_frames(video("af-copy", rng, **unrelated), excerpt))
    by_id = stub.Analyze(search_pb2.AnalyzeRequest(id="af-copy", k=5), timeout=TIMEOUT)
    assert by_id.near_duplicate_of == "af-src" and [c.id for c in by_id.copies] == ["af-src"]
    assert by_id.originality == pytest.approx(reply.originality, abs=0.05)
    assert by_id.video.embeddings.vectors["visual"].values and not by_id.video.HasField("frames")
    short = status_of(lambda: analyze(frame_rows(rng, 3)[:, :100]))
    assert short.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.integration
def test_bad_input_is_rejected_and_the_server_keeps_serving(server, stub, rng):
    wrong_size = video("bad-1", rng, fused=unit(rng, 100))
    error = status_of(lambda: upsert(stub, wrong_size))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "100" in error.details() and str(DIMS["fused"]) in error.details()

    bad_queries = [
        search_pb2.QueryRequest(vector=common_pb2.Vector(values=[1.0] * 5)),
        search_pb2.QueryRequest(modality=common_pb2.MODALITY_AUDIO),  # neither vector nor id
        search_pb2.QueryRequest(vector=common_pb2.Vector(values=[0.0] * DIMS["fused"])),
        search_pb2.QueryRequest(vector=common_pb2.Vector(values=[float("nan")] * DIMS["fused"])),
    ]
    for request in bad_queries:
        error = status_of(lambda: stub.Query(request, timeout=TIMEOUT))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, request
    for record in [video("", rng), common_pb2.VideoRecord(id="no-vectors")]:
        error = status_of(lambda: upsert(stub, record))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = status_of(lambda: stub.Analyze(search_pb2.AnalyzeRequest(), timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = status_of(lambda: stub.Scroll(search_pb2.ScrollRequest(offset="x"), timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT

    for call in [
        lambda: stub.Get(search_pb2.GetRequest(id="nobody"), timeout=TIMEOUT),
        lambda: stub.Query(search_pb2.QueryRequest(id="nobody"), timeout=TIMEOUT),
    ]:
        assert status_of(call).code() == grpc.StatusCode.NOT_FOUND

    assert upsert(stub, video("after-errors", rng)) is True
    assert stub.Get(search_pb2.GetRequest(id="after-errors"), timeout=TIMEOUT).id == "after-errors"
    assert server.proc.poll() is None


def collections(stub) -> search_pb2.ListCollectionsResponse:
    return stub.ListCollections(search_pb2.ListCollectionsRequest(), timeout=TIMEOUT)


def query_ids(stub, vector, **request) -> list[str]:
    query = search_pb2.QueryRequest(vector=common_pb2.Vector(values=list(vector)), k=100, **request)
    return [h.id for h in stub.Query(query, timeout=TIMEOUT).hits]


@pytest.mark.integration
def test_vectors_of_other_model_versions_never_enter_a_collection(stub, rng):
    upsert(stub, video("mv-0", rng))  # whatever ran before: the collection has held a video
    listed = collections(stub)
    active = listed.active
    assert listed.alias == "videos" and [c.name for c in listed.collections] == [active]
    assert collections(stub).collections[0].model_versions["visual"] == "effnet-lite0@1"  # from the first upsert

    newer = video("mv-1", rng)
    newer.model_versions["visual"] = "effnet-lite0@2"
    error = status_of(lambda: upsert(stub, newer))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "effnet-lite0@2" in error.details() and "effnet-lite0@1" in error.details()
    assert status_of(lambda: stub.Get(search_pb2.GetRequest(id="mv-1"), timeout=TIMEOUT)).code() == (
        grpc.StatusCode.NOT_FOUND
    )  # nothing stored

    # a second collection for the new versions takes them, and stays apart from the aliased one
    created = stub.CreateCollection(
        search_pb2.CreateCollectionRequest(name="videos_next", model_versions={"visual": "effnet-lite0@2"}),
        timeout=TIMEOUT,
    )
    assert created.state == search_pb2.CollectionInfo.BUILDING and created.videos == 0
    stub.Upsert(search_pb2.UpsertRequest(video=newer, collection="videos_next"), timeout=TIMEOUT)
    fused = newer.embeddings.vectors["fused"].values
    assert query_ids(stub, fused, collection="videos_next") == ["mv-1"]
    assert "mv-1" not in query_ids(stub, fused)
    # one QueryBatch across both: each query reads its own collection, and an unknown one fails alone
    mixed = [search_pb2.QueryRequest(vector=common_pb2.Vector(values=fused), k=1, collection=name)
             for name in ("videos_next", "", "nothing-here", "videos_next")]
    results = stub.QueryBatch(search_pb2.QueryBatchRequest(queries=mixed), timeout=TIMEOUT).results
    assert [r.WhichOneof("outcome") for r in results] == ["response", "response", "error", "response"]
    assert [[h.id for h in results[i].response.hits] for i in (0, 1, 3)] == [["mv-1"], query_ids(stub, fused)[:1], ["mv-1"]]
    assert results[2].error.code == grpc.StatusCode.NOT_FOUND.value[0] and "nothing-here" in results[2].error.message
    pinned = {"collection": "videos_next", "model_versions": {"visual": "effnet-lite0@1"}}
    error = status_of(lambda: query_ids(stub, fused, **pinned))  # a query vector of the old model
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    text_only = {"modality": common_pb2.MODALITY_VISUAL, **pinned}
    assert status_of(lambda: query_ids(stub, unit(rng, DIMS["visual"]), **text_only)).code() == (
        grpc.StatusCode.FAILED_PRECONDITION
    )

    # the switch: reads through the alias now see the new collection; the old one is kept as retired
    switched = stub.SwitchAlias(search_pb2.SwitchAliasRequest(collection="videos_next"), timeout=TIMEOUT)
    states = {c.name: c.state for c in switched.collections}
    assert switched.active == "videos_next"
    assert states == {"videos_next": search_pb2.CollectionInfo.ACTIVE, active: search_pb2.CollectionInfo.RETIRED}
    assert query_ids(stub, fused) == ["mv-1"]
    assert stub.Get(search_pb2.GetRequest(id="mv-1"), timeout=TIMEOUT).model_versions["visual"] == "effnet-lite0@2"
    error = status_of(lambda: stub.DropCollection(search_pb2.DropCollectionRequest(name="videos_next"), timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION  # the alias's target cannot go

    # and back, dropping the new one: the rest of this module's tests see their data again
    stub.SwitchAlias(search_pb2.SwitchAliasRequest(collection=active, drop_previous=True), timeout=TIMEOUT)
    assert [c.name for c in collections(stub).collections] == [active]
    assert "mv-1" not in query_ids(stub, fused)
    for bad in [search_pb2.SwitchAliasRequest(collection="nothing-here"), search_pb2.SwitchAliasRequest()]:
        code = status_of(lambda: stub.SwitchAlias(bad, timeout=TIMEOUT)).code()
        assert code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    error = status_of(lambda: stub.CreateCollection(search_pb2.CreateCollectionRequest(name="../x"), timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["edge", "qdrant"])
def test_the_alias_survives_a_restart(backend, tmp_path, rng):
    running = start_server(tmp_path, backend)
    stub = search_pb2_grpc.SearchStub(running.channel)
    try:
        # a collection whose fused vectors are smaller (a learned fusion's)
        stub.CreateCollection(search_pb2.CreateCollectionRequest(name="videos_b", dims={"fused": 256}), timeout=TIMEOUT)
        wrong = status_of(lambda: stub.Upsert(search_pb2.UpsertRequest(video=video("alias-0", rng), collection="videos_b"),
                                              timeout=TIMEOUT))
        assert wrong.code() == grpc.StatusCode.INVALID_ARGUMENT and "256" in wrong.details()
        record = video("alias-1", rng, visual=unit(rng, DIMS["visual"]), fused=unit(rng, 256))
        stub.Upsert(search_pb2.UpsertRequest(video=record, collection="videos_b"), timeout=TIMEOUT)
        stub.SwitchAlias(search_pb2.SwitchAliasRequest(collection="videos_b", drop_previous=True), timeout=TIMEOUT)
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(timeout=30) == 0
    finally:
        stop_server(running)
    running = start_server(tmp_path, backend)
    stub = search_pb2_grpc.SearchStub(running.channel)
    try:
        listed = collections(stub)
        assert listed.active == "videos_b" and len(listed.collections) == 1
        assert listed.collections[0].model_versions["visual"] == "effnet-lite0@1" and listed.collections[0].videos == 1
        assert listed.collections[0].dims["fused"] == 256 and listed.collections[0].dims["visual"] == DIMS["visual"]
        assert stub.Get(search_pb2.GetRequest(id="alias-1"), timeout=TIMEOUT).id == "alias-1"
        assert query_ids(stub, record.embeddings.vectors["fused"].values) == ["alias-1"]
    finally:
        stop_server(running)
    if backend == "edge":
        assert not (tmp_path / "search" / "edge" / "videos_v1").exists()  # dropped means gone from disk


@pytest.mark.integration
def test_a_full_disk_refuses_writes_and_the_server_keeps_serving(tmp_path, rng):
    """Edge maps its files into memory, so a write onto a full disk would kill the process (SIGBUS).
    A reserve above the disk's free space stands for a full disk here."""
    reserve_mb = (shutil.disk_usage(tmp_path).free >> 20) + 1024
    running = start_server(tmp_path, "edge", f"--min-free-mb={reserve_mb}")
    stub = search_pb2_grpc.SearchStub(running.channel)
    try:
        record = video("full-1", rng)
        error = status_of(lambda: upsert(stub, record))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "MiB free" in error.details() and "data volume" in error.details()
        assert status_of(lambda: stub.Get(search_pb2.GetRequest(id="full-1"), timeout=TIMEOUT)).code() == (
            grpc.StatusCode.NOT_FOUND)  # nothing partial stored
        assert query_ids(stub, record.embeddings.vectors["fused"].values) == []  # reads go on
        assert running.proc.poll() is None
    finally:
        stop_server(running)


@pytest.mark.integration
def test_sigterm_exits_cleanly(server):
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0, server.log.read_text()


# The formulas, without a server.


def hit(score, *tags) -> base.Hit:
    video = base.StoredVideo("x", payload={"metadata": {"hashtags": list(tags)}})
    return base.Hit("x", score, video)


def test_originality_formula():
    assert originality.similarity_originality([]) == 1.0
    assert originality.similarity_originality([0.2, 0.4]) == pytest.approx(0.7)
    assert originality.similarity_originality([1.0000001, 1.0]) == 0.0  # clipped
    assert originality.similarity_originality([-0.3, -0.1]) == 1.0
    assert originality.similarity_originality([0.2, 0.4], closest_copy=0.97) == pytest.approx(0.03)  # a copy is not original


def test_hashtag_suggestions_follow_the_closest_neighbours():
    neighbours = [
        hit(0.9, "Dance", "#fyp"),
        hit(0.85, "dance", "dance", "cats"),
        hit(0.78, "cats", "cooking"),
        hit(0.75, "cooking"),
        hit(0.74, "cooking"),
        hit(0.3, "x"),  # under the similarity floor: no vote
    ]
    suggestions = dict(analysis.suggest_hashtags(neighbours, known=["FYP"]))
    # weights e^0, e^-1, e^-2.4, e^-3, e^-3.2: three close-ish "cooking" videos do not outvote the two
    # closest; fyp is known; "x" and anything under a fifth of the best tag's score is dropped
    w = [math.exp((s - 0.9) / analysis.HASHTAG_TEMPERATURE) for s in (0.9, 0.85, 0.78, 0.75, 0.74)]
    assert list(suggestions) == ["dance", "cats"]
    assert suggestions["dance"] == pytest.approx(1.0)
    assert suggestions["cats"] == pytest.approx((w[1] + w[2]) / (w[0] + w[1]))
    assert (w[2] + w[3] + w[4]) / (w[0] + w[1]) < analysis.HASHTAG_MIN_SCORE  # cooking's share
    assert analysis.suggest_hashtags([], known=[]) == []
    assert analysis.suggest_hashtags([hit(0.3, "x")], known=[]) == []  # nothing similar enough


def test_analyze_on_an_empty_corpus(tmp_path):
    store = EdgeStore(tmp_path / "edge", DIMS, optimize_after=0)
    try:
        vectors = {"visual": [1.0] * DIMS["visual"]}
        result = analysis.analyze(store, vectors, k=5, content_sha256="abc")
        assert result == analysis.Analysis(1.0, "", [], [])
    finally:
        store.close()


def test_frames_ahead_of_their_record_copy_nothing(tmp_path, rng):
    """A first upsert that failed after writing its frames leaves frames of no stored video: they
    must not come back as a copy."""
    store = EdgeStore(tmp_path / "edge", DIMS, optimize_after=0)
    try:
        rows = frame_rows(rng, 10)
        failed = base.StoredVideo("ghost", {"visual": [1.0] * 5}, frames=copies.Track.of(np.arange(10), rows))
        with pytest.raises(Exception, match="dim"):
            store.upsert(failed)
        assert set(store.frames_of({"ghost"})) == {"ghost"} and store.get("ghost") is None
        assert analysis.find_copies(store, copies.Track.of(np.arange(10), rows), k=10) == []
    finally:
        store.close()


def test_records_round_trip_and_fields_from_a_newer_version_are_dropped():
    from services.search import records

    record = common_pb2.VideoRecord(
        id="v1", duration=12.5,
        metadata=common_pb2.VideoMetadata(caption="hi", hashtags=["a", "b"], likes=0,
                                          author=common_pb2.AuthorStats(id="al", followers=7)),
    )
    stored = records.to_stored(record)
    assert stored.payload[records.WIRE] and stored.payload["metadata"]["author"]["id"] == "al"
    assert records.to_record(stored) == record
    # stored before the wire record existed, by a version that also wrote a field unknown here
    fields = {name: value for name, value in stored.payload.items() if name != records.WIRE}
    older = base.StoredVideo(id="v2", payload={**fields, "added_later": 1})
    # hits are built in place in the response, from the wire record or from the fields
    response = search_pb2.QueryResponse()
    records.add_hits(response.hits, [base.Hit("v1", 0.9, stored), base.Hit("v2", 0.8, older), base.Hit("v3", 0.7)])
    assert [(h.id, round(h.score, 3)) for h in response.hits] == [("v1", 0.9), ("v2", 0.8), ("v3", 0.7)]
    assert response.hits[0].video == record
    assert response.hits[1].video.id == "v2" and response.hits[1].video.metadata == record.metadata
    assert not response.hits[2].HasField("video")

    older.payload["metadata"]["author"]["also_later"] = "x"
    assert records.to_record(older) == common_pb2.VideoRecord(
        id="v2", duration=12.5, metadata=record.metadata
    )


def test_media_store_keeps_bytes_by_content(tmp_path):
    from services.gateway.media_store import MediaStore

    media = MediaStore(tmp_path / "media")
    sha = "ab" + "0" * 62
    path = media.put(sha, b"video bytes")
    assert path == tmp_path / "media" / "ab" / sha and path.read_bytes() == b"video bytes"
    assert media.put(sha, b"ignored: same content") == path and path.read_bytes() == b"video bytes"
    assert list(path.parent.iterdir()) == [path]  # no partial files left behind
    assert media.remove(sha) and not media.remove(sha)
    with pytest.raises(ValueError, match="sha256"):
        media.path("../../etc/passwd")


def test_hits_of_videos_stored_before_the_wire_record_still_carry_their_record(tmp_path, rng):
    """Hits are built from the record serialized at upsert; a video an older version stored has
    only the fields, and its hit must still carry them."""
    from services.search import records
    from services.search.catalog import open_catalog
    from services.search.server import SearchServicer
    from services.search.settings import SearchSettings

    settings = SearchSettings(data_dir=str(tmp_path), optimize_after=0)
    servicer = SearchServicer(settings)
    servicer.attach(open_catalog(settings))
    try:
        anchor = unit(rng, DIMS["fused"])
        new = video("new", rng, author="an", hashtags=("x",), likes=4, fused=near(anchor, rng, 0.05))
        old = video("old", rng, author="ao", hashtags=("y",), likes=9, fused=near(anchor, rng, 0.05))
        asyncio.run(servicer.Upsert(search_pb2.UpsertRequest(video=new), None))
        stored = records.to_stored(old)
        del stored.payload[records.WIRE]
        servicer.store.upsert(stored)
        request = search_pb2.QueryRequest(vector=common_pb2.Vector(values=anchor), k=2, with_payload=True)
        batch = asyncio.run(servicer.QueryBatch(search_pb2.QueryBatchRequest(queries=[request]), None))
        got = {hit.id: hit.video for hit in batch.results[0].response.hits}
        for record in (new, old):
            record.ClearField("embeddings")
            assert got[record.id] == record
    finally:
        servicer.detach().close()
