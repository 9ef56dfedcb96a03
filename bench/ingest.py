"""Ingest: whole videos through the gateway's Index (the real stack, Whisper base) versus the naive
pipeline of the seed studies, on the same clips with speech: decode every frame, PyTorch eager
EfficientNet on each, openai-whisper on the audio (same base weights), sentence-transformers on the
text, a numpy matrix as the index."""

import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bench import common, transcription
from reelvec import frames as frame_ops
from reelvec import media, samples
from reelvec.tools import cli, client, launcher
from reelvec.tools.local_stack import RunningStack
from reelvec.v1 import common_pb2

# Like a phone upload, downscaled: portrait, 30 fps. The frame rate matters to the naive pipeline,
# which runs the network on every frame; reelvec samples 16 frames whatever the length.
SIZE, FPS, BITRATE = (540, 960), 30, 2_000_000


def _corpus(folder: Path, quick: bool) -> list[tuple[Path, common_pb2.VideoMetadata]]:
    """Clips with speech all through: the sample corpus's six short captions (about 5 s) and the
    transcription benchmark's seven longer texts (10-36 s)."""
    texts = [*samples.SAMPLE_SPEECH, *transcription.TEXTS]
    if quick:
        texts = [texts[0], texts[1], texts[-2]]
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i, text in enumerate(texts):
        path = samples.make_video(folder / f"talk{i}.mp4", seed=i, speech=text, size=SIZE, fps=FPS,
                                  bitrate=BITRATE)
        items.append((path, common_pb2.VideoMetadata(id=path.stem, caption=text.split(".")[0], likes=100 * i)))
    return items


def _naive(items) -> tuple[float, float]:
    import torch
    from sentence_transformers import SentenceTransformer

    from bench.baselines import openai_whisper
    from reelvec.models import text as text_model
    from reelvec.models import visual as visual_model

    model = visual_model.eager_model()
    whisper = openai_whisper.load("base")
    sentences = SentenceTransformer(str(text_model.source_dir()), device="cpu")
    index = []
    with common.Timer() as t:
        for path, metadata in items:
            data = path.read_bytes()
            with media.open_media(data) as container:
                crops = np.stack([frame_ops.crop(f) for f in container.decode(video=0)])
            with torch.no_grad():
                visual = torch.cat([model(torch.from_numpy(crops[i : i + 32])) for i in range(0, len(crops), 32)])
            audio = media.decode_audio(data)
            transcript = ""
            if audio is not None:
                transcript = whisper.transcribe(audio, language="en", beam_size=5, fp16=False)["text"]
            text = sentences.encode(f"{metadata.caption}\n{transcript}", normalize_embeddings=True)
            index.append(np.concatenate([visual.mean(0).numpy(), text]))
        np.stack(index)
    return t.wall, t.cpu


def _whisper_windows(metrics_address: str) -> float:
    """The transcriber's count of Whisper encoder passes."""
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10) as response:
        families = text_string_to_metric_families(response.read().decode())
        return next(s.value for f in families for s in f.samples if s.name == "reelvec_whisper_windows_total")


def _reelvec(items, data_dir: Path, up_args: tuple[str, ...] = (), **env: str) -> tuple[float, float, dict[str, float], float]:
    """Wall and CPU seconds (every process of the stack plus this client), CPU by process, and the
    Whisper windows encoded. `up_args` and `env` go to `reelvec up` (--gpu)."""
    stack = RunningStack(data_dir, launcher.free_port(), up_args, **env)
    stack.start()
    try:
        pids = stack.pids()
        transcriber_metrics = stack.state()["transcriber"]["metrics"]
        windows = _whisper_windows(transcriber_metrics)
        before = common.cpu_by_process(pids)
        stub = client.connect(stack.gateway)
        with common.Timer() as t, ThreadPoolExecutor(cli.INDEX_CONCURRENCY) as pool:  # as `reelvec index`
            list(pool.map(lambda item: client.index_file(stub, *item), items))
        spent = common.cpu_spent(before, pids)
        windows = _whisper_windows(transcriber_metrics) - windows
    finally:
        stack.stop()
    return t.wall, sum(spent.values()), spent, windows


def run(args) -> common.Section:
    section = common.Section(
        f"Ingest (whole Index path, Whisper base, clips with speech, {SIZE[0]}x{SIZE[1]} at {FPS} fps)",
        ["pipeline", "videos", "video s", "wall s", "videos/min", "video s per CPU s", "x realtime", "speedup"],
    )
    with tempfile.TemporaryDirectory() as tmp:
        items = _corpus(Path(tmp) / "corpus", args.quick)
        seconds = sum(media.probe(p.read_bytes()).duration for p, _ in items)
        wall, cpu, by_process, windows = _reelvec(items, Path(tmp) / "data")
        # Copy detection's frames at their whole cost: the same stack sampling 16 frames a clip, as
        # it did before the descriptors (docs/copies.md, section 1)
        few = _reelvec(items, Path(tmp) / "data-16", REELVEC_FRAMES_PER_SECOND="0")
        rows = [("naive (seed studies)", *_naive(items)), ("reelvec", wall, cpu),
                ("reelvec, 16 frames a clip (no copy descriptors)", *few[:2])]
    naive_wall = rows[0][1]
    for name, wall, cpu in rows:
        section.rows.append([name, len(items), seconds, wall, 60 * len(items) / wall, seconds / cpu,
                             seconds / wall, f"{naive_wall / wall:.2f}x"])
    section.metrics.update(
        ingest_videos_per_min=60 * len(items) / rows[1][1],
        ingest_videos_per_min_naive=60 * len(items) / naive_wall,
        ingest_speedup_vs_naive=naive_wall / rows[1][1],
        ingest_realtime_factor=seconds / rows[1][1],
        ingest_video_seconds_per_cpu_second=seconds / rows[1][2],
        ingest_whisper_windows=windows,
        ingest_copy_frames_cpu_ratio=rows[1][2] / rows[2][2],
    )
    section.notes.append(f"copy detection's frames (1 a second, at least 16) cost {rows[1][2] / rows[2][2] - 1:+.1%} "
                         "of the whole ingest's CPU against 16 frames a clip")
    section.notes.append(f"reelvec encoded {windows:.0f} Whisper windows for {len(items)} clips "
                         f"({seconds:.0f} s; windows share clips when uploads queue together)")
    section.notes.append("reelvec CPU counts every process of the stack plus the client; time excludes start-up")
    section.notes.append("reelvec CPU s per video s, by process: " + ", ".join(
        f"{name} {cpu / seconds:.3f}" for name, cpu in sorted(by_process.items(), key=lambda kv: -kv[1])))
    return section
