"""The search benchmark's clustered vectors, and its exact ground truth."""

import dataclasses

import numpy as np
import pytest

from bench import search, vectors
from bench.search import exact_topk
from reelvec import modalities

SMALL = vectors.Spec(dim=256, clusters=50, axes=64, rank=8)


@pytest.fixture(scope="module")
def fused():
    """The benchmark's own distribution, at the fused dimension."""
    return vectors.Generator().corpus(2000)


def test_deterministic_by_seed():
    a = vectors.Generator(SMALL).corpus(1000)
    assert np.array_equal(a, vectors.Generator(SMALL).corpus(1000))
    other = vectors.Generator(dataclasses.replace(SMALL, seed=1)).corpus(1000)
    assert not np.allclose(a, other)


def test_a_smaller_corpus_is_a_prefix_of_a_bigger_one():
    # chunks come from their own generators, so sizes share points (and chunking does not leak)
    g = vectors.Generator(SMALL)
    big = g.corpus(vectors.CHUNK + 500)
    for n in (1, 700, vectors.CHUNK + 1):
        small = g.corpus(n)
        # a wrong or shifted row is off by ~0.1; rounding in the last bit is 1e-7
        np.testing.assert_allclose(small, big[:n], rtol=0, atol=1e-6)
        assert (np.einsum("ij,ij->i", small, big[:n]) > 1 - 1e-5).all()
    assert not np.allclose(g.corpus(701)[1:], big[:700], atol=1e-3)  # the check can fail


def test_unit_norm_float32_at_the_fused_dimension(fused):
    assert fused.dtype == np.float32
    assert fused.shape == (2000, modalities.DIMS[modalities.FUSED])
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-5)


def test_queries_are_held_out(fused):
    queries = vectors.Generator().queries(50)
    assert queries.shape == (50, fused.shape[1])
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    assert (queries @ fused.T).max() < 0.999  # no query is an indexed point


def test_clustered_unlike_uniform_random(fused):
    rng = np.random.default_rng(0)
    uniform = rng.standard_normal(fused.shape).astype(np.float32)
    uniform /= np.linalg.norm(uniform, axis=1, keepdims=True)
    clustered, flat = vectors.neighbour_stats(fused), vectors.neighbour_stats(uniform)
    assert clustered["nn_cosine"] > flat["nn_cosine"] + 0.4
    assert clustered["nn_cosine"] > 0.6
    assert 0.1 < clustered["random_cosine"] < 0.4  # a shared direction, as real embeddings have
    # and the queries have neighbourhoods in the corpus too
    queries = vectors.Generator().queries(100)
    assert (queries @ fused.T).max(axis=1).mean() > 0.6


def test_cluster_sizes_follow_a_power_law():
    _, _, labels = next(vectors.Generator().chunks(vectors.CHUNK))
    sizes = np.sort(np.bincount(labels, minlength=1000))[::-1]
    assert sizes[0] > 10 * sizes[99] > 0  # a few big topics...
    assert (sizes > 0).sum() > 300  # ...and a long tail


def test_exact_topk_matches_a_full_sort():
    g = vectors.Generator(SMALL)
    corpus, queries = g.corpus(1000), g.queries(20)
    got = exact_topk(search.Corpus(g, 1000, corpus).blocks(128), queries, k=10)  # a ragged last block
    expected = np.argsort(-(queries @ corpus.T), axis=1)[:, :10]
    assert all(set(a) == set(b) for a, b in zip(got.tolist(), expected.tolist()))


def test_a_generated_corpus_streams_the_rows_a_held_one_holds(monkeypatch):
    g = vectors.Generator(SMALL)
    monkeypatch.setattr(search, "HELD_MAX", 10**6)
    held = search.Corpus.of(g, vectors.CHUNK + 300)
    monkeypatch.setattr(search, "HELD_MAX", 0)
    streamed = search.Corpus.of(g, vectors.CHUNK + 300)
    assert held.held is not None and streamed.held is None
    rows = np.concatenate([block for _, block in streamed.blocks()])
    np.testing.assert_allclose(rows, held.held, rtol=0, atol=1e-6)
    assert [offset for offset, _ in streamed.blocks()] == [0, vectors.CHUNK]
    np.testing.assert_allclose(streamed.prefix(500), held.held[:500], rtol=0, atol=1e-6)
    queries = g.queries(20)
    np.testing.assert_array_equal(np.sort(exact_topk(streamed.blocks(), queries), 1),
                                  np.sort(exact_topk(held.blocks(), queries), 1))
