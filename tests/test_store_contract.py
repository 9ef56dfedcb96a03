"""One contract for every VideoStore backend.

qdrant-client runs in its local mode here (`path=` on disk): no Qdrant server can run on the
development machines, and local mode answers through the same client API a server does. The edge
store gets tiny index thresholds so that after `optimize()` a few hundred points are really searched
through the HNSW graph.
"""

import json
import re
import shutil
import time
import uuid

import numpy as np
import pytest
import qdrant_edge as qe

from reelvec import copies, errors, modalities
from services.search.stores import base, quantization
from services.search.stores.edge import EdgeStore
from services.search.stores.qdrant import QdrantStore

DIMS = modalities.DIMS
# Index and walk the graph even at test sizes (Qdrant's defaults scan anything under ~10 MB).
SMALL_CORPUS_HNSW = {"indexing_threshold_kb": 1, "full_scan_threshold_kb": 10}
FUSED, VISUAL, AUDIO, TEXT = modalities.FUSED, modalities.VISUAL, modalities.AUDIO, modalities.TEXT

BACKENDS = {
    "edge": lambda path, dims=DIMS: EdgeStore(path / "edge", dims, optimize_after=0, **SMALL_CORPUS_HNSW),
    "qdrant-local": lambda path, dims=DIMS: QdrantStore("videos_test", dims, path=str(path / "qdrant")),
}


@pytest.fixture(params=list(BACKENDS))
def open_store(request, tmp_path):
    """Opens the backend on the same directory each time it is called."""
    return lambda: BACKENDS[request.param](tmp_path)


@pytest.fixture
def store(open_store):
    opened = open_store()
    yield opened
    opened.close()


def unit(rng, dim) -> list[float]:
    v = rng.standard_normal(dim)
    return (v / np.linalg.norm(v)).tolist()


def payload(author="a1", hashtags=(), likes=None, created_at=0, sha="", incomplete=()) -> dict:
    metadata = {"author": {"id": author, "followers": 10}, "hashtags": list(hashtags)}
    if likes is not None:
        metadata["likes"] = likes
    if created_at:
        metadata["created_at"] = created_at
    out = {"metadata": metadata}
    if sha:
        out["content_sha256"] = sha
    if incomplete:
        out["incomplete"] = list(incomplete)
    return out


def ids(hits) -> set[str]:
    return {h.id for h in hits}


def test_upsert_get_round_trip(store):
    rng = np.random.default_rng(1)
    vectors = {VISUAL: unit(rng, DIMS[VISUAL]), TEXT: unit(rng, DIMS[TEXT])}
    full = {
        "metadata": {
            "caption": "a cat — on a piano 🎹",
            "hashtags": ["cat", "piano"],
            "likes": 2**62 + 1,  # int64 range, beyond float precision
            "views": 0,
            "created_at": 1_700_000_000,
            "author": {"id": "au", "followers": 12, "following": 3, "likes": 99, "videos": 4},
        },
        "duration": 12.345678901234567,
        "content_sha256": "ab" * 32,
        "model_versions": {"visual": "effnet-lite0@1", "text": "minilm@1"},
        "has_audio": True,
        "width": 1080,
        "height": 1920,
    }
    assert store.upsert(base.StoredVideo("v:1/é", vectors, full)) is True

    got = store.get("v:1/é")
    assert got == base.StoredVideo("v:1/é", {}, full)
    with_vectors = store.get("v:1/é", with_vectors=True)
    assert set(with_vectors.vectors) == {VISUAL, TEXT}
    for name, values in vectors.items():
        np.testing.assert_allclose(with_vectors.vectors[name], values, atol=1e-6)
    assert store.get("unknown") is None
    assert store.count() == 1


def test_upsert_is_idempotent_by_id(store):
    rng = np.random.default_rng(2)
    first = {VISUAL: unit(rng, DIMS[VISUAL]), AUDIO: unit(rng, DIMS[AUDIO])}
    second = {VISUAL: unit(rng, DIMS[VISUAL])}
    assert store.upsert(base.StoredVideo("v", first, payload(likes=1))) is True
    assert store.upsert(base.StoredVideo("v", second, payload(likes=2))) is False
    assert store.count() == 1
    got = store.get("v", with_vectors=True)
    assert got.payload == payload(likes=2)
    assert set(got.vectors) == {VISUAL}  # replaced whole: the old audio vector is gone
    assert store.search(AUDIO, first[AUDIO], None, 10, False) == []


def test_delete(store):
    rng = np.random.default_rng(3)
    store.upsert(base.StoredVideo("gone", {VISUAL: unit(rng, DIMS[VISUAL])}, payload()))
    store.upsert(base.StoredVideo("kept", {VISUAL: unit(rng, DIMS[VISUAL])}, payload()))
    assert store.delete("gone") is True
    assert store.delete("gone") is False
    assert store.get("gone") is None
    assert store.count() == 1
    assert ids(store.search(VISUAL, unit(rng, DIMS[VISUAL]), None, 10, False)) == {"kept"}


CORPUS = {
    "a": payload("alice", ["cat", "piano"], likes=10, created_at=100, sha="s-a"),
    "b": payload("bob", ["dog"], likes=100, created_at=200),
    "c": payload("carol", ["cat"], likes=0, created_at=300, incomplete=["transcript"]),
    "d": payload("alice", [], likes=1000, created_at=400),
    "e": payload("bob", ["piano"], created_at=500, sha="s-e"),  # likes unknown
}
FILTER_CASES = {
    "author any-of": (base.Filter(author_ids=["alice", "carol"]), "acd"),
    "hashtag any-of": (base.Filter(hashtags=["cat", "dog"]), "abc"),
    "likes inclusive range": (base.Filter(likes=base.Range(gte=10, lte=100)), "ab"),
    "likes open upper bound": (base.Filter(likes=base.Range(gte=100)), "bd"),
    "created_at inclusive upper bound": (base.Filter(created_at=base.Range(lte=300)), "abc"),
    "created_at range": (base.Filter(created_at=base.Range(gte=200, lte=400)), "bcd"),
    "exclude ids": (base.Filter(exclude_ids=["a", "e", "unknown"]), "bcd"),
    "only with likes (0 counts)": (base.Filter(only_with_likes=True), "abcd"),
    "content sha256": (base.Filter(content_sha256="s-e"), "e"),
    "only incomplete (stored degraded)": (base.Filter(only_incomplete=True), "c"),
    "all kinds at once": (
        base.Filter(
            author_ids=["alice", "bob"],
            hashtags=["piano", "dog"],
            likes=base.Range(gte=5),
            exclude_ids=["b"],
        ),
        "a",
    ),
    "empty filter": (base.Filter(), "abcde"),
}


