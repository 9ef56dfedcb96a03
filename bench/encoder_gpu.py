"""The visual encoder's GPU rows: `python -m bench encoder --device cuda` (BENCHMARKS.md, GPU).

The same model.onnx two ways on one GPU, in one run:
- PyTorch eager in this process, the baseline a user would otherwise pick: the graph converted by
  onnx2torch, frames copied in and embeddings out on every call, as serving does;
- Triton: the tritonserver bundled in nvidia-pytriton with the Python backend's torch runtime
  (configs/python_gpu.pbtxt), called by the encoder's own client (services/encoder/models.py) over
  gRPC, in a few instance and precision variants so the config's choices rest on numbers.

Per row: frames/s, request latency, and from Triton's metrics the queue time per request (what the
HPA scales on) and the average batch the dynamic batcher ran. Frames are random uint8: the network's
cost does not depend on the pixels. Imports only what the lent machine has or what bench/gpu/run.sh
carries there."""

import asyncio
import itertools
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench import common
from reelvec import triton
from reelvec.models import VISUAL_MODEL_NAME, triton_repository
from reelvec.tools import launcher

BATCHES = (1, 8, 16, 32, 128)
CLIP = 16  # frames in one encoder request
# (frames a request, clients): one client per batch size, then the encoder's real pattern (16-frame
# clips from many uploads at once) and large requests side by side
LOADS = [*((batch, 1) for batch in BATCHES), (CLIP, 4), (CLIP, 16), (CLIP, 64), (128, 4)]
# (instances, precision): the served config first, then one change at a time
VARIANTS = [(2, "float16"), (1, "float16"), (4, "float16"), (2, "float32")]
SERVED = "python_gpu"


