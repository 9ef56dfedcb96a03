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

# (label, engine, compute type, VAD, detect the language). The first is reelvec's serving configuration
# with the language given, as every other row has it; the last is the service as it runs for base.
ENGINES = [
    ("faster-whisper", "faster", "int8", True, False),
    ("faster-whisper", "faster", "float32", True, False),
    ("faster-whisper, no VAD", "faster", "int8", False, False),
    ("openai-whisper", "openai", "float32", False, False),
    ("faster-whisper, detect language", "faster", "int8", True, True),
]
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


def _faster(model: str, compute: str, vad: bool, detect: bool, threads: int):
    from faster_whisper import WhisperModel

    from reelvec.models import whisper

    engine = WhisperModel(str(whisper.model_dir(model)), device="cpu", compute_type=compute,
                          cpu_threads=threads, local_files_only=True)

    def transcribe(audio: np.ndarray) -> str:
        # Detection (as the service runs base) encodes the first 30 s once more before transcribing.
        segments, _ = engine.transcribe(audio, beam_size=BEAM_SIZE, vad_filter=vad,
                                        language=None if detect else LANGUAGE)
        return " ".join(s.text.strip() for s in segments)  # the generator does the decoding

    return transcribe


def _openai(model: str, threads: int):
    import torch

    from bench.baselines import openai_whisper

    torch.set_num_threads(threads)
    engine = openai_whisper.load(model)

    def transcribe(audio: np.ndarray) -> str:
        with torch.inference_mode():
            result = engine.transcribe(audio, language=LANGUAGE, beam_size=BEAM_SIZE, fp16=False, verbose=None)
        return result["text"].strip()

    return transcribe


def child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["faster", "openai"])
    parser.add_argument("--model")
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
        transcribe = _faster(a.model, a.compute, bool(a.vad), bool(a.detect), a.threads)
    else:
        transcribe = _openai(a.model, a.threads)
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


def _measure(audio: Path, engine: str, model: str, compute: str, vad: bool, detect: bool, repeats: int) -> dict:
    threads = len(os.sched_getaffinity(0))  # the same for every engine; CTranslate2's 0 means this too
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")  # idle OpenMP threads sleep instead of spinning
    command = [sys.executable, "-m", "bench.transcription", "--child", f"--engine={engine}",
               f"--model={model}", f"--compute={compute}", f"--vad={int(vad)}", f"--detect={int(detect)}",
               f"--audio={audio}", f"--repeats={repeats}", f"--threads={threads}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    if done.returncode:
        raise RuntimeError(f"{engine} {model} {compute} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(args) -> common.Section:
    from bench.baselines import openai_whisper

    texts = TEXTS[:QUICK_CLIPS] if args.quick else TEXTS
    models = ["base"] if args.quick else ["base", "tiny.en"]
    repeats = 1 if args.quick else 2
    have_openai = openai_whisper.available()
    if have_openai:
        for model in models:
            openai_whisper.checkpoint_path(model)  # converted here, so no child's load time includes it
    else:
        print(f"transcription: openai-whisper is not installed, so the baseline rows are skipped. "
              f"Install it with: {openai_whisper.INSTALL}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as work:
        clips = _clips(Path(work), texts)
        audio_s = sum(c.size for c in clips) / SAMPLE_RATE
        archive = Path(work) / "audio.npz"
        np.savez(archive, **{f"clip{i}": c for i, c in enumerate(clips)})
        results = {}
        for model in models:
            for label, engine, compute, vad, detect in ENGINES:
                if engine == "openai" and not have_openai:
                    continue
                if model != "base" and (label, compute) not in TINY_EN_ROWS:
                    continue
                results[model, label, compute] = _measure(archive, engine, model, compute, vad, detect, repeats)

    section = common.Section(
        f"Transcription ({audio_s:.0f} s of speech in {len(clips)} clips, beam {BEAM_SIZE}, "
        f"{len(os.sched_getaffinity(0))} threads)",
        ["model", "engine", "compute", "RTF", "x realtime", "WER", "peak MiB", "load s", "speedup vs openai"],
    )
    for (model, label, compute), r in results.items():
        rtf = sum(r["seconds"]) / audio_s
        r["rtf"], r["wer"] = rtf, word_error_rate(texts, r["texts"])
        baseline = results.get((model, "openai-whisper", "float32"))
        speedup = sum(baseline["seconds"]) / sum(r["seconds"]) if baseline else float("nan")
        section.rows.append([model, label, compute, rtf, 1 / rtf, r["wer"], r["peak_mb"], r["load_s"], speedup])

    # What each engine wrote, for reading the WER's errors: bench/results/transcripts.json
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "transcripts.json").write_text(json.dumps(
        {"references": texts, **{" / ".join(key): r["texts"] for key, r in results.items()}}, indent=1))
    served, baseline = results[("base", "faster-whisper", "int8")], results.get(("base", "openai-whisper", "float32"))
    section.metrics = {"whisper_rtf_fast": served["rtf"], "whisper_wer_fast": served["wer"]}
    if baseline:
        section.metrics |= {
            "whisper_rtf_openai": baseline["rtf"],
            "whisper_wer_openai": baseline["wer"],
            "whisper_speedup_vs_openai": baseline["rtf"] / served["rtf"],
        }
        differ = [i for i, (a, b) in enumerate(zip(served["texts"], baseline["texts"])) if words(a) != words(b)]
        section.notes.append(f"base: faster-whisper int8 and openai-whisper wrote the same words on "
                             f"{len(texts) - len(differ)} of {len(texts)} clips (differ: {differ or 'none'})")
    else:
        section.notes.append(f"openai-whisper not installed: {openai_whisper.INSTALL}")
    section.notes += [
        f"RTF = processing s / audio s (best of {repeats} per clip, after a warm-up); load s = imports + "
        "model load; peak MiB = the engine process's VmHWM (Python, imports, model, the audio)",
        "faster-whisper int8 with VAD is reelvec's serving configuration; openai-whisper has no VAD; "
        "every engine but the 'detect language' row is told the language (en); all run with "
        "OMP_WAIT_POLICY=PASSIVE",
    ]
    return section


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
    else:
        sys.exit("run it as: python -m bench transcription [--quick]")