@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_filters(store, case):
    rng = np.random.default_rng(4)
    for video_id, meta in CORPUS.items():
        store.upsert(base.StoredVideo(video_id, {TEXT: unit(rng, DIMS[TEXT])}, meta))
    flt, expected = FILTER_CASES[case]
    assert ids(store.search(TEXT, unit(rng, DIMS[TEXT]), flt, 100, False)) == set(expected)
    videos, _ = store.scroll(limit=100, filter=flt)
    assert {v.id for v in videos} == set(expected)


def test_missing_modality(store):
    rng = np.random.default_rng(5)
    both = {VISUAL: unit(rng, DIMS[VISUAL]), AUDIO: unit(rng, DIMS[AUDIO])}
    store.upsert(base.StoredVideo("both", both, {}))
    store.upsert(base.StoredVideo("silent", {VISUAL: unit(rng, DIMS[VISUAL])}, {}))
    assert ids(store.search(AUDIO, unit(rng, DIMS[AUDIO]), None, 10, False)) == {"both"}
    assert ids(store.search(VISUAL, unit(rng, DIMS[VISUAL]), None, 10, False)) == {"both", "silent"}
    assert set(store.get("silent", with_vectors=True).vectors) == {VISUAL}
    with pytest.raises(errors.NotFound, match="no audio vector"):
        store.query(AUDIO, video_id="silent")


def test_query_by_id_excludes_the_video_itself(store):
    rng = np.random.default_rng(6)
    base_vector = np.asarray(unit(rng, DIMS[FUSED]))
    for i in range(4):
        near = base_vector + 0.05 * (i + 1) * np.asarray(unit(rng, DIMS[FUSED]))
        store.upsert(base.StoredVideo(f"v{i}", {FUSED: near.tolist()}, payload(likes=i)))
    hits = store.query(FUSED, video_id="v0", k=10, with_payload=True)
    assert [h.id for h in hits] == ["v1", "v2", "v3"]  # v0 itself left out, nearest first
    assert hits[0].video.payload == payload(likes=1)
    # named keys only; a point without one has its payload without it
    store.upsert(base.StoredVideo("v4", {FUSED: base_vector.tolist()}, {"duration": 3.0}))
    picked = store.query(FUSED, video_id="v0", k=2, with_payload=("duration", "content_sha256"))
    assert [(h.id, h.video.payload) for h in picked] == [("v4", {"duration": 3.0}), ("v1", {})]
    with pytest.raises(errors.NotFound):
        store.query(FUSED, video_id="nobody")


def test_query_batch_answers_each_query_as_query_alone_would(store):
    rng = np.random.default_rng(8)
    fused = {}
    for i in range(6):
        vectors = {FUSED: unit(rng, DIMS[FUSED])}
        if i % 2 == 0:
            vectors[AUDIO] = unit(rng, DIMS[AUDIO])
        fused[f"v{i}"] = vectors[FUSED]
        store.upsert(base.StoredVideo(f"v{i}", vectors, payload(author=f"a{i % 3}", likes=i)))
    store.optimize()
    queries = [
        base.Query(FUSED, video_id="v0", k=3, with_payload=True),
        base.Query(AUDIO, video_id="v1"),  # v1 has no audio vector
        base.Query(FUSED, vector=unit(rng, DIMS[FUSED]), k=4),
        base.Query(FUSED, video_id="nobody"),
        base.Query(AUDIO, video_id="v2", filter=base.Filter(author_ids=["a0", "a1"])),
        base.Query(FUSED, video_id="v0", k=2),  # the same video twice in one batch
        base.Query(FUSED, vector=fused["v3"], k=2, exclude_id="v3"),  # by vector, its video left out
    ]
    answers = store.query_batch(queries)
    assert len(answers) == len(queries)
    for query, answer in zip(queries, answers):
        fields = {f: getattr(query, f) for f in ("modality", "vector", "video_id", "filter", "k", "with_payload", "exclude_id")}
        try:
            alone = store.query(**fields)
        except errors.NotFound as exc:
            assert isinstance(answer, errors.NotFound) and str(answer) == str(exc)
            continue
        assert [h.id for h in answer] == [h.id for h in alone]
        assert np.allclose([h.score for h in answer], [h.score for h in alone], atol=1e-6)
        assert [h.video for h in answer] == [h.video for h in alone]
    assert "no audio vector" in str(answers[1]) and "'nobody'" in str(answers[3])
    assert len(answers[0]) == 3 and "v0" not in ids(answers[0]) and answers[0][0].video.payload["metadata"]
    assert ids(answers[4]) == {"v0", "v4"}  # an audio vector and author a0 or a1 (v2 is a2)
    assert [h.id for h in answers[5]] == [h.id for h in answers[0][:2]]
    assert len(answers[6]) == 2 and "v3" not in ids(answers[6])
    assert [h.id for h in answers[6]] == [h.id for h in store.query(FUSED, video_id="v3", k=2)]
    assert store.query_batch([]) == []


def track(rng, n, start=0.0) -> copies.Track:
    """n frame descriptors a second apart from `start`."""
    return copies.Track.of(start + np.arange(n), rng.standard_normal((n, modalities.FRAME_DIM)))


def same_frames(got: copies.Track, expected: copies.Track) -> None:
    np.testing.assert_allclose(got.times, expected.times)
    np.testing.assert_allclose(got.vectors, expected.vectors, atol=1e-6)


