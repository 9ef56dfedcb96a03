"""Ingest on a GPU: `python -m bench ingest --device cuda --inputs FOLDER` (BENCHMARKS.md, GPU).

The ingest suite's clips, prepared where espeak-ng can speak them (`python -m bench.ingest_gpu
--save-inputs FOLDER`, and again with `--clips`), give two kinds of rows:
- FOLDER/ingest.npz, each clip's audio and its 16 sampled frames decoded beforehand: the model work a
  GPU takes over, the transcriber's Speech (VAD, packing, Whisper base) and the visual encoder,
  float16 on CUDA against the same code on that machine's CPU (int8 Whisper, float32 encoder, every
  core). Decoding stays on the CPU either way and is not in these rows. Clips reach Speech 8 at a
  time, as the ingest suite uploads them; the "4 at once" row has 4 threads call one Speech with 4
  workers, each on a quarter of the clips: the GPU overlay's REELVEC_MAX_TRANSCRIPTIONS.
- FOLDER/clips (with --clips), the clips themselves: the whole stack, `reelvec up --gpu` (Triton
  with PyTorch on CUDA, Whisper float16) against `reelvec up` on that machine's CPUs, each indexing
  every clip through the gateway as `reelvec index` does. The CPU stack's encoder runs the visual
  model in process with onnxruntime (REELVEC_VISUAL_BACKEND): the bundled Triton's CPU runtime hands
  numpy arrays to a stub built for numpy 1, and the GPU machine's Python has numpy 2."""

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench import common
from bench.transcription import words

UPLOADS_AT_ONCE = 8
AT_ONCE = 4


def save_inputs(folder: Path, clips: bool) -> None:
    from google.protobuf import json_format

    from bench import ingest
    from reelvec import frames, media

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        corpus = ingest._corpus(Path(work), quick=False)
        if clips:
            (folder / "clips").mkdir(exist_ok=True)
            for video, _ in corpus:
                shutil.copyfile(video, folder / "clips" / video.name)
            metadata = [json_format.MessageToDict(m) for _, m in corpus]
            (folder / "clips" / "metadata.json").write_text(json.dumps(metadata))
            return
        arrays, seconds = {}, []
        for i, (video, _) in enumerate(corpus):
            data = video.read_bytes()
            seconds.append(media.probe(data).duration)
            arrays[f"audio{i}"] = media.decode_audio(data)
            arrays[f"frames{i}"] = frames.sample(data).frames
    np.savez_compressed(folder / "ingest.npz", seconds=np.array(seconds), **arrays)


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


def stack_items(folder: Path) -> list:
    """save_inputs' clips/ as the ingest suite's items: (path, VideoMetadata)."""
    from google.protobuf import json_format

    from reelvec.v1 import common_pb2

    metadata = json.loads((folder / "metadata.json").read_text())
    return [(folder / f"{m['id']}.mp4", json_format.ParseDict(m, common_pb2.VideoMetadata())) for m in metadata]


def _stack(folder: Path) -> common.Section:
    """The whole stack on the GPU against the same stack on that machine's CPUs."""
    import torch

    from bench import ingest
    from reelvec import media

    items = stack_items(folder)
    video_s = sum(media.probe(path.read_bytes()).duration for path, _ in items)
    section = common.Section(
        f"Ingest, the whole stack on {torch.cuda.get_device_name()} ({len(items)} clips, {video_s:.0f} s of video)",
        ["stack", "wall s", "videos/min", "x real time", "CPU s per video s", "Whisper windows", "vs CPU stack"],
    )
    stacks = {"cpu": ("that machine's CPUs (reelvec up)", (), {"REELVEC_VISUAL_BACKEND": "onnxruntime"}),
              "gpu": ("GPU (reelvec up --gpu)", ("--gpu",), {})}
    runs = {}
    for key, (label, up_args, env) in stacks.items():
        with tempfile.TemporaryDirectory() as data:
            runs[key] = ingest._reelvec(items, Path(data), up_args, **env)
        print(f"  {label}: {runs[key][0]:.1f} s for {video_s:.0f} s of video", flush=True)
    for key, (wall, cpu, by_process, windows) in runs.items():
        label = stacks[key][0]
        section.rows.append([label, wall, 60 * len(items) / wall, video_s / wall, cpu / video_s, windows,
                             f"{runs['cpu'][0] / wall:.2f}x"])
        section.metrics[f"ingest_stack_x_realtime_{key}"] = video_s / wall
        section.metrics[f"ingest_stack_videos_per_min_{key}"] = 60 * len(items) / wall
        section.notes.append(f"{label}, CPU s per video s by process: " + ", ".join(
            f"{name} {spent / video_s:.3f}" for name, spent in sorted(by_process.items(), key=lambda kv: -kv[1])))
    section.notes.append("each stack indexes every clip once, 8 at a time as `reelvec index` does; start-up excluded")
    return section


def run(args) -> common.Section | list[common.Section]:
    if not args.inputs:
        sys.exit("ingest --device cuda needs --inputs FOLDER (python -m bench.ingest_gpu --save-inputs FOLDER)")
    sections = []
    if (args.inputs / "ingest.npz").exists():
        sections.append(_model_work(args.inputs / "ingest.npz", args.quick))
    if (args.inputs / "clips").is_dir():
        sections.append(_stack(args.inputs / "clips"))
    if not sections:
        sys.exit(f"{args.inputs} holds neither ingest.npz nor clips/")
    return sections


def _model_work(inputs: Path, quick: bool) -> common.Section:
    import prometheus_client
    import torch

    from reelvec.models import visual as visual_model
    from services.transcriber.speech import Speech

    def windows() -> float:
        return prometheus_client.REGISTRY.get_sample_value("reelvec_whisper_windows_total") or 0.0

    audios, frames, video_s = _load(inputs)
    repeats = 1 if quick else 2
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
    if sys.argv[1:2] == ["--save-inputs"] and len(sys.argv) in (3, 4) and sys.argv[3:] in ([], ["--clips"]):
        save_inputs(Path(sys.argv[2]), clips=sys.argv[3:] == ["--clips"])
    else:
        sys.exit("run it as: python -m bench ingest --device cuda --inputs FOLDER, after "
                 "python -m bench.ingest_gpu --save-inputs FOLDER [--clips]")
