"""Ingest's model work on a GPU: `python -m bench ingest --device cuda --inputs FILE` (BENCHMARKS.md, GPU).

The ingest suite runs the whole stack (Triton, every service, gRPC) and a lent GPU machine has no
tritonserver, PyAV or espeak-ng. So this times the part a GPU takes over, on the ingest suite's clips:
the transcriber's Speech (VAD, packing, Whisper base) and the visual encoder, float16 on CUDA against
the same code on that machine's CPU (int8 Whisper, float32 encoder, every core). Decoding stays on the
CPU either way and is not in these rows: the clips' audio and the 16 frames the encoder samples from
each are decoded here beforehand (`python -m bench.ingest_gpu --save-inputs FILE`).

Clips reach Speech 8 at a time, as the ingest suite uploads them (its transcriber packs what queues).
The "4 at once" row has 4 threads call one Speech with 4 workers, each on a quarter of the clips: the
GPU overlay's REELVEC_MAX_TRANSCRIPTIONS (deploy/k8s/overlays/gpu)."""

import asyncio
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench import common
from bench.transcription import words

UPLOADS_AT_ONCE = 8
AT_ONCE = 4


def save_inputs(path: Path) -> None:
    import tempfile

    from bench import ingest
    from reelvec import frames, media

    with tempfile.TemporaryDirectory() as work:
        arrays, seconds = {}, []
        for i, (video, _) in enumerate(ingest._corpus(Path(work), quick=False)):
            data = video.read_bytes()
            seconds.append(media.probe(data).duration)
            arrays[f"audio{i}"] = media.decode_audio(data)
            arrays[f"frames{i}"] = frames.sample(data).frames
    np.savez_compressed(path, seconds=np.array(seconds), **arrays)


def _load(path: Path) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    with np.load(path) as archive:
        count = len(archive["seconds"])
        audios = [archive[f"audio{i}"] for i in range(count)]
        frames = [archive[f"frames{i}"] for i in range(count)]
        return audios, frames, float(archive["seconds"].sum())


def _timed(work, repeats: int) -> float:
    work()  # warm-up: CUDA kernels chosen, caches filled
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def run(args) -> common.Section:
    import prometheus_client
    import torch

    from reelvec.models import visual as visual_model
    from services.transcriber.speech import Speech

    def windows() -> float:
        return prometheus_client.REGISTRY.get_sample_value("reelvec_whisper_windows_total") or 0.0

    if not args.inputs:
        sys.exit("ingest --device cuda needs --inputs FILE (python -m bench.ingest_gpu --save-inputs FILE)")
    audios, frames, video_s = _load(args.inputs)
    repeats = 1 if args.quick else 2
    groups = [audios[i : i + UPLOADS_AT_ONCE] for i in range(0, len(audios), UPLOADS_AT_ONCE)]
    section = common.Section(
        f"Ingest's model work on {torch.cuda.get_device_name()} ({len(audios)} clips, {video_s:.0f} s of video)",
        ["device", "stage", "seconds", "x real time", "vs CPU"],
    )
    visual = visual_model.eager_model()
    seconds, texts = {}, {}
    for device, compute in (("cpu", "int8"), ("cuda", "float16")):
        speech = Speech("base", device=device, compute_type=compute)
        asyncio.run(speech.load())

        def transcribe():
            texts[device] = [t.text for group in groups for t in speech.transcribe_many(group)]

        before = windows()
        seconds[device, "transcriber"] = _timed(transcribe, repeats)
        per_pass = (windows() - before) / (repeats + 1)
        model = visual.to(device)

        def encode():
            with torch.inference_mode(), torch.autocast("cuda", torch.float16, enabled=device == "cuda"):
                for clip in frames:  # one request per clip, as the encoder sends them
                    model(torch.from_numpy(clip).to(device)).float().cpu()

        seconds[device, "encoder"] = _timed(encode, repeats)
        seconds[device, "both"] = seconds[device, "transcriber"] + seconds[device, "encoder"]
        section.notes.append(f"{device}: Whisper {compute}, {per_pass:.0f} windows a pass over the clips")
        shared = Speech("base", device=device, compute_type=compute, workers=AT_ONCE)
        asyncio.run(shared.load())
        quarters = [audios[i::AT_ONCE] for i in range(AT_ONCE)]
        with ThreadPoolExecutor(AT_ONCE) as pool:
            seconds[device, f"transcriber, {AT_ONCE} at once"] = _timed(
                lambda: list(pool.map(shared.transcribe_many, quarters)), repeats)
    for (device, stage), s in seconds.items():
        section.rows.append([device, stage, s, video_s / s, f"{seconds['cpu', stage] / s:.2f}x"])
        key = stage.replace(",", "").replace(" ", "_")
        section.metrics[f"ingest_models_x_realtime_{key}_{device}"] = video_s / s
    same = sum(words(a) == words(b) for a, b in zip(texts["cpu"], texts["cuda"]))
    section.notes.append(f"Whisper wrote the same words on the CPU and the GPU for {same} of {len(audios)} clips")
    section.notes.append(f"best of {repeats} after a warm-up; the CPU rows use all {len(os.sched_getaffinity(0))} "
                         "cores of that machine; decoding (CPU in both) is not included")
    return section


if __name__ == "__main__":
    if sys.argv[1:2] == ["--save-inputs"] and len(sys.argv) == 3:
        save_inputs(Path(sys.argv[2]))
    else:
        sys.exit("run it as: python -m bench ingest --device cuda --inputs FILE, after "
                 "python -m bench.ingest_gpu --save-inputs FILE")