def test_frames_are_kept_replaced_and_deleted_with_their_video(open_store):
    rng = np.random.default_rng(16)
    vectors = {VISUAL: unit(rng, DIMS[VISUAL])}
    first, others = track(rng, 6), track(rng, 4)
    store = open_store()
    try:
        assert store.upsert(base.StoredVideo("f", vectors, payload(likes=1), frames=first)) is True
        store.upsert(base.StoredVideo("other", vectors, payload(), frames=others))
        found = store.frames_of({"f", "other", "unknown"})
        assert set(found) == {"f", "other"}  # a video without frames is absent
        same_frames(found["f"], first)
        same_frames(found["other"], others)
        assert store.get("f").frames is None  # reads of the record leave them out
        # a record update without frames (a background completion) keeps them
        assert store.upsert(base.StoredVideo("f", vectors, payload(likes=2))) is False
        same_frames(store.frames_of({"f"})["f"], first)
        assert store.get("f").payload == payload(likes=2)
        assert store.count() == 2  # videos, not frames
    finally:
        store.close()

    store = open_store()  # the frames survive a reopen
    try:
        same_frames(store.frames_of({"f"})["f"], first)
        # new frames replace the old ones, and the old ones past the new ones go too
        fewer = track(rng, 3, start=0.5)
        store.upsert(base.StoredVideo("f", vectors, payload(), frames=fewer))
        same_frames(store.frames_of({"f"})["f"], fewer)
        old_hits = store.search_frames(first.vectors, 3)
        assert not any(video_id == "f" and score > 0.99 for hits in old_hits for video_id, score in hits)

        assert store.delete("f") is True
        assert store.frames_of({"f"}) == {}
        assert all(video_id != "f" for hits in store.search_frames(fewer.vectors, 10) for video_id, _ in hits)
        assert set(store.frames_of({"other"})) == {"other"} and store.count() == 1
        assert store.frames_of(set()) == {}
    finally:
        store.close()


def test_a_frame_index_of_an_older_descriptor_size_is_dropped_and_the_videos_kept(open_store, monkeypatch):
    """Frames made before the descriptors were whitened (the visual model's 1280-d rows) cannot be
    compared with today's: reopened, the store drops them, keeps the videos, and takes new frames."""
    rng = np.random.default_rng(23)
    vectors = {VISUAL: unit(rng, DIMS[VISUAL])}
    monkeypatch.setattr(modalities, "FRAME_DIM", DIMS[VISUAL])
    store = open_store()
    try:
        store.upsert(base.StoredVideo("old", vectors, payload(), frames=track(rng, 4)))
    finally:
        store.close()
    monkeypatch.undo()
    store = open_store()
    try:
        assert store.count() == 1 and store.get("old") is not None
        assert store.frames_of({"old"}) == {}
        fresh = track(rng, 3)
        store.upsert(base.StoredVideo("old", vectors, payload(), frames=fresh))
        same_frames(store.frames_of({"old"})["old"], fresh)
    finally:
        store.close()


def test_drop_frames_takes_every_videos_frames_and_keeps_the_videos(store):
    """Descriptors of another head than today's queries' go all at once; new frames come after."""
    rng = np.random.default_rng(24)
    vectors = {VISUAL: unit(rng, DIMS[VISUAL])}
    for video_id in ("a", "b"):
        store.upsert(base.StoredVideo(video_id, vectors, payload(), frames=track(rng, 4)))
    store.drop_frames()
    assert store.frames_of({"a", "b"}) == {} and store.count() == 2
    assert store.search_frames(np.asarray(track(rng, 2).vectors), 5) == [[], []]
    fresh = track(rng, 3)
    store.upsert(base.StoredVideo("b", vectors, payload(), frames=fresh))
    same_frames(store.frames_of({"a", "b"})["b"], fresh)
    assert set(store.frames_of({"a", "b"})) == {"b"}


def test_frames_written_without_their_track_point_are_read_from_their_vectors(store, monkeypatch):
    """Frames an earlier version wrote carry their descriptors only as the frame points' vectors."""
    rng = np.random.default_rng(20)
    vectors = {VISUAL: unit(rng, DIMS[VISUAL])}
    new, old = track(rng, 4), track(rng, 5)
    store.upsert(base.StoredVideo("new", vectors, payload(), frames=new))
    with_track = base.frame_points
    monkeypatch.setattr(base, "frame_points", lambda video_id, t: [
        point for point in with_track(video_id, t) if point[0] != base.track_point_id(video_id)])
    store.upsert(base.StoredVideo("old", vectors, payload(), frames=old))
    found = store.frames_of({"new", "old", "unknown"})
    assert set(found) == {"new", "old"}
    same_frames(found["new"], new)
    same_frames(found["old"], old)
    assert found["new"].vectors.dtype == found["old"].vectors.dtype == np.float32
    assert all(len(hits) == 4 + 5 for hits in store.search_frames(new.vectors, 20))  # frames, no track point


def test_frame_hits_are_named_by_one_read_per_video_and_older_ids_too(store, monkeypatch):
    """A frame search reads one hit's payload per video it found (the frame ids begin with the
    video's key), not one per hit; frames written under the older ids (a name-based UUID each) are
    found and named too, one read each; `min_score` leaves out what is under it."""
    rng = np.random.default_rng(26)
    vectors = {VISUAL: unit(rng, DIMS[VISUAL])}
    tracks = {f"k{i}": track(rng, 6) for i in range(3)}
    for video_id in ("k0", "k1"):
        store.upsert(base.StoredVideo(video_id, vectors, payload(), frames=tracks[video_id]))
    with monkeypatch.context() as older:
        older.setattr(base, "frame_point_id", lambda video_id, i: uuid.uuid5(base._FRAME_NAMESPACE, f"{i}:{video_id}"))
        store.upsert(base.StoredVideo("k2", vectors, payload(), frames=tracks["k2"]))
    reads, named = [], store._video_ids_of
    monkeypatch.setattr(store, "_video_ids_of", lambda ids: reads.append(len(ids)) or named(ids))
    query = np.concatenate([tracks[video_id].vectors for video_id in tracks])
    answers = store.search_frames(query, 20)
    assert [hits[0][0] for hits in answers] == [video_id for video_id in tracks for _ in range(6)]
    assert all(len(hits) == 18 for hits in answers)  # every stored frame, each named
    assert reads == [2 + 6]
    close = store.search_frames(query, 20, min_score=0.9)  # random rows: only each row's own frame
    assert [[video_id for video_id, _ in hits] for hits in close] == [[video_id] for video_id in tracks for _ in range(6)]


