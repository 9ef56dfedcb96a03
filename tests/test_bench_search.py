"""`python -m bench search` runs end to end on a small corpus: the suite opens the store the way the
service does, so a refactor of the service that the benchmark missed fails here, not in a later
`make bench`. No timing is asserted; recall is, because it does not depend on the machine, and the
bytes per video, because they follow from the layout."""

import argparse

import pytest

from bench import search
from reelvec import errors, modalities
from services.search.stores.quantization import Quantization

DIM = modalities.DIMS[modalities.FUSED]


def test_the_search_benchmark_runs_every_quantization_beside_exact_search():
    section = search.run(argparse.Namespace(quick=True, search_sizes="2000"))
    engines = [row[0] for row in section.rows]
    assert engines == [
        "exact numpy (baseline)",
        "qdrant-edge float32 HNSW",
        "qdrant-edge int8 + rescore x2 (service default)",
        "qdrant-edge binary + rescore x4",
        "qdrant-edge binary2 + rescore x4",
        "qdrant-client local mode",
        "frame descriptors (copies), per video-minute (int8 copy, originals as stored)",
    ]
    metrics = section.metrics
    assert metrics["search_recall10_exact_2k"] == 1.0
    assert metrics["search_recall10_2k"] == metrics["search_recall10_int8_2k"] >= 0.95  # the service's
    for kind in ("none", "int8", "binary", "binary2"):
        assert metrics[f"search_recall10_{kind}_2k"] >= 0.9, kind
        assert metrics[f"search_p99_ms_{kind}_2k"] > 0 and metrics[f"search_build_s_{kind}_2k"] > 0
    ram = {kind: metrics[f"search_ram_bytes_per_video_{kind}_2k"] for kind in ("none", "int8", "binary", "binary2")}
    # originals in memory: the float32 row, plus a copy of a quarter, a 32nd, a 16th of it
    assert 4 * DIM <= ram["none"] < ram["binary"] < ram["binary2"] < ram["int8"] < 4 * DIM + 1.0 * DIM + 1024
    slim = {kind: metrics[f"search_ram_bytes_per_video_originals_on_disk_{kind}_2k"] for kind in ram}
    assert slim["none"] == ram["none"]  # without a compressed copy the walk reads the originals
    assert DIM / 8 < slim["binary"] < slim["binary2"] < slim["int8"] < DIM + 1024 < 4 * DIM
    frames = metrics["search_frames_ram_bytes_per_minute_originals_on_disk"]
    # 60 int8 copies of a descriptor a minute, with the graph and indexes on top
    assert 60 * modalities.FRAME_DIM <= frames < metrics["search_frames_ram_bytes_per_minute"] < metrics["search_frames_disk_bytes_per_minute"]


def test_past_what_it_holds_the_benchmark_streams_the_corpus_and_scales_the_timed_scan(monkeypatch):
    monkeypatch.setattr(search, "HELD_MAX", 1000)
    monkeypatch.setattr(search, "EXACT_TIMED_MAX", 1000)
    section = search.run(argparse.Namespace(quick=True, search_sizes="3000", search_quantizations="int8"))
    exact = section.rows[0]
    assert exact[0] == "exact numpy (baseline), timed over the first 1k x 3"
    assert section.metrics["search_recall10_exact_3k"] == 1.0
    assert section.metrics["search_recall10_int8_3k"] >= 0.9  # against the truth over all 3,000
    assert any("(over its first 1k)" in note for note in section.notes)


def test_a_big_corpus_is_indexed_stage_by_stage_and_every_point_is_searched(monkeypatch):
    from services.search.stores.edge import EdgeStore

    optimized = []  # the points stored at each optimize
    real = EdgeStore.optimize
    monkeypatch.setattr(EdgeStore, "optimize", lambda store: optimized.append(store.count()) or real(store))
    monkeypatch.setattr(search, "STAGE_ROWS", 4096)
    monkeypatch.setattr(search, "HELD_MAX", 1000)  # streamed, in the generator's chunks of 4096
    section = search.run(argparse.Namespace(quick=True, search_sizes="8192", search_quantizations="int8"))
    assert optimized[:3] == [0, 4096, 8192]  # at the open, then after each stage
    assert section.metrics["search_recall10_int8_8k"] >= 0.9


