"""Encoder replicas: does ingest grow with the encoder processes behind the gateway, as the capacity
plan assumes (docs/capacity.md: encoder pods = work / one pod's CPU)? One `reelvec up
--encoder-replicas 2` and two more gateways that differ only in their encoder target: one replica,
or both round-robin. Rounds alternate the two (1-2, 2-1, ...) on the same uploads, so that the
other jobs on this shared machine load both sides alike; each round gives a ratio.

What is measured as ingest: the gateway's Index (encoder and transcriber in parallel, fusion, the
search service's upsert) on clips whose audio is a tone, not speech. The transcriber's VAD then
finds nothing and Whisper never runs (the windows count below says so): with speech, Whisper's
0.147 CPU-s per video-s against the encoder's 0.041 would hold the 2 cores and hide the encoder,
which is the stage under test. Each replica is a "pod of one CPU": pinned to a core of its own,
its visual model in process (onnxruntime, 1 intra-op thread) and its default two decodes at once
(with one, a replica kept its core only about 60% busy), so that its work, the model's included, stays on its core and two of them fit the 2 cores. Triton is
left out of the path because it is sized as pods of its own (a shared Triton on these 2 cores would
take a third of every video's CPU from whichever replica waits for it). The gateways, the
transcriber, the search service and this client are not pinned: with two replicas they share
the replicas' cores, which a cluster would give them apart; the per-process CPU says how much.
"""

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench import common
from bench.ingest import BITRATE, FPS, SIZE, _whisper_windows
from reelvec import media, samples
from reelvec.tools import client, launcher
from reelvec.tools.local_stack import RunningStack
from reelvec.v1 import common_pb2

CLIP_SECONDS = 8.0
CONCURRENCY = 6  # uploads in flight on either side: enough to keep two replicas busy
# A bound on the measuring (start-up and clip making excluded): rounds stop once it has passed.
MAX_SECONDS = 900
# The stack's scheduling priority over the machine's other jobs, as a pod's CPU request is over
# best-effort pods on its node: without it the replicas measure what those jobs leave them, not what
# a replica does with its CPU. Only a privileged user may take it; otherwise the run says so. With
# the kernel's autogroups (one per session: the launcher starts each service in its own) a nice
# weighs only against the same session's processes, so each session's autogroup gets it too.
NICE = -10
ENCODER_ENV = {
    "REELVEC_VISUAL_BACKEND": "onnxruntime",
    "REELVEC_ONNX_THREADS": "1",
}


def _corpus(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [samples.make_video(folder / f"tone{i}.mp4", seconds=CLIP_SECONDS, fps=FPS, size=SIZE, seed=i,
                               tone_hz=220.0 + 55.0 * i, bitrate=BITRATE) for i in range(count)]


def pin(pid: int, cpu: int) -> None:
    """Every thread of `pid` and its children onto one CPU (new threads inherit it)."""
    for member in common.descendants(pid):
        for task in Path(f"/proc/{member}/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), {cpu})
            except (ProcessLookupError, FileNotFoundError):
                pass  # a thread that ended in between


def encodes(metrics_address: str) -> float:
    """Encode calls an encoder has answered, any status."""
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10) as response:
        families = text_string_to_metric_families(response.read().decode())
        return sum(s.value for f in families for s in f.samples
                   if s.name == "reelvec_rpc_requests_total" and s.labels.get("method") == "Encode")


def _gateway(state: dict, encoder_target: str, data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = launcher.free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    urls = [f"--{name}-url={state[name]['address']}" for name in ("transcriber", "search", "regressor")]
    with open(data_dir / "gateway.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.gateway", "--port", str(port), "--data-dir", str(data_dir),
             f"--encoder-url={encoder_target}", *urls],
            stdout=log, stderr=log, start_new_session=True,
        )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not launcher._is_serving(address):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the gateway for {encoder_target} did not start; see {data_dir / 'gateway.log'}")
        time.sleep(0.3)
    return process, address


def _upload(address: str, clips: list[Path], uploads: int, tag: str) -> None:
    stub = client.connect(address)
    data = {path: path.read_bytes() for path in clips}
    jobs = [(clips[i % len(clips)], f"{tag}-{i}") for i in range(uploads)]
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(lambda job: client.index_file(stub, job[0], common_pb2.VideoMetadata(id=job[1]),
                                                    data[job[0]]), jobs))