def test_a_failed_upsert_leaves_the_old_record_and_its_retry_the_new_frames(store):
    """The frames are written before the video point, so a write that fails leaves frames ahead of
    their record; the retry replaces them, and a delete of an id whose record never got stored
    still takes its frames."""
    rng = np.random.default_rng(19)
    vectors = {VISUAL: unit(rng, DIMS[VISUAL])}
    store.upsert(base.StoredVideo("u", vectors, payload(likes=1), frames=track(rng, 5)))
    new = track(rng, 3)
    broken = {VISUAL: [1.0] * 5}  # the engine refuses the video point
    with pytest.raises(Exception, match="dim"):
        store.upsert(base.StoredVideo("u", broken, payload(likes=2), frames=new))
    assert store.get("u").payload == payload(likes=1)
    store.upsert(base.StoredVideo("u", vectors, payload(likes=2), frames=new))
    same_frames(store.frames_of({"u"})["u"], new)

    with pytest.raises(Exception, match="dim"):
        store.upsert(base.StoredVideo("never", broken, payload(), frames=track(rng, 2)))
    assert store.get("never") is None and store.delete("never") is False
    assert store.frames_of({"never"}) == {}


def test_search_frames_finds_each_frames_video_and_never_exclude_id(store):
    rng = np.random.default_rng(17)
    tracks = {f"t{i}": track(rng, 20) for i in range(6)}
    for video_id, frames in tracks.items():
        store.upsert(base.StoredVideo(video_id, {VISUAL: unit(rng, DIMS[VISUAL])}, payload(), frames=frames))
    rows = tracks["t2"].vectors[[3, 8, 15]]
    noisy = rows + 0.3 * rng.standard_normal(rows.shape) / np.sqrt(DIMS[VISUAL])

    def check(answers, k):
        assert len(answers) == 3 and all(len(hits) == k for hits in answers)
        for hits in answers:
            scores = [score for _, score in hits]
            assert scores == sorted(scores, reverse=True)
        assert [hits[0][0] for hits in answers] == ["t2"] * 3 and min(hits[0][1] for hits in answers) > 0.9
        left_out = store.search_frames(noisy, k, exclude_id="t2")
        assert len(left_out) == 3 and all(len(hits) == k for hits in left_out)
        assert all(video_id != "t2" for hits in left_out for video_id, _ in hits)

    check(store.search_frames(noisy, 5), 5)  # before any index: an exact scan
    store.optimize()  # edge: the frames get their graph too
    check(store.search_frames(noisy, 5), 5)
    check(store.search_frames(noisy, 5, ef=8), 5)  # a narrower walk (the query views') still finds them
    assert store.search_frames(noisy[:0], 5) == []
    assert store.count() == 6


def test_drop_takes_the_frames_with_it(open_store):
    rng = np.random.default_rng(18)
    store = open_store()
    store.upsert(base.StoredVideo("d", {VISUAL: unit(rng, DIMS[VISUAL])}, payload(), frames=track(rng, 5)))
    store.drop()
    store = open_store()
    try:
        assert store.count() == 0 and store.frames_of({"d"}) == {}
        assert store.search_frames(track(rng, 2).vectors, 5) == [[], []]
    finally:
        store.close()


