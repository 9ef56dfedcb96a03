"""The visual encoder's GPU rows: `python -m bench encoder --device cuda` (BENCHMARKS.md, GPU).

Three engines on one GPU, in one run, every call copying frames in and embeddings out:
- PyTorch eager on the efficientnet-lite-pytorch module that model.onnx is exported from: the
  baseline a user would otherwise pick;
- PyTorch eager on the served graph (model.onnx folded and converted by 1/model.py's Torch runtime):
  what Triton runs, without the server;
- Triton: the tritonserver bundled in nvidia-pytriton with that runtime (configs/python_gpu.pbtxt),
  called by the encoder's own client (services/encoder/models.py) over gRPC, in a few instance and
  precision variants so that the config's choices rest on numbers.

Per row: frames/s, request latency, and from Triton's metrics the queue time per request (what the
HPA scales on) and the average batch the dynamic batcher ran. Each row runs for a bounded time.
Frames are random uint8: the network's cost does not depend on the pixels. Imports only what the
lent machine has or what bench/gpu/run.sh carries there."""

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
from reelvec.models import VISUAL_MODEL_NAME, python_backend, triton_repository
from reelvec.models import visual as visual_model
from reelvec.tools import launcher

BATCHES = (1, 8, 16, 32, 128)
CLIP = 16  # frames in one encoder request
# (frames a request, clients): one client per batch size, then the encoder's real pattern (16-frame
# clips from many uploads at once) and large requests side by side
LOADS = [*((batch, 1) for batch in BATCHES), (CLIP, 4), (CLIP, 16), (128, 4)]
# (instances, precision, Triton's instance kind): the served config first, then one change at a time
VARIANTS = [(2, "float16", "KIND_CPU"), (1, "float16", "KIND_CPU"), (2, "float32", "KIND_CPU"),
            (1, "float16", "KIND_GPU")]
SERVED = "python_gpu"


def _seconds(quick: bool) -> float:
    return 0.5 if quick else 2.0  # per row, after its warm-up


def _gpu_memory_mib() -> float:
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=30)
    return float(out.stdout.split()[0]) if out.returncode == 0 else float("nan")


def _served_runtime(repository: Path, device: str, precision: str):
    """1/model.py's Torch runtime on the repository's model.onnx, built as Triton builds it."""
    config = {"parameters": {"precision": {"string_value": precision}}}
    model = repository / VISUAL_MODEL_NAME / "1" / "model.onnx"
    return python_backend().Torch(str(model), config, device, [visual_model.OUTPUT, visual_model.DESCRIPTOR])


def _eager(frames: np.ndarray, quick: bool) -> tuple[dict, list]:
    """{(engine, precision, batch): (frames/s, p50 ms, p99 ms)} and notes."""
    import torch

    modules, notes = {}, []
    try:
        modules["package"] = visual_model.eager_model().cuda()
    except ImportError as exc:
        notes.append(f"no efficientnet-lite-pytorch eager rows: {exc}")
    modules["served"] = _served_runtime(triton_repository(), "cuda", "float32").module
    results = {}
    for (engine, module), precision, batch in itertools.product(modules.items(), ("float32", "float16"), BATCHES):
        dtype = torch.float16 if precision == "float16" else None
        inputs = torch.from_numpy(frames[:batch])

        def call():
            with torch.inference_mode(), torch.autocast("cuda", dtype, enabled=dtype is not None):
                out = module(inputs.to("cuda"))  # the served graph gives both outputs, the package's one
                return [o.float().cpu() for o in (out if isinstance(out, (list, tuple)) else [out])]  # .cpu() waits

        for _ in range(3):
            call()
        latencies, until = [], time.perf_counter() + _seconds(quick)
        while time.perf_counter() < until or len(latencies) < 10:
            started = time.perf_counter()
            call()
            latencies.append(time.perf_counter() - started)
        results[engine, precision, batch] = (batch / np.mean(latencies), *common.percentiles(latencies))
        print(f"  eager {engine} {precision}: {batch} frames: {results[engine, precision, batch][0]:,.0f} frames/s",
              flush=True)
    notes.append(f"eager peak GPU memory allocated: {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB "
                 f"(PyTorch's own count, without its CUDA context)")
    return results, notes