def test_a_build_is_requeried_with_each_rescoring_asked_for(monkeypatch):
    monkeypatch.setenv(search.RESCORE_ENV, "1,off")
    monkeypatch.setenv(search.EF_ENV, "256")
    section = search.run(argparse.Namespace(quick=True, search_sizes="2000", search_quantizations="int8:disk"))
    recall = {row[0]: float(row[-1]) for row in section.rows if row[1] == "2,000"}
    build = "qdrant-edge int8 + rescore x2, originals on disk"
    assert set(recall) >= {f"{build} hnsw_ef=256", "qdrant-edge int8 + rescore x1, originals on disk hnsw_ef=256",
                           "qdrant-edge int8, not rescored, originals on disk hnsw_ef=256"}
    # rescoring only re-ranks what the compressed walk found, so fewer candidates cannot find more
    assert recall["qdrant-edge int8 + rescore x1, originals on disk hnsw_ef=256"] <= recall[f"{build} hnsw_ef=256"]
    assert recall["qdrant-edge int8, not rescored, originals on disk hnsw_ef=256"] >= 0.8


def test_built_as_the_service_builds_segments_stop_at_the_cap_and_every_one_is_searched(monkeypatch):
    monkeypatch.setenv(search.EVERY_ENV, "1000")  # the service indexes every optimize_after writes
    monkeypatch.setenv(search.SEGMENTS_ENV, "0,20")  # Qdrant's default (>= 512 MB), and 20 MB: ~1,400 videos
    section = search.run(argparse.Namespace(quick=True, search_sizes="6000", search_quantizations="int8"))
    metrics = section.metrics
    assert metrics["search_segments_int8_every1000_6k"] <= 2 < 4 <= metrics["search_segments_int8_every1000_seg20mb_6k"]
    for key in ("int8_every1000", "int8_every1000_seg20mb"):
        assert metrics[f"search_recall10_{key}_6k"] >= 0.9, key
    assert any(row[0].endswith("indexed every 1,000, segments up to 20 MB") for row in section.rows)


def test_rescorings_are_parsed_in_order_repeats_kept():
    int8 = Quantization("int8")
    assert search.rescorings("2, 1.5,off,2", int8) == [
        Quantization("int8", 2.0), Quantization("int8", 1.5), Quantization("int8", rescore=False), Quantization("int8", 2.0)]
    assert search.rescorings("off", Quantization("none")) == []  # nothing to rescore
    assert search.rescorings(None, int8) == []
    with pytest.raises(errors.InvalidInput, match="use 1 to"):
        search.rescorings("0.5", int8)


def test_variants_are_parsed_and_bad_ones_refused():
    assert search.parse_variant("binary@8:disk") == Quantization("binary", 8.0, originals="disk")
    assert search.parse_variant(" int8 ") == Quantization("int8")
    with pytest.raises(errors.InvalidInput, match="use one of"):
        search.parse_variant("int4")
    with pytest.raises(ValueError, match="only ':disk'"):
        search.parse_variant("int8:ssd")


def test_ten_million_is_extrapolated_with_the_arithmetic_shown():
    def row(n, recall):
        return search.Result("qdrant-edge int8", 100.0 * n / 1e6, [0.001] * 10, recall, "int8", 2000.0, 9000.0)

    notes = search.extrapolate({1_000_000: [row(1_000_000, 0.95)], 2_000_000: [row(2_000_000, 0.94)]})
    assert len(notes) == 1
    assert "from 2m" in notes[0] and "RAM 2,000 B x 10M = 18.6 GiB" in notes[0]
    assert "recall@10 by size: 1m 0.950, 2m 0.940" in notes[0]