def _requests(batch: int, clients: int, quick: bool) -> int:
    frames = (512 if quick else 4096) * (4 if clients > 1 else 1)
    return min(1024, max(8 if quick else 24, frames // batch))


def _gpu_memory_mib() -> float:
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=30)
    return float(out.stdout.split()[0]) if out.returncode == 0 else float("nan")


def _eager(path: Path, frames: np.ndarray, quick: bool) -> tuple[dict, list]:
    """{(precision, batch): (frames/s, p50 ms, p99 ms)} and notes."""
    import torch
    from onnx2torch import convert

    module = convert(str(path)).eval().cuda()
    results = {}
    for precision in ("float32", "float16"):
        dtype = torch.float16 if precision == "float16" else None
        for batch in BATCHES:
            inputs = torch.from_numpy(frames[:batch])

            def call():
                with torch.inference_mode(), torch.autocast("cuda", dtype, enabled=dtype is not None):
                    return module(inputs.to("cuda")).float().cpu()  # .cpu() waits for the GPU

            for _ in range(3):
                call()
            latencies = []
            for _ in range(_requests(batch, 1, quick)):
                started = time.perf_counter()
                call()
                latencies.append(time.perf_counter() - started)
            results[precision, batch] = (batch / np.mean(latencies), *common.percentiles(latencies))
    notes = [f"eager peak GPU memory allocated: {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB "
             f"(PyTorch's own count, without its CUDA context)"]
    return results, notes


def _metrics(port: int) -> dict[str, float]:
    """Triton's counters for the visual model, summed over versions."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    totals: dict[str, float] = {}
    for name, labels, value in re.findall(r"^(nv_inference_\w+)\{([^}]*)\} (\S+)$", text, re.M):
        if f'model="{VISUAL_MODEL_NAME}"' in labels:
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals


async def _load(url: str, frames: np.ndarray, batch: int, clients: int, requests: int) -> tuple[list, np.ndarray]:
    from services.encoder.models import VISUAL, TritonModel

    model = TritonModel(VISUAL, "", url, timeout=120)
    await model.load(60)
    first = await model.predict(frames[:batch])  # warm
    for _ in range(2):
        await model.predict(frames[:batch])
    jobs, latencies = itertools.count(), []

    async def client():
        while next(jobs) < requests:
            started = time.perf_counter()
            await model.predict(frames[:batch])
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client() for _ in range(clients)))
    await model.close()
    return latencies, first


def _variant_repository(work: Path, instances: int, precision: str) -> Path:
    """A copy of the model repository whose configs/bench.pbtxt is the served GPU config with
    `instances` and `precision` changed."""
    repository = work / "models"
    shutil.copytree(triton_repository() / VISUAL_MODEL_NAME, repository / VISUAL_MODEL_NAME,
                    ignore=shutil.ignore_patterns("__pycache__"))
    configs = repository / VISUAL_MODEL_NAME / "configs"
    text = (configs / f"{SERVED}.pbtxt").read_text()
    text, counts = re.subn(r"count: \d+", f"count: {instances}", text)
    text, precisions = re.subn(r'(key: "precision"\s+value: \{ string_value: )"\w+"', rf'\1"{precision}"', text)
    if counts != 1 or precisions != 1:
        raise RuntimeError(f"configs/{SERVED}.pbtxt changed shape: {counts} counts, {precisions} precisions")
    (configs / "bench.pbtxt").write_text(text)
    return repository


def _triton(frames: np.ndarray, reference: np.ndarray, instances: int, precision: str, quick: bool):
    """Rows of one variant: [(batch, clients, frames/s, p50, p99, queue µs, avg batch)], peak GPU
    memory over the idle baseline (MiB), largest difference from onnxruntime on the CPU."""
    rows, baseline, peak, drift = [], _gpu_memory_mib(), 0.0, float("nan")
    with tempfile.TemporaryDirectory() as work:
        ports = [launcher.free_port() for _ in range(3)]
        argv, env = triton.command(_variant_repository(Path(work), instances, precision), Path(work), *ports,
                                   config_name="bench", shm_bytes=256 * 2**20)
        log = Path(work) / "triton.log"
        process = triton.start(argv, env, log)
        try:
            url = f"127.0.0.1:{ports[0]}"
            try:
                triton.wait_ready(url, timeout=300, process=process)
            except triton.TritonNotReady:
                print(log.read_text()[-4000:], flush=True)
                raise
            for batch, clients in LOADS:
                before = _metrics(ports[2])
                requests = _requests(batch, clients, quick)
                started = time.perf_counter()
                latencies, first = asyncio.run(_load(url, frames, batch, clients, requests))
                wall = time.perf_counter() - started
                peak = max(peak, _gpu_memory_mib() - baseline)
                after = _metrics(ports[2])
                delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
                served = max(delta.get("nv_inference_request_success", 0.0), 1.0)
                runs = max(delta.get("nv_inference_exec_count", 0.0), 1.0)
                p50, p99 = common.percentiles(latencies)
                # wall includes the warm-up calls: frames/s from the timed requests' own span
                rate = batch * len(latencies) / (sum(latencies) / clients) if latencies else 0.0
                rows.append((batch, clients, rate, p50, p99, delta.get("nv_inference_queue_duration_us", 0.0) / served,
                             delta.get("nv_inference_count", 0.0) / runs))
                if batch == len(reference):
                    drift = float(np.abs(first - reference).max())
                print(f"  triton {instances}x {precision}: {batch} frames x {clients} clients: "
                      f"{rate:,.0f} frames/s, p99 {p99:.1f} ms ({wall:.1f} s)", flush=True)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    return rows, peak, drift


def run(args) -> common.Section:
    import onnxruntime as ort
    import torch

    path = triton_repository() / VISUAL_MODEL_NAME / "1" / "model.onnx"
    frames = np.random.default_rng(0).integers(0, 256, (max(BATCHES), 224, 224, 3), dtype=np.uint8)
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"frames": frames[:CLIP]})[0]
    section = common.Section(
        f"Visual encoder on {torch.cuda.get_device_name()}: Triton (bundled server, Python backend, torch) "
        "against PyTorch eager, same model.onnx",
        ["engine", "frames a request", "clients", "frames/s", "p50 ms", "p99 ms", "queue µs/request",
         "avg batch run", "vs eager"],
    )
    eager, section.notes = _eager(path, frames, args.quick)
    torch.cuda.empty_cache()  # the eager module is gone: Triton's memory is read against what stays
    for (precision, batch), (fps, p50, p99) in eager.items():
        section.rows.append([f"PyTorch eager, {precision} (baseline)", batch, 1, fps, p50, p99, "-", batch, "1.00x"])
        section.metrics[f"encoder_gpu_eager_{precision}_b{batch}_fps"] = fps
    if not triton.STUB.exists():
        section.notes.append(f"no Triton rows: {triton.TRITONSERVER.parent.parent} has no Python {triton.PYTHON_VERSION} stub")
        return section
    for instances, precision in VARIANTS[:2] if args.quick else VARIANTS:
        try:
            rows, peak, drift = _triton(frames, reference, instances, precision, args.quick)
        except triton.TritonNotReady as exc:  # the eager rows stand; the log's tail is printed above
            section.notes.append(f"Triton, {instances} instances, {precision}: {exc}")
            break
        label = f"Triton, {instances} instance{'s' * (instances > 1)}, {precision}"
        key = f"encoder_gpu_triton_i{instances}_{precision}"
        for batch, clients, fps, p50, p99, queue_us, avg_batch in rows:
            ratio = fps / eager[precision, batch][0]
            section.rows.append([label, batch, clients, fps, p50, p99, queue_us, avg_batch, f"{ratio:.2f}x"])
            section.metrics[f"{key}_b{batch}_c{clients}_fps"] = fps
            section.metrics[f"{key}_b{batch}_c{clients}_p99_ms"] = p99
            section.metrics[f"{key}_b{batch}_c{clients}_queue_us"] = queue_us
        section.metrics[f"{key}_gpu_memory_mib"] = peak
        section.metrics[f"{key}_max_abs_diff_vs_cpu"] = drift
        section.notes.append(f"{label}: GPU memory {peak:,.0f} MiB over idle (all its stubs, nvidia-smi); "
                             f"embeddings within {drift:.4f} of onnxruntime on the CPU (values lie in [0, 6])")
    section.notes.append("vs eager: against eager at the same precision and frames a call; cuDNN autotuning off "
                         "in both (the batcher's sizes vary)")
    return section
