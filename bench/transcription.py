"""Transcription: faster-whisper (reelvec's engine; int8 as served, float32) versus openai-whisper, the
PyTorch reference, running the same weights (bench/baselines/openai_whisper.py converts them) on the same
audio: espeak-ng speech of known texts, muxed into mp4 and decoded once with reelvec.media.

Each engine runs in a fresh subprocess (`python -m bench.transcription --child ...`), so its peak RSS
(VmHWM) is its own and no engine inherits another's warm caches or thread pools."""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common

SAMPLE_RATE = 16000
TEXTS = [
    "Three easy pasta recipes you can cook in ten minutes after work. First boil the water and add "
    "plenty of salt, then chop the garlic while the pasta cooks.",
    "Morning workout routine for beginners with no equipment needed. Start with twenty squats, fifteen "
    "lunges and a one minute plank, then rest and repeat the circuit three times.",
    "Top five travel tips for visiting Tokyo on a budget. Buy a rail pass before you land, eat lunch at "
    "the train station, and stay near a subway line.",
    "I tested the new phone camera at night in the city. The photos are sharp and bright, but the video "
    "looks grainy when the street lights are far away.",
    "How to train your puppy to sit and stay in one week. Keep each session short, reward every small "
    "success, and never raise your voice at the dog.",
    "Quick guitar lesson for total beginners. Learn four simple chords, practice switching between them "
    "slowly, and you can play your first song by the weekend.",
    # Longer than Whisper's 30 s window: both engines must seek into a second window.
    "Welcome back to the channel. Today we are building a small garden on a city balcony. You only need "
    "a few pots, good soil and a sunny corner. Start with herbs like basil, mint and parsley, because "
    "they grow fast and forgive mistakes. Water them every morning, but check the soil first so the "
    "roots never sit in water. After about six weeks you can pick fresh leaves for dinner. Let me know "
    "in the comments what you want to grow next.",
]
QUICK_CLIPS = 2  # about 20 s of speech

# (label, engine, compute type, VAD, detect the language), per device. On the CPU the first is reelvec's
# serving configuration with the language given, as every other row has it; the last is the service as
# it runs for base. On a GPU float16 is what both engines run; int8_float16 is CTranslate2's smaller one.
ENGINES = {
    "cpu": [
        ("faster-whisper", "faster", "int8", True, False),
        ("faster-whisper", "faster", "float32", True, False),
        ("faster-whisper, no VAD", "faster", "int8", False, False),
        ("openai-whisper", "openai", "float32", False, False),
        ("faster-whisper, detect language", "faster", "int8", True, True),
    ],
    "cuda": [
        ("faster-whisper", "faster", "float16", True, False),
        ("faster-whisper", "faster", "int8_float16", True, False),
        ("openai-whisper", "openai", "float16", False, False),
    ],
}
TINY_EN_ROWS = {("faster-whisper", "int8"), ("openai-whisper", "float32")}  # English only: no detection
BEAM_SIZE = 5
LANGUAGE = "en"


# --- word error rate -------------------------------------------------------------------------------

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _spoken(n: int) -> str:
    """An integer as words, so "10" and "ten" count as the same word (Whisper writes either)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for size, word in ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            rest = n % size
            return f"{_spoken(n // size)} {word}" + (f" {_spoken(rest)}" if rest else "")
    raise AssertionError(n)


def words(text: str) -> list[str]:
    """Lower case, no punctuation, hyphens as spaces ("push-ups" = "push ups"), digits as words."""
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text.lower())  # 1,000 -> 1000
    text = re.sub(r"\d+", lambda m: f" {_spoken(int(m.group()))} ", text)
    return re.sub(r"[^a-z' ]+", " ", text.replace("-", " ")).replace("'", "").split()


def edits(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level Levenshtein distance: substitutions + deletions + insertions."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != hyp))
    return row[-1]


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER: all edits over all reference words (a long clip weighs more than a short one)."""
    total = sum(edits(words(r), words(h)) for r, h in zip(references, hypotheses))
    return total / sum(len(words(r)) for r in references)


# --- the child: one engine, one model, every clip ----------------------------------------------------