def _metrics(port: int) -> dict[str, float]:
    """Triton's counters for the visual model, summed over versions."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    totals: dict[str, float] = {}
    for name, labels, value in re.findall(r"^(nv_inference_\w+)\{([^}]*)\} (\S+)$", text, re.M):
        if f'model="{VISUAL_MODEL_NAME}"' in labels:
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals


async def _load(url: str, frames: np.ndarray, batch: int, clients: int, seconds: float) -> tuple[list, np.ndarray]:
    from services.encoder.models import VISUAL, TritonModel

    model = TritonModel(VISUAL, "", url, timeout=120)
    await model.load(60)
    first, *_ = await model.predict(frames[:batch])  # warm; the embeddings
    for _ in range(2):
        await model.predict(frames[:batch])
    latencies, until = [], time.perf_counter() + seconds

    async def client():
        while time.perf_counter() < until:
            started = time.perf_counter()
            await model.predict(frames[:batch])
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client() for _ in range(clients)))
    await model.close()
    return latencies, first


def _variant_repository(work: Path, instances: int, precision: str, kind: str) -> Path:
    """A copy of the model repository whose configs/bench.pbtxt is the served GPU config with
    `instances`, `precision` and the instance `kind` changed."""
    repository = work / "models"
    shutil.copytree(triton_repository() / VISUAL_MODEL_NAME, repository / VISUAL_MODEL_NAME,
                    ignore=shutil.ignore_patterns("__pycache__"))
    configs = repository / VISUAL_MODEL_NAME / "configs"
    text = (configs / f"{SERVED}.pbtxt").read_text()
    text, counts = re.subn(r"count: \d+", f"count: {instances}", text)
    text, precisions = re.subn(r'(key: "precision"\s+value: \{ string_value: )"\w+"', rf'\1"{precision}"', text)
    text, kinds = re.subn(r"kind: KIND_\w+", f"kind: {kind}", text)
    if (counts, precisions, kinds) != (1, 1, 1):
        raise RuntimeError(f"configs/{SERVED}.pbtxt changed shape: {counts} counts, {precisions} precisions, "
                           f"{kinds} kinds")
    (configs / "bench.pbtxt").write_text(text)
    return repository


def _triton(frames: np.ndarray, reference: np.ndarray, instances: int, precision: str, kind: str, quick: bool):
    """Rows of one variant: [(batch, clients, frames/s, p50, p99, queue µs, avg batch)], peak GPU
    memory over the idle baseline (MiB), largest difference from onnxruntime on the CPU."""
    rows, baseline, peak, drift = [], _gpu_memory_mib(), 0.0, float("nan")
    with tempfile.TemporaryDirectory() as work:
        ports = [launcher.free_port() for _ in range(3)]
        argv, env = triton.command(_variant_repository(Path(work), instances, precision, kind), Path(work), *ports,
                                   config_name="bench", shm_bytes=triton.GPU_SHM_BYTES)
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
                started = time.perf_counter()
                latencies, first = asyncio.run(_load(url, frames, batch, clients, _seconds(quick)))
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
    size = visual_model.SIZE
    frames = np.random.default_rng(0).integers(0, 256, (max(BATCHES), size, size, 3), dtype=np.uint8)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = session.run(None, {visual_model.INPUT: frames[:CLIP]})[0]
    section = common.Section(
        f"Visual encoder on {torch.cuda.get_device_name()}: Triton (bundled server, Python backend, torch) "
        "against PyTorch eager",
        ["engine", "frames a request", "clients", "frames/s", "p50 ms", "p99 ms", "queue µs/request",
         "avg batch run", "vs eager"],
    )
    eager, section.notes = _eager(frames, args.quick)
    torch.cuda.empty_cache()  # the eager modules are gone: Triton's memory is read against what stays
    baseline = "package" if ("package", "float32", 1) in eager else "served"
    for (engine, precision, batch), (fps, p50, p99) in eager.items():
        label = {"package": "PyTorch eager, efficientnet-lite-pytorch", "served": "PyTorch eager, served graph"}[engine]
        ratio = fps / eager[baseline, precision, batch][0]
        section.rows.append([f"{label}, {precision}", batch, 1, fps, p50, p99, "-", batch, f"{ratio:.2f}x"])
        section.metrics[f"encoder_gpu_eager_{engine}_{precision}_b{batch}_fps"] = fps
    if not triton.STUB.exists():
        section.notes.append(f"no Triton rows: {triton.TRITONSERVER.parent.parent} has no Python {triton.PYTHON_VERSION} stub")
        return section
    for instances, precision, kind in VARIANTS[:2] if args.quick else VARIANTS:
        label = f"Triton, {instances} instance{'s' * (instances > 1)}, {precision}" + (", KIND_GPU" * (kind == "KIND_GPU"))
        try:
            rows, peak, drift = _triton(frames, reference, instances, precision, kind, args.quick)
        except Exception as exc:  # noqa: BLE001 - the other variants and the eager rows stand
            section.notes.append(f"{label}: failed: {type(exc).__name__}: {str(exc)[:300]}")
            print(f"  {label}: failed: {exc!r}"[:600], flush=True)
            continue
        key = f"encoder_gpu_triton_i{instances}_{precision}" + ("_kind_gpu" * (kind == "KIND_GPU"))
        for batch, clients, fps, p50, p99, queue_us, avg_batch in rows:
            ratio = fps / eager[baseline, precision, batch][0]
            section.rows.append([label, batch, clients, fps, p50, p99, queue_us, avg_batch, f"{ratio:.2f}x"])
            section.metrics[f"{key}_b{batch}_c{clients}_fps"] = fps
            section.metrics[f"{key}_b{batch}_c{clients}_p99_ms"] = p99
            section.metrics[f"{key}_b{batch}_c{clients}_queue_us"] = queue_us
        section.metrics[f"{key}_gpu_memory_mib"] = peak
        section.metrics[f"{key}_max_abs_diff_vs_cpu"] = drift
        section.notes.append(f"{label}: GPU memory {peak:,.0f} MiB over idle (all its stubs, nvidia-smi); "
                             f"embeddings within {drift:.4f} of onnxruntime on the CPU (values lie in [0, 6])")
    section.notes.append(f"vs eager: against the {baseline} module's eager rows at the same precision and frames "
                         "a call; cuDNN autotuning off everywhere (the batcher's sizes vary)")
    return section
