"""The copies benchmark's own logic: its footage, its queries (a partial copy holds its source
where the query says), its brute force, and one small run through the service's store, so that a
change of the store or of find_copies that the benchmark missed fails here, not in a later
`make bench`. No timing is asserted."""

import argparse

import numpy as np
import pytest

from bench import common
from bench import copies as suite
from reelvec import config, copies, frames
from reelvec.tools.evaluation.metrics import iou


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(suite, "CHUNK", 32)


@pytest.fixture
def stored(small_chunks):
    return suite.Footage().corpus(100)


def test_footage_is_sampled_as_the_encoder_samples_and_a_smaller_corpus_is_a_prefix(stored):
    for v in range(len(stored)):
        track = stored.track(v)
        assert len(track) == frames.count_for(stored.durations[v])
        assert 0 < track.times[0] and (np.diff(track.times) > 0).all() and track.times[-1] < stored.durations[v]
    first = suite.Footage().corpus(40)
    assert np.array_equal(first.vectors, stored.vectors[: len(first.vectors)])
    # frames of a shot look alike, frames of two videos do not
    one = stored.track(0).vectors
    assert float(np.mean(np.sum(one[1:] * one[:-1], axis=1))) > 0.8
    assert float(np.mean(stored.track(1).vectors @ one.T)) < 0.5


def test_a_partial_copy_shows_its_source_at_the_seconds_it_names(stored):
    unstored = suite.Footage().corpus(60, stream=2)
    queries = suite.make_queries(stored, unstored, 20)
    assert [q.source is None for q in queries] == [False, True] * 10
    for q in queries[::2]:
        source = stored.track(q.source)
        (q_start, q_end), (r_start, r_end) = q.query_span, q.ref_span
        speed = (r_end - r_start) / (q_end - q_start)
        inside = (q.track.times > q_start) & (q.track.times < q_end)
        # each copied query second is nearest to the source second the spans put it at
        shown = source.times[np.argmax(q.track.vectors[inside] @ source.vectors.T, axis=1)]
        expected = r_start + speed * (q.track.times[inside] - q_start)
        assert np.abs(shown - expected).max() <= 1.0, (q.source, shown, expected)
        assert 0.8 <= speed <= 1.25 and q_end - q_start >= 6
        # and the alignment agrees on both sides
        best = copies.align(q.track, source)[0]
        assert iou((best.query_start, best.query_end), q.query_span) >= 0.5
        assert iou((best.ref_start, best.ref_end), q.ref_span) >= 0.5


def test_the_brute_force_finds_each_videos_best_frame_across_blocks(stored, monkeypatch):
    monkeypatch.setattr(suite, "BLOCK_ROWS", 100)  # several videos a block, and blocks cut between them
    query = stored.track(7)
    best = suite.BruteForce(stored)._best(query)
    expected = np.stack([(query.vectors @ stored.track(v).vectors.T).max(axis=1) for v in range(len(stored))], axis=1)
    np.testing.assert_allclose(best, expected, atol=1e-5)
    found, aligned = suite.BruteForce(stored).find(query, 10)
    assert found[0].id == suite.video_id(7) and aligned >= 1


def test_a_small_run_through_the_services_store_finds_the_sources(small_chunks):
    from services.search.settings import SearchSettings

    latency, storage = (common.Section("", []) for _ in range(2))
    settings = config.load(SearchSettings, [])
    suite._one_size(300, argparse.Namespace(quick=True), settings, latency, storage)
    assert latency.metrics["copies_recall_300"] >= 0.9
    assert latency.metrics["copies_recall_brute_300"] >= 0.9
    viewed = [row for row in latency.rows if "5 views" in row[0]]
    assert [row[2] for row in viewed] == ["partial copy", "unrelated", "all"]
    assert float(viewed[0][7]) >= 0.9  # the views cost time, and must not cost the sources
    frames_row, videos_row, raw_row = storage.rows
    assert frames_row[-1] > 1.0  # the shard holds float32 rows, an int8 copy, a graph: more than the rows
    assert videos_row[2] > 0


def test_a_query_with_views_keeps_its_frames_and_adds_crops_like_a_frame_s(stored):
    (query,) = suite.make_queries(stored, stored, 1)
    viewed = suite.with_views(query).track
    assert viewed.views.shape == (len(query.track), frames.VIEWS, query.track.dim)
    np.testing.assert_allclose(viewed.vectors, query.track.vectors, atol=1e-6)
    closeness = np.einsum("nvd,nd->nv", viewed.views, viewed.vectors)
    assert 0.5 < closeness.min() and closeness.max() < 0.9