def clustered(rng, n, dim, clusters=12, spread=0.35) -> np.ndarray:
    centers = rng.standard_normal((clusters, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    noise = spread * 4 / np.sqrt(dim) * rng.standard_normal((n, dim))
    points = centers[rng.integers(0, clusters, n)] + noise
    return points.astype(np.float32)


def recall_at_10(store, corpus: np.ndarray, queries: np.ndarray) -> tuple[float, float]:
    """Mean recall@10 against exact numpy cosine, and the largest score difference."""
    normed = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    recalls, worst = [], 0.0
    for q in queries:
        exact = normed @ (q / np.linalg.norm(q))
        truth = np.argsort(-exact)[:10]
        hits = store.search(FUSED, q.tolist(), None, 10, False)
        found = [int(h.id) for h in hits]
        recalls.append(len(set(found) & set(truth.tolist())) / 10)
        worst = max(worst, max(abs(h.score - exact[int(h.id)]) for h in hits))
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    return float(np.mean(recalls)), worst


def test_knn_matches_exact_cosine(store):
    rng = np.random.default_rng(7)
    corpus = clustered(rng, 300, DIMS[FUSED])
    for i, vector in enumerate(corpus):
        store.upsert(base.StoredVideo(str(i), {FUSED: vector.tolist()}, {}))
    queries = corpus[rng.choice(len(corpus), 25, replace=False)] + 0.05 * rng.standard_normal(
        (25, DIMS[FUSED])
    ).astype(np.float32) / np.sqrt(DIMS[FUSED])

    recall, worst = recall_at_10(store, corpus, queries)  # before any index: an exact scan
    assert recall == 1.0
    assert worst < 1e-4
    store.optimize()  # edge builds HNSW here; a Qdrant server would index on its own
    recall, worst = recall_at_10(store, corpus, queries)
    assert recall >= 0.98
    assert worst < 1e-4


def test_data_survives_reopen(open_store):
    rng = np.random.default_rng(8)
    vectors = {name: {VISUAL: unit(rng, DIMS[VISUAL])} for name in "xyz"}
    store = open_store()
    for video_id, v in vectors.items():
        store.upsert(base.StoredVideo(video_id, v, payload(video_id, likes=len(video_id))))
    store.delete("z")
    store.close()

    store = open_store()
    try:
        assert store.count() == 2
        x = store.get("x", with_vectors=True)
        assert x.payload == payload("x", likes=1)
        np.testing.assert_allclose(x.vectors[VISUAL], vectors["x"][VISUAL], atol=1e-6)
        assert store.get("z") is None
        assert store.query(VISUAL, video_id="x", k=5)[0].id == "y"
        assert store.upsert(base.StoredVideo("x", vectors["x"], payload())) is False
    finally:
        store.close()


def test_scroll_pages_only_with_likes(store):
    rng = np.random.default_rng(9)
    with_likes = set()
    for i in range(25):
        likes = i * 3 if i % 5 else None  # every fifth video has unknown likes; likes=0 is known
        store.upsert(base.StoredVideo(f"s{i}", {TEXT: unit(rng, DIMS[TEXT])}, payload(likes=likes)))
        if likes is not None:
            with_likes.add(f"s{i}")

    def pages(flt, with_vectors=False):
        seen, offset, count = [], None, 0
        while True:
            videos, offset = store.scroll(offset, 4, with_vectors, flt)
            assert len(videos) <= 4
            seen += videos
            count += 1
            if offset is None:
                return seen, count

    seen, count = pages(base.Filter(only_with_likes=True), with_vectors=True)
    assert sorted(v.id for v in seen) == sorted(with_likes)  # each exactly once
    assert count == 5  # 20 videos in pages of 4
    assert all(set(v.vectors) == {TEXT} for v in seen)
    assert all("likes" in v.payload["metadata"] for v in seen)
    everything, _ = pages(None)
    assert len({v.id for v in everything}) == len(everything) == 25
    assert everything[0].vectors == {}
    with pytest.raises(errors.InvalidInput):
        store.scroll("not-a-cursor", 4)


def test_edge_idle_optimizer_builds_the_index(tmp_path):
    store = EdgeStore(
        tmp_path / "edge", DIMS, optimize_after=5, idle_seconds=0.2, **SMALL_CORPUS_HNSW
    )
    try:
        rng = np.random.default_rng(10)
        vectors = [unit(rng, DIMS[TEXT]) for _ in range(30)]
        for i, v in enumerate(vectors):
            store.upsert(base.StoredVideo(str(i), {TEXT: v}, {}))
        assert store.indexed_vectors_count == 0  # not indexed yet, and still searched exactly:
        assert store.search(TEXT, vectors[7], None, 1, False)[0].id == "7"
        deadline = time.monotonic() + 30
        while store.indexed_vectors_count == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.indexed_vectors_count >= 30
        assert store.search(TEXT, vectors[7], None, 1, False)[0].id == "7"
    finally:
        store.close()


def test_edge_indexes_under_steady_searches_once_writes_settle(tmp_path):
    """Searches that never pause would keep the idle optimizer from ever running, and every query
    would scan the unindexed points exactly: once writes have paused and the oldest unindexed one is
    `optimize_max_wait` old, the watcher indexes anyway. With it off the index never comes."""
    rng = np.random.default_rng(15)
    vectors = [unit(rng, DIMS[TEXT]) for _ in range(30)]

    def indexed_while_searching(max_wait: float, seconds: float) -> int:
        store = EdgeStore(tmp_path / f"edge{max_wait}", DIMS, optimize_after=5, idle_seconds=1.0,
                          optimize_max_wait=max_wait, **SMALL_CORPUS_HNSW)
        try:
            for i, v in enumerate(vectors):
                store.upsert(base.StoredVideo(str(i), {TEXT: v}, {}))
            deadline = time.monotonic() + seconds
            while store.indexed_vectors_count == 0 and time.monotonic() < deadline:
                assert store.search(TEXT, vectors[7], None, 1, False)[0].id == "7"
                time.sleep(0.05)  # never idle: a search every ~50 ms, against the 1 s it would take
            return store.indexed_vectors_count
        finally:
            store.close()

    assert indexed_while_searching(max_wait=0, seconds=2) == 0
    assert indexed_while_searching(max_wait=1.0, seconds=30) >= 30


def test_edge_graph_settings_reach_the_engine(tmp_path):
    from services.search.catalog import open_edge_store
    from services.search.settings import SearchSettings

    def opened_with(**graph) -> dict:
        settings = SearchSettings(data_dir=str(tmp_path), optimize_after=0, **graph)
        open_edge_store(settings, tmp_path / "edge", DIMS).close()
        return json.loads((tmp_path / "edge" / "edge_config.json").read_text())["hnsw_config"]

    default = opened_with()
    assert (default["m"], default["ef_construct"], default["full_scan_threshold"]) == (16, 100, 10_000)
    larger = opened_with(hnsw_m=32, hnsw_ef_construct=200)  # an existing shard takes new settings
    assert (larger["m"], larger["ef_construct"]) == (32, 200)


def _fill_wal(store: EdgeStore, seed: int) -> int:
    """150 MB of fused vectors straight into the shard (Qdrant's WAL files are 32 MB, and it keeps
    the last one or two); returns the WAL's size."""
    rng = np.random.default_rng(seed)
    for start in range(0, 20000, 500):
        store._check_space()  # straight into the shard skips the store's guard: a full disk is SIGBUS
        points = [qe.Point(base.point_id(str(i)), {FUSED: unit(rng, DIMS[FUSED])}, {base.VIDEO_ID: str(i)})
                  for i in range(start, start + 500)]
        store._shard.update(qe.UpdateOperation.upsert_points(points))
    return _size(store._path / "wal")


def _size(folder) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_edge_frame_search_without_rescoring_keeps_the_int8_scores(tmp_path):
    """Rescored, a frame's neighbours come with exact cosines; without, with the int8 copy's, a few
    thousandths off, and the same nearest videos (the vote reads them at a threshold of 0.6)."""
    rng = np.random.default_rng(25)
    tracks = {f"v{i}": track(rng, 40) for i in range(30)}
    query = np.asarray(tracks["v3"].vectors[:8]) + 0.05 * rng.standard_normal((8, modalities.FRAME_DIM))
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    found = {}
    for rescore in (True, False):  # every frame in the graph: the quantized walk is what answers
        store = EdgeStore(tmp_path / str(rescore), DIMS, optimize_after=0, indexing_threshold_kb=1,
                          full_scan_threshold_kb=1, frame_rescore=rescore)
        try:
            for video_id, frames in tracks.items():
                store.upsert(base.StoredVideo(video_id, {VISUAL: unit(rng, DIMS[VISUAL])}, payload(), frames=frames))
            store.optimize()
            found[rescore] = store.search_frames(query, 5)
        finally:
            store.close()
    exact = query @ np.asarray(tracks["v3"].vectors[:8]).T
    for row, (rescored, int8) in enumerate(zip(found[True], found[False])):
        assert rescored[0][0] == int8[0][0] == "v3"
        assert rescored[0][1] == pytest.approx(exact[row, row], abs=1e-5)
        assert int8[0][1] == pytest.approx(exact[row, row], abs=0.02)
    assert any(abs(a[0][1] - b[0][1]) > 1e-5 for a, b in zip(found[True], found[False]))


def test_edge_merges_segments_only_up_to_the_size_set_and_searches_them_all(tmp_path):
    """A query searches every segment, so how big they grow is a setting (docs/search.md, Segments).
    It reaches a shard created without it when the shard is opened again."""
    rng = np.random.default_rng(31)
    vectors = {f"v{i}": unit(rng, DIMS[FUSED]) for i in range(350)}
    names = list(vectors)
    segments = {}
    for cap in (0, 1):  # MB; each point holds every modality's vector, about 15 KB
        path = tmp_path / str(cap)
        store = EdgeStore(path, DIMS, optimize_after=0, indexing_threshold_kb=1)
        for name in names[:50]:
            store.upsert(base.StoredVideo(name, {FUSED: vectors[name]}, payload()))
        store.optimize()
        store.close()
        store = EdgeStore(path, DIMS, optimize_after=0, indexing_threshold_kb=1, max_segment_mb=cap)
        try:
            for start in range(50, len(names), 50):  # the service optimizes every few writes
                for name in names[start:start + 50]:
                    store.upsert(base.StoredVideo(name, {FUSED: vectors[name]}, payload()))
                store.optimize()
            segments[cap] = store._shard.info().segments_count
            assert store.count() == len(names)
            for name in names[::35]:
                assert store.search(FUSED, vectors[name], None, 1, False)[0].id == name
        finally:
            store.close()
    assert segments[0] <= 2 < 4 <= segments[1], segments


def test_edge_optimize_lets_the_wal_drop_what_the_segments_hold(tmp_path):
    """Edge flushes only when asked: without that the WAL keeps every write until close, and a
    crash replays all of it at the next start."""
    # no HNSW build (segments stay below the indexing threshold): the flush is what is tested
    store = EdgeStore(tmp_path / "edge", DIMS, optimize_after=0, flush_seconds=3600, indexing_threshold_kb=10**9)
    try:
        written = _fill_wal(store, 11)
        store.optimize()
        assert _size(tmp_path / "edge" / "wal") < written / 2
        assert store.count() == 20000
    finally:
        store.close()


def test_edge_flushes_while_writes_come_in(tmp_path):
    store = EdgeStore(tmp_path / "edge", DIMS, optimize_after=0, flush_seconds=0.2)
    try:
        written = _fill_wal(store, 12)
        time.sleep(0.5)
        assert _size(tmp_path / "edge" / "wal") == written  # nothing written through the store yet
        store.upsert(base.StoredVideo("one more", {TEXT: unit(np.random.default_rng(13), DIMS[TEXT])}, {}))
        deadline = time.monotonic() + 30
        while _size(tmp_path / "edge" / "wal") >= written / 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _size(tmp_path / "edge" / "wal") < written / 2
        assert store.count() == 20001
    finally:
        store.close()


def test_edge_stops_writing_short_of_a_full_disk(tmp_path):
    """A write onto a full disk kills the process with SIGBUS (Edge maps its files into memory), so
    the store refuses writes and defers optimizes under its reserve; reads go on. A reserve above
    the disk's free space stands for a full disk."""
    rng = np.random.default_rng(14)
    kept = base.StoredVideo("kept", {TEXT: unit(rng, DIMS[TEXT])}, {})
    store = EdgeStore(tmp_path / "edge", DIMS, optimize_after=0)
    store.upsert(kept)
    store.close()
    reserve_mb = (shutil.disk_usage(tmp_path).free >> 20) + 1024
    full = EdgeStore(tmp_path / "edge", DIMS, optimize_after=0, min_free_mb=reserve_mb)
    try:
        with pytest.raises(errors.ResourceExhausted, match="MiB free"):
            full.upsert(base.StoredVideo("new", {TEXT: unit(rng, DIMS[TEXT])}, {}))
        with pytest.raises(errors.ResourceExhausted):
            full.delete("kept")
        full.optimize()  # deferred, not an error
        assert full.count() == 1 and full.get("kept") is not None and full.get("new") is None
        assert [h.id for h in full.search(TEXT, list(kept.vectors[TEXT]), None, 1, False)] == ["kept"]
    finally:
        full.close()


# --- quantization of the fused vector (services/search/stores/quantization.py) ---------------------

QUANTIZED = (quantization.INT8, quantization.BINARY, quantization.BINARY2)
KIND_NAMES = (quantization.NONE, *QUANTIZED, quantization.PRODUCT)
QUANTIZED_BACKENDS = {
    "edge": lambda path, q: EdgeStore(path / "edge", DIMS, optimize_after=0, fused_quantization=q, **SMALL_CORPUS_HNSW),
    "qdrant-local": lambda path, q: QdrantStore("videos_test", DIMS, path=str(path / "qdrant"), fused_quantization=q),
}


@pytest.fixture(params=list(QUANTIZED_BACKENDS))
def open_quantized(request, tmp_path):
    """Opens the backend with a fused quantization, each one in a directory of its own."""
    return lambda q, name="": QUANTIZED_BACKENDS[request.param](tmp_path / (name or q.kind), q)


@pytest.fixture(scope="module")
def embedding_like():
    """Clustered vectors shaped like a video corpus (bench/vectors.py), with held-out queries."""
    from bench.vectors import Generator, Spec

    generator = Generator(Spec(clusters=40))
    return generator.corpus(1000), generator.queries(30)


def top_hits(store, corpus, queries, k=10) -> list[list[tuple[int, float]]]:
    for i, vector in enumerate(corpus):
        store.upsert(base.StoredVideo(str(i), {FUSED: vector.tolist()}, {}))
    store.optimize()  # edge builds the graph and the compressed copy here
    return [[(int(h.id), h.score) for h in store.search(FUSED, q.tolist(), None, k, False)] for q in queries]


@pytest.mark.parametrize("kind", QUANTIZED)
def test_quantized_collections_return_the_float32_top_hits(open_quantized, embedding_like, kind):
    """Recall of the quantized store's top 10 against the float32 store's (the same graph settings),
    and the rescored scores are exact cosines."""
    corpus, queries = embedding_like
    found = {}
    for q in (quantization.Quantization(quantization.NONE), quantization.Quantization(kind)):
        store = open_quantized(q)
        try:
            found[q.kind] = top_hits(store, corpus, queries)
        finally:
            store.close()
    exact = corpus @ queries.T
    overlaps = []
    for float32, quantized, column in zip(found[quantization.NONE], found[kind], exact.T):
        overlaps.append(len({i for i, _ in float32} & {i for i, _ in quantized}) / 10)
        assert max(abs(score - column[i]) for i, score in quantized) < 1e-4  # rescored on the originals
    assert np.mean(overlaps) >= 0.95, overlaps


def test_the_fused_quantization_is_persisted_with_the_collection(open_quantized):
    chosen = quantization.Quantization(quantization.BINARY2, oversampling=6, originals=quantization.DISK)
    store = open_quantized(chosen, "persisted")
    rng = np.random.default_rng(21)
    store.upsert(base.StoredVideo("v", {FUSED: unit(rng, DIMS[FUSED])}, {}))
    assert store.quantization_in_engine() == (quantization.BINARY2, quantization.DISK)
    store.close()
    store = open_quantized(chosen, "persisted")
    try:
        assert store.quantization_in_engine() == (quantization.BINARY2, quantization.DISK)
        assert store.get("v") is not None
    finally:
        store.close()
    for kind in KIND_NAMES:
        store = open_quantized(quantization.Quantization(kind), f"each-{kind}")
        try:
            assert store.quantization_in_engine() == (kind, quantization.MEMORY)
        finally:
            store.close()


def test_a_server_keeps_the_frame_rows_on_disk(tmp_path):
    """Their int8 copy (always in RAM) is what the frame search reads; at a minute of video a
    server holding the float32 rows in memory too would need about 3x the RAM (docs/capacity.md)."""
    store = QUANTIZED_BACKENDS["qdrant-local"](tmp_path, quantization.Quantization())
    try:
        assert store._client.get_collection(store._frames).config.params.vectors[base.FRAME].on_disk is True
    finally:
        store.close()


def test_edge_rescoring_is_what_makes_the_scores_exact(tmp_path, embedding_like):
    """The search parameters reach the engine: without rescoring the int8 copy's own scores come
    back, which differ from the cosines."""
    corpus, queries = embedding_like
    worst = {}
    for rescore in (True, False):
        q = quantization.Quantization(quantization.INT8, rescore=rescore)
        store = QUANTIZED_BACKENDS["edge"](tmp_path / str(rescore), q)
        try:
            hits = top_hits(store, corpus[:600], queries[:10])
        finally:
            store.close()
        exact = corpus[:600] @ queries[:10].T
        worst[rescore] = max(abs(s - exact[i, j]) for j, found in enumerate(hits) for i, s in found)
    assert worst[True] < 1e-4 < worst[False]


@pytest.mark.parametrize("backend", ["edge", "qdrant"])
def test_each_collection_keeps_the_quantization_it_was_created_with(tmp_path, backend):
    from services.search.catalog import open_catalog
    from services.search.settings import SearchSettings

    def settings(kind, **more):
        return SearchSettings(data_dir=str(tmp_path), store=backend, optimize_after=0, quantization=kind, **more)

    catalog = open_catalog(settings(quantization.BINARY, quantization_originals=quantization.DISK))
    try:
        assert catalog.active.store.quantization_in_engine() == (quantization.BINARY, quantization.DISK)
    finally:
        catalog.close()
    catalog = open_catalog(settings(quantization.INT8))  # the setting changed: new collections only
    try:
        first = catalog.active
        assert first.quantization == quantization.Quantization(quantization.BINARY, originals=quantization.DISK)
        assert first.store.quantization_in_engine() == (quantization.BINARY, quantization.DISK)
        second = catalog.create("videos_v2", {})
        assert second.store.quantization_in_engine() == (quantization.INT8, quantization.MEMORY)
    finally:
        catalog.close()
    recorded = json.loads((tmp_path / "search" / "catalog.json").read_text())["collections"]
    assert recorded[first.name]["quantization"]["kind"] == quantization.BINARY
    assert recorded["videos_v2"]["quantization"]["kind"] == quantization.INT8

    with pytest.raises(errors.InvalidInput, match="requantize names videos_v9, not a collection here"):
        open_catalog(settings(quantization.BINARY2, requantize="videos_v9"))
    catalog = open_catalog(settings(quantization.BINARY2, requantize=first.name))  # rebuilt in place
    try:
        retaken = catalog.get(first.name).store
        assert retaken.fused_quantization == quantization.Quantization(quantization.BINARY2)
        if backend == "edge":  # local mode keeps no compressed copy to rebuild; a server's: the test above
            assert retaken.quantization_in_engine() == (quantization.BINARY2, quantization.MEMORY)
        assert catalog.get("videos_v2").store.quantization_in_engine() == (quantization.INT8, quantization.MEMORY)
    finally:
        catalog.close()
    recorded = json.loads((tmp_path / "search" / "catalog.json").read_text())["collections"]
    assert recorded[first.name]["quantization"]["kind"] == quantization.BINARY2


BAD_QUANTIZATION = {
    "unknown kind": (dict(kind="int4"), "quantization 'int4': use one of none, int8, binary, binary2, pq"),
    "oversampling below 1": (dict(kind="binary", oversampling=0.5), "oversampling 0.5: use 1 to 64"),
    "oversampling absurd": (dict(oversampling=1000), "oversampling 1000: use 1 to 64"),
    "originals nowhere": (dict(originals="ssd"), "originals 'ssd': use one of memory, disk"),
    "nothing to rescore": (dict(kind="none", rescore=False), "rescore off needs a quantized kind"),
}


@pytest.mark.parametrize("case", list(BAD_QUANTIZATION))
def test_bad_quantization_settings_are_refused_with_what_to_use(case):
    fields, message = BAD_QUANTIZATION[case]
    with pytest.raises(errors.InvalidInput, match=re.escape(message)):
        quantization.Quantization(**fields)


def test_bad_quantization_flags_stop_the_service_at_start(monkeypatch, capsys, tmp_path):
    from reelvec import config
    from services.search.settings import SearchSettings

    with pytest.raises(SystemExit):
        config.load(SearchSettings, ["--quantization", "int4"])
    assert "invalid choice: 'int4'" in capsys.readouterr().err
    monkeypatch.setenv("REELVEC_QUANTIZATION_ORIGINALS", "ssd")
    with pytest.raises(SystemExit):
        config.load(SearchSettings, [])
    assert "REELVEC_QUANTIZATION_ORIGINALS must be one of memory, disk" in capsys.readouterr().err
    monkeypatch.delenv("REELVEC_QUANTIZATION_ORIGINALS")
    with pytest.raises(errors.InvalidInput, match="oversampling 0.2"):
        config.load(SearchSettings, ["--quantization-oversampling", "0.2"])
    with pytest.raises(errors.InvalidInput, match=re.escape("max_segment_mb -1: use 0 (Qdrant's default) or more")):
        config.load(SearchSettings, ["--max-segment-mb", "-1"])
    # a catalog entry edited by hand is refused as well, not half-applied
    from services.search.catalog import open_catalog

    catalog = tmp_path / "search" / "catalog.json"
    catalog.parent.mkdir(parents=True)
    catalog.write_text(json.dumps({"active": "videos_v1", "collections": {
        "videos_v1": {"model_versions": {}, "quantization": {"kind": "binary", "bits": 3}}}}))
    with pytest.raises(errors.InvalidInput, match="unknown fields bits"):
        open_catalog(SearchSettings(data_dir=str(tmp_path), optimize_after=0))


@pytest.mark.filterwarnings("ignore:Local mode performs exact")  # the search parameters a server would get
def test_a_server_collection_made_with_another_quantization_graph_or_segment_size_is_changed_to_the_setting(tmp_path, monkeypatch):
    """No Qdrant server runs here: local mode stands in for its collection config, the connection
    then behaves as a server's, and the calls that would reach the server are recorded."""
    from qdrant_client import models

    from services.search.stores.qdrant import Connection

    connection = Connection(path=str(tmp_path / "qdrant"))
    created, create = {}, connection.client.create_collection
    monkeypatch.setattr(connection.client, "create_collection",
                        lambda name, **kw: created.update({name: kw["hnsw_config"]}) or create(name, **kw))
    QdrantStore("videos_test", DIMS, connection=connection, fused_quantization=quantization.Quantization("none"),
                hnsw_m=24, hnsw_ef_construct=90)
    assert {name: (c.m, c.ef_construct) for name, c in created.items()} == {
        "videos_test": (24, 90), "videos_test.frames": (24, 90)}  # what a server builds; local mode has no graph
    connection.local = False
    updates, searches = [], []
    monkeypatch.setattr(connection.client, "update_collection",
                        lambda name, **change: updates.append((name, change)))
    answer = connection.client.query_batch_points
    monkeypatch.setattr(connection.client, "query_batch_points",
                        lambda name, requests: searches.append(requests) or answer(name, requests))
    try:
        binary = quantization.Quantization("binary", oversampling=8, originals=quantization.DISK)
        store = QdrantStore("videos_test", DIMS, connection=connection, fused_quantization=binary)
        ((name, change),) = updates
        assert name == "videos_test" and set(change) == {"vectors_config"} and set(change["vectors_config"]) == {FUSED}
        fused_change = change["vectors_config"][FUSED]
        assert fused_change.on_disk is True
        assert fused_change.quantization_config.binary.encoding == models.BinaryQuantizationEncoding.ONE_BIT
        rng = np.random.default_rng(22)
        store.search(FUSED, unit(rng, DIMS[FUSED]), None, 5, False)
        store.search(TEXT, unit(rng, DIMS[TEXT]), None, 5, False)
        fused, text = searches[0][0].params, searches[1][0].params
        assert (fused.quantization.rescore, fused.quantization.oversampling) == (True, 8)
        assert text.quantization is None  # short vectors have no compressed copy to rescore
        assert fused.hnsw_ef == text.hnsw_ef == base.HNSW_EF  # the setting, not the server's default (100)
        updates.clear()
        QdrantStore("videos_test", DIMS, connection=connection, fused_quantization=quantization.Quantization("none"))
        assert updates == []  # the collection already holds what is asked

        # the denser graph a collection past a million videos wants (docs/search.md): both
        # collections are changed to it, and every search walks the wider ef
        searches.clear()
        store = QdrantStore("videos_test", DIMS, connection=connection, fused_quantization=quantization.Quantization("none"),
                            hnsw_m=32, hnsw_ef_construct=128, hnsw_ef=512, max_segment_mb=16384)
        graphs = {name: (change["hnsw_config"].m, change["hnsw_config"].ef_construct)
                  for name, change in updates if "hnsw_config" in change}
        assert graphs == {"videos_test": (32, 128), "videos_test.frames": (32, 128)}
        segments = {name: change["optimizers_config"].max_segment_size for name, change in updates if "optimizers_config" in change}
        assert segments == {"videos_test": 16384 * 1024, "videos_test.frames": 16384 * 1024}  # kilobytes
        store.search(FUSED, unit(rng, DIMS[FUSED]), None, 5, False)
        store.search_frames(np.stack([unit(rng, modalities.FRAME_DIM)]), 3)
        assert [requests[0].params.hnsw_ef for requests in searches] == [512, 512]
    finally:
        connection.local = True
        connection.close()


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_store_without_the_visual_vector_still_indexes_frames_at_the_visual_size(backend, tmp_path):
    fused_only = {FUSED: DIMS[FUSED]}  # how the search bench opens its stores above 200k videos
    opened = BACKENDS[backend](tmp_path, fused_only)
    try:
        rng = np.random.default_rng(5)
        frames = track(rng, 4)
        opened.upsert(base.StoredVideo("v", {FUSED: unit(rng, DIMS[FUSED])}, payload(), frames=frames))
        assert [hits[0][0] for hits in opened.search_frames(frames.vectors, 1)] == ["v"] * 4
    finally:
        opened.close()