def _autogroup(pid: int, nice: int | None = None) -> int | None:
    """The nice of `pid`'s autogroup, after setting it to `nice` if given; None without autogroups."""
    path = Path(f"/proc/{pid}/autogroup")
    try:
        if nice is not None:
            path.write_text(str(nice))
        return int(path.read_text().split()[-1])
    except FileNotFoundError:
        return None


def _prioritize() -> tuple[int, int | None] | None:
    """Raises this process's priority and its autogroup's to NICE (the stack it starts inherits
    the first); the old pair, or None when not permitted."""
    old = os.getpriority(os.PRIO_PROCESS, 0), _autogroup(os.getpid())
    try:
        os.setpriority(os.PRIO_PROCESS, 0, NICE)
        _autogroup(os.getpid(), NICE)
    except PermissionError:
        return None
    return old


def _prioritize_sessions(pids) -> None:
    for pid in pids:
        try:
            _autogroup(pid, NICE)
        except (PermissionError, ProcessLookupError):
            pass


def run(args) -> list[common.Section]:
    cpus = sorted(os.sched_getaffinity(0))
    rounds, uploads, count = (2, 8, 4) if args.quick else (4, 16, 8)
    passes = common.Section(
        "Encoder replicas: the gateway's Index with 1 and 2 encoder replicas, alternated "
        f"(clips of {CLIP_SECONDS:.0f} s, {SIZE[0]}x{SIZE[1]} at {FPS} fps, a tone for audio)",
        ["round", "replicas", "uploads", "wall s", "videos/min", "video s per s", "encoder cores busy",
         "encoder CPU s per video s", "all CPU s per video s", "calls to 2nd replica", "load 1 min"],
    )
    ratios = common.Section(
        "Encoder replicas: 2 replicas against 1, round by round",
        ["round", "ingest ratio", "encoder CPU per video ratio", "ingest ratio, a core each"],
    )
    if len(cpus) < 2:
        passes.notes.append(f"skipped: two replicas on cores of their own need 2 CPUs, this process has {len(cpus)}")
        return [passes, ratios]
    with tempfile.TemporaryDirectory() as tmp:
        clips = _corpus(Path(tmp) / "corpus", count)
        seconds = {path: media.probe(path.read_bytes()).duration for path in clips}
        old_nice = _prioritize()
        stack = RunningStack(Path(tmp) / "data", launcher.free_port(), up_args=("--encoder-replicas", "2"), **ENCODER_ENV)
        stack.start()
        gateways: dict[int, tuple[subprocess.Popen, str]] = {}
        try:
            state = stack.state()
            encoders = launcher.encoder_names(2)
            for i, name in enumerate(encoders):
                pin(state[name]["pid"], cpus[i % len(cpus)])
            addresses = [state[name]["address"] for name in encoders]
            for n in (1, 2):
                gateways[n] = _gateway(state, launcher.replicas_target(addresses[:n]), Path(tmp) / f"gateway-{n}")
            pids = {**stack.pids(), **{f"gateway-{n}": g[0].pid for n, g in gateways.items()}}
            if old_nice is not None:
                _prioritize_sessions(pids.values())
            windows = _whisper_windows(state["transcriber"]["metrics"])
            for n in (1, 2):  # warm: connections, models, the first upsert of each id
                _upload(gateways[n][1], clips, len(clips), "warm")
            total = common.cpu_by_process(pids)
            throughput: dict[tuple[int, int], float] = {}
            encoder_cpu: dict[tuple[int, int], float] = {}
            started = time.monotonic()
            done = 0
            for r in range(1, rounds + 1):
                if time.monotonic() - started > MAX_SECONDS:
                    passes.notes.append(f"stopped after {done} rounds: past the {MAX_SECONDS} s bound")
                    break
                for n in ((1, 2) if r % 2 else (2, 1)):
                    video_s = sum(seconds[clips[i % len(clips)]] for i in range(uploads))
                    load = os.getloadavg()[0]
                    calls = [encodes(state[name]["metrics"]) for name in encoders]
                    before = common.cpu_by_process(pids)
                    with common.Timer() as t:
                        _upload(gateways[n][1], clips, uploads, "u")
                    spent = common.cpu_spent(before, pids)
                    calls = [encodes(state[name]["metrics"]) - c for name, c in zip(encoders, calls)]
                    encoder = sum(spent[name] for name in encoders)
                    throughput[r, n], encoder_cpu[r, n] = video_s / t.wall, encoder / video_s
                    passes.rows.append([r, n, uploads, t.wall, 60 * uploads / t.wall, video_s / t.wall,
                                        encoder / t.wall, encoder / video_s, sum(spent.values()) / video_s,
                                        f"{calls[1]:.0f} of {sum(calls):.0f}", load])
                done = r
            windows = _whisper_windows(state["transcriber"]["metrics"]) - windows
            total = common.cpu_spent(total, pids)
        finally:
            for process, _ in gateways.values():
                process.send_signal(signal.SIGTERM)
            for process, _ in gateways.values():
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            stack.stop()
            if old_nice is not None:
                os.setpriority(os.PRIO_PROCESS, 0, old_nice[0])
                if old_nice[1] is not None:
                    _autogroup(os.getpid(), old_nice[1])
    measured = list(range(1, done + 1))
    ingest = [throughput[r, 2] / throughput[r, 1] for r in measured]
    cpu = [encoder_cpu[r, 2] / encoder_cpu[r, 1] for r in measured]
    # a replica given a core of its own does 1 / (its CPU per video) video seconds a second
    core_each = [2 / c for c in cpu]
    for r, a, b, c in zip(measured, ingest, cpu, core_each):
        ratios.rows.append([r, f"{a:.2f}x", f"{b:.2f}x", f"{c:.2f}x"])
    if ingest:
        ratios.notes.append("ingest ratio (2 replicas / 1): min {:.2f}, median {:.2f}, max {:.2f}".format(
            min(ingest), statistics.median(ingest), max(ingest)))
        ratios.notes.append("encoder CPU per video second (2 / 1): min {:.2f}, median {:.2f}, max {:.2f}".format(
            min(cpu), statistics.median(cpu), max(cpu)))
        ratios.notes.append("ingest ratio with a core for each replica, as pods with their CPU requests get "
                            "(2 / the CPU ratio): min {:.2f}, median {:.2f}, max {:.2f}".format(
                                min(core_each), statistics.median(core_each), max(core_each)))
        ratios.metrics.update(
            replicas_ingest_ratio_median=statistics.median(ingest),
            replicas_ingest_ratio_min=min(ingest),
            replicas_ingest_ratio_max=max(ingest),
            replicas_encoder_cpu_ratio_median=statistics.median(cpu),
            replicas_ingest_ratio_core_each_median=statistics.median(core_each),
            replicas_video_s_per_s_1=statistics.median(throughput[r, 1] for r in measured),
            replicas_video_s_per_s_2=statistics.median(throughput[r, 2] for r in measured),
        )
    passes.notes.append(f"Whisper windows encoded during the rounds: {windows:.0f} (the tone is not speech)")
    passes.notes.append(f"the stack ran at nice {NICE} (its processes and their sessions' autogroups) over the "
                        "machine's other jobs" if old_nice is not None else
                        "the stack ran at the machine's other jobs' priority (raising it needs root): "
                        "the replicas got what those jobs left")
    passes.notes.append(f"replicas pinned to CPUs {cpus[0]} and {cpus[1 % len(cpus)]}; onnxruntime in process, "
                        "1 intra-op thread; everything else unpinned")
    passes.notes.append("CPU s during the rounds, by process: " + ", ".join(
        f"{name} {value:.1f}" for name, value in sorted(total.items(), key=lambda kv: -kv[1])))
    return [passes, ratios]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    for section in run(parser.parse_args()):
        print(section.render() + "\n", flush=True)
