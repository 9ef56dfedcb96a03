"""What every benchmark shares: result sections, a table printer, process CPU and memory readings."""

import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Section:
    title: str
    columns: list[str]
    rows: list[list] = dataclasses.field(default_factory=list)
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)  # keys of latest.json
    notes: list[str] = dataclasses.field(default_factory=list)

    def render(self) -> str:
        cells = [[_cell(v) for v in row] for row in self.rows]
        widths = [max(len(str(c)) for c in column) for column in zip(self.columns, *cells)]
        line = lambda values: "  ".join(str(v).rjust(w) if i else str(v).ljust(w)  # noqa: E731
                                        for i, (v, w) in enumerate(zip(values, widths)))
        out = [f"## {self.title}", line(self.columns), line("-" * w for w in widths)]
        out += [line(row) for row in cells]
        out += [f"  {note}" for note in self.notes]
        return "\n".join(out)


def _cell(value) -> str:
    if isinstance(value, float):
        if value == 0 or 0.01 <= abs(value) < 1e5:
            return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
        return f"{value:.2e}"
    return str(value)


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one by default), children not included."""
    if pid is None:
        usage = os.times()
        return usage.user + usage.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def descendants(pid: int) -> list[int]:
    """pid and every process below it (Triton's Python backend stubs are its children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in descendants(pid):
        try:
            total += cpu_seconds(member)
        except OSError:
            pass  # exited in between
    return total


def cpu_by_process(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process with its children, and of this one as "client"."""
    return {"client": cpu_seconds(), **{name: tree_cpu_seconds(pid) for name, pid in pids.items()}}


def cpu_spent(before: dict[str, float], pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds of each process since `before` (a cpu_by_process)."""
    after = cpu_by_process(pids)
    return {name: after[name] - before[name] for name in after}


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident memory (VmHWM) of a process, in MiB."""
    for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(latencies_s: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    values = np.asarray(latencies_s) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


class Timer:
    """Wall time and this process's CPU time over a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = cpu_seconds() - self.cpu


def write(runs: dict[str, list[Section]], quick: bool, path: Path = RESULTS / "latest.json") -> Path:
    """Merges this run's benchmarks into latest.json, so running one benchmark keeps the others'
    last results; each benchmark records when it ran and whether it was --quick. `metrics` is the
    flat union of every benchmark's keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.loads(path.read_text()) if path.exists() else {}
    stored = body.get("benchmarks", {})
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for name, sections in runs.items():
        stored[name] = {
            "time": now,
            "quick": quick,
            "metrics": {k: v for s in sections for k, v in s.metrics.items()},
            "sections": [dataclasses.asdict(s) for s in sections],
        }
    body = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "metrics": {k: v for run in stored.values() for k, v in run["metrics"].items()},
        "benchmarks": stored,
    }
    path.write_text(json.dumps(body, indent=2, default=float))
    return path