def _faster(model: str, device: str, compute: str, vad: bool, detect: bool, threads: int):
    from faster_whisper import WhisperModel

    from reelvec.models import whisper

    engine = WhisperModel(str(whisper.model_dir(model)), device=device, compute_type=compute,
                          cpu_threads=threads, local_files_only=True)

    def transcribe(audio: np.ndarray) -> str:
        # Detection (as the service runs base) encodes the first 30 s once more before transcribing.
        segments, _ = engine.transcribe(audio, beam_size=BEAM_SIZE, vad_filter=vad,
                                        language=None if detect else LANGUAGE)
        return " ".join(s.text.strip() for s in segments)  # the generator does the decoding

    return transcribe


def _openai(model: str, device: str, threads: int):
    import torch

    from bench.baselines import openai_whisper

    torch.set_num_threads(threads)
    engine = openai_whisper.load(model).to(device)
    fp16 = device == "cuda"  # its default there: its layers cast their float32 weights to float16 per call

    def transcribe(audio: np.ndarray) -> str:
        with torch.inference_mode():
            result = engine.transcribe(audio, language=LANGUAGE, beam_size=BEAM_SIZE, fp16=fp16, verbose=None)
        return result["text"].strip()

    return transcribe


def child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["faster", "openai"])
    parser.add_argument("--model")
    parser.add_argument("--device")
    parser.add_argument("--compute")
    parser.add_argument("--vad", type=int)
    parser.add_argument("--detect", type=int)
    parser.add_argument("--audio", type=Path)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--threads", type=int)
    a = parser.parse_args(argv)
    with np.load(a.audio) as archive:
        clips = [archive[f"clip{i}"] for i in range(len(archive.files))]
    started = time.perf_counter()
    if a.engine == "faster":
        transcribe = _faster(a.model, a.device, a.compute, bool(a.vad), bool(a.detect), a.threads)
    else:
        transcribe = _openai(a.model, a.device, a.threads)
    load_s = time.perf_counter() - started
    transcribe(clips[0])  # warm-up: first-call allocations and lazy initialisation are not the steady state
    best, texts = [float("inf")] * len(clips), [""] * len(clips)
    for _ in range(a.repeats):  # best of N per clip: the 2 cores are shared with other jobs
        for i, audio in enumerate(clips):
            with common.Timer() as t:
                texts[i] = transcribe(audio)
            best[i] = min(best[i], t.wall)
    print(json.dumps({"seconds": best, "texts": texts, "load_s": load_s, "peak_mb": common.peak_rss_mb()}))


# --- the parent ------------------------------------------------------------------------------------


def _clips(folder: Path, texts: list[str]) -> list[np.ndarray]:
    from reelvec import media, samples

    clips = []
    for i, text in enumerate(texts):
        video = samples.make_video(folder / f"speech{i}.mp4", seed=i, speech=text)
        clips.append(media.decode_audio(video.read_bytes()))
    return clips


def save_inputs(path: Path, texts: list[str]) -> None:
    """The clips and their texts in one npz, for a machine without espeak-ng or PyAV (a lent GPU):
    `python -m bench transcription --inputs PATH` reads it there."""
    with tempfile.TemporaryDirectory() as work:
        clips = _clips(Path(work), texts)
    np.savez(path, texts=np.array(texts), **{f"clip{i}": c for i, c in enumerate(clips)})


def _load_inputs(path: Path) -> tuple[list[np.ndarray], list[str]]:
    with np.load(path) as archive:
        texts = [str(t) for t in archive["texts"]]
        return [archive[f"clip{i}"] for i in range(len(texts))], texts


