"""The visual encoder's GPU rows: `python -m bench encoder --device cuda` (BENCHMARKS.md, GPU).

Imports only what a lent GPU machine has: bench/encoder.py needs Triton's client, PyAV and grpc_health."""

import numpy as np

from bench import common
from reelvec.models import visual as visual_model

FRAMES_PER_CLIP = 16  # one encoder request, as in bench/encoder.py


def run(args) -> common.Section:
    """The GPU rows (BENCHMARKS.md, GPU). A lent H200 has PyTorch with CUDA but no Triton server,
    onnxruntime-gpu, PyAV or scikit-video, so this times the same eager model on CUDA, float32 and
    float16 (autocast), at one request's 16 frames a call and at 8 requests' 128 (what Triton's dynamic
    batcher assembles at concurrency 8), against the eager model on that machine's CPU. Frames are random
    uint8: the network's cost does not depend on the pixels. Each call copies the frames in and the
    embeddings out, as serving would."""
    import torch

    model = visual_model.eager_model()
    calls = 12 if args.quick else 60
    frames = np.random.default_rng(0).integers(0, 256, (8 * FRAMES_PER_CLIP, visual_model.SIZE,
                                                         visual_model.SIZE, 3), dtype=np.uint8)
    section = common.Section(
        f"Visual encoder on {torch.cuda.get_device_name()} (EfficientNet-Lite0, PyTorch eager)",
        ["engine", "frames a call", "frames/s", "CPU ms/frame", "vs CPU eager"],
    )
    rows, outputs = [], {}

    def timed(label: str, key: str, device: str, batch: int, dtype=None):
        inputs = torch.from_numpy(frames[:batch])

        def call():
            with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                return model(inputs.to(device)).float().cpu()  # .cpu() waits for the GPU

        outputs[key] = call()  # warm: cuDNN picks its kernels on the first call of each shape
        with common.Timer() as t:
            for _ in range(calls):
                call()
        rows.append((label, key, batch, batch * calls / t.wall, 1000 * t.cpu / (batch * calls)))

    with torch.inference_mode():
        # its key names the machine: a 16-core CPU is not the CPU rows' 2 cores
        timed("PyTorch eager, CPU float32 (baseline)", "torch_eager_gpu_machine_cpu", "cpu", FRAMES_PER_CLIP)
        model.to("cuda")
        torch.backends.cudnn.benchmark = True
        timed("PyTorch eager, CUDA float32", "torch_cuda_fp32", "cuda", FRAMES_PER_CLIP)
        timed("PyTorch eager, CUDA float16", "torch_cuda_fp16", "cuda", FRAMES_PER_CLIP, torch.float16)
        timed("PyTorch eager, CUDA float32", "torch_cuda_fp32_b128", "cuda", 8 * FRAMES_PER_CLIP)
        timed("PyTorch eager, CUDA float16", "torch_cuda_fp16_b128", "cuda", 8 * FRAMES_PER_CLIP, torch.float16)
    cpu_fps = rows[0][3]
    for label, key, batch, fps, cpu_ms in rows:
        section.rows.append([label, batch, fps, cpu_ms, f"{fps / cpu_fps:.2f}x"])
        section.metrics[f"encoder_fps_{key}"] = fps
    drift = (outputs["torch_cuda_fp16"] - outputs["torch_eager_gpu_machine_cpu"]).abs().max().item()
    section.metrics["encoder_fp16_max_abs_diff"] = drift
    section.notes += [
        f"{calls} calls per row after a warm-up; the CPU baseline uses all {torch.get_num_threads()} threads",
        f"float16 moves the 16-frame embeddings by at most {drift:.4f} against CPU float32 "
        f"(values lie in [0, 6]; float32 CUDA: "
        f"{(outputs['torch_cuda_fp32'] - outputs['torch_eager_gpu_machine_cpu']).abs().max().item():.4f})",
    ]
    return section
