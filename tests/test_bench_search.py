"""`python -m bench search` runs end to end on a small corpus: the suite opens the store the way the
service does, so a refactor of the service that the benchmark missed fails here, not in a later
`make bench`. No timing is asserted; recall is, because it does not depend on the machine."""

import argparse

from bench import search


def test_the_search_benchmark_runs_and_the_served_store_finds_the_true_neighbours():
    section = search.run(argparse.Namespace(quick=True, search_sizes="2000"))
    engines = [row[0] for row in section.rows]
    assert engines == ["exact numpy (baseline)", "qdrant-edge (reelvec)", "qdrant-client local mode"]
    assert section.metrics["search_recall10_exact_2k"] == 1.0
    assert section.metrics["search_recall10_2k"] >= 0.95
    assert section.metrics["search_p99_ms_2k"] > 0 and section.metrics["search_build_s_2k"] > 0