def _measure(audio: Path, engine: str, model: str, device: str, compute: str, vad: bool, detect: bool,
             repeats: int) -> dict:
    threads = len(os.sched_getaffinity(0))  # the same for every engine; CTranslate2's 0 means this too
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")  # idle OpenMP threads sleep instead of spinning
    command = [sys.executable, "-m", "bench.transcription", "--child", f"--engine={engine}",
               f"--model={model}", f"--device={device}", f"--compute={compute}", f"--vad={int(vad)}",
               f"--detect={int(detect)}", f"--audio={audio}", f"--repeats={repeats}", f"--threads={threads}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    if done.returncode:
        raise RuntimeError(f"{engine} {model} {compute} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(args) -> common.Section:
    from bench.baselines import openai_whisper

    device = args.device
    engines = ENGINES[device]
    if args.inputs:
        clips, texts = _load_inputs(args.inputs)
    else:
        texts = TEXTS[:QUICK_CLIPS] if args.quick else TEXTS
        clips = None
    models = ["base"] if args.quick or device != "cpu" else ["base", "tiny.en"]
    repeats = 1 if args.quick else 2
    have_openai = openai_whisper.available()
    if have_openai:
        for model in models:
            openai_whisper.checkpoint_path(model)  # converted here, so no child's load time includes it
    else:
        print(f"transcription: openai-whisper is not installed, so the baseline rows are skipped. "
              f"Install it with: {openai_whisper.INSTALL}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as work:
        clips = clips or _clips(Path(work), texts)
        audio_s = sum(c.size for c in clips) / SAMPLE_RATE
        archive = Path(work) / "audio.npz"
        np.savez(archive, **{f"clip{i}": c for i, c in enumerate(clips)})
        results = {}
        for model in models:
            for label, engine, compute, vad, detect in engines:
                if engine == "openai" and not have_openai:
                    continue
                if model != "base" and (label, compute) not in TINY_EN_ROWS:
                    continue
                results[model, label, compute] = _measure(archive, engine, model, device, compute, vad, detect,
                                                          repeats)

    section = common.Section(
        f"Transcription on {device} ({audio_s:.0f} s of speech in {len(clips)} clips, beam {BEAM_SIZE}, "
        f"{len(os.sched_getaffinity(0))} threads)",
        ["model", "engine", "compute", "RTF", "x realtime", "WER", "peak MiB", "load s", "speedup vs openai"],
    )
    served_key = ("base", engines[0][0], engines[0][2])
    baseline_key = next((("base", label, compute) for label, engine, compute, *_ in engines if engine == "openai"))
    for (model, label, compute), r in results.items():
        rtf = sum(r["seconds"]) / audio_s
        r["rtf"], r["wer"] = rtf, word_error_rate(texts, r["texts"])
        baseline = results.get((model, *baseline_key[1:]))
        speedup = sum(baseline["seconds"]) / sum(r["seconds"]) if baseline else float("nan")
        section.rows.append([model, label, compute, rtf, 1 / rtf, r["wer"], r["peak_mb"], r["load_s"], speedup])

    # What each engine wrote, for reading the WER's errors: bench/results/transcripts.json
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "transcripts.json").write_text(json.dumps(
        {"references": texts, **{" / ".join(key): r["texts"] for key, r in results.items()}}, indent=1))
    served, baseline = results[served_key], results.get(baseline_key)
    suffix = "" if device == "cpu" else f"_{device}"  # a GPU run's keys never pass for the CPU's
    section.metrics = {f"whisper_rtf_fast{suffix}": served["rtf"], f"whisper_wer_fast{suffix}": served["wer"]}
    if baseline:
        section.metrics |= {
            f"whisper_rtf_openai{suffix}": baseline["rtf"],
            f"whisper_wer_openai{suffix}": baseline["wer"],
            f"whisper_speedup_vs_openai{suffix}": baseline["rtf"] / served["rtf"],
        }
        differ = [i for i, (a, b) in enumerate(zip(served["texts"], baseline["texts"])) if words(a) != words(b)]
        section.notes.append(f"base: faster-whisper {served_key[2]} and openai-whisper {baseline_key[2]} wrote "
                             f"the same words on {len(texts) - len(differ)} of {len(texts)} clips "
                             f"(differ: {differ or 'none'})")
    else:
        section.notes.append(f"openai-whisper not installed: {openai_whisper.INSTALL}")
    section.notes += [
        f"RTF = processing s / audio s (best of {repeats} per clip, after a warm-up); load s = imports + "
        "model load; peak MiB = the engine process's VmHWM (Python, imports, model, the audio; not GPU memory)",
        f"{engines[0][0]} {engines[0][2]} with VAD is reelvec's serving configuration on {device}; openai-whisper "
        "has no VAD; every engine but the 'detect language' row is told the language (en); all run with "
        "OMP_WAIT_POLICY=PASSIVE",
    ]
    return section


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
    elif sys.argv[1:2] == ["--save-inputs"] and len(sys.argv) == 3:
        save_inputs(Path(sys.argv[2]), TEXTS)
    else:
        sys.exit("run it as: python -m bench transcription [--quick] [--device cuda] [--inputs FILE], or "
                 "python -m bench.transcription --save-inputs FILE")
