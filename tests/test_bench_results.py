"""bench/results/latest.json keeps every benchmark's last run when only some are run again."""

import json

from bench import common


def _section(title, **metrics):
    return common.Section(title, ["a"], rows=[[1.5]], metrics=metrics)


def test_a_partial_run_keeps_the_other_benchmarks(tmp_path):
    path = tmp_path / "latest.json"
    common.write({"search": [_section("S", search_p99_ms_100k=1.6)], "gateway": [_section("G", gateway_search_rps=700.0)]},
                 quick=False, path=path)
    common.write({"gateway": [_section("G", gateway_search_rps=720.0)]}, quick=True, path=path)
    body = json.loads(path.read_text())
    assert body["metrics"] == {"search_p99_ms_100k": 1.6, "gateway_search_rps": 720.0}
    assert body["benchmarks"]["search"]["quick"] is False and body["benchmarks"]["gateway"]["quick"] is True
    assert body["benchmarks"]["gateway"]["sections"][0]["rows"] == [[1.5]]


def test_render_aligns_columns():
    section = common.Section("T", ["engine", "fps"], rows=[["torch", 53.25], ["triton", 1234.0]])
    lines = section.render().splitlines()
    assert lines[0] == "## T" and lines[3].endswith("53.25") and lines[4].endswith("1,234")
    assert len({len(line) for line in lines[1:]}) == 1
