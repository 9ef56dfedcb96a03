"""The options that let the GPU rows run on a lent machine without espeak-ng or PyAV (bench/gpu/run.sh)."""

import subprocess
import sys

import numpy as np

from bench import transcription
from reelvec import media, samples


def test_saved_audio_is_the_clips_the_bench_would_make(tmp_path):
    texts = transcription.TEXTS[:1]
    transcription.save_inputs(tmp_path / "audio.npz", texts)
    clips, read_texts = transcription._load_inputs(tmp_path / "audio.npz")
    video = samples.make_video(tmp_path / "again.mp4", seed=0, speech=texts[0])
    assert read_texts == texts
    assert len(clips) == 1 and clips[0].dtype == np.float32
    np.testing.assert_array_equal(clips[0], media.decode_audio(video.read_bytes()))


def test_device_cuda_is_refused_for_a_benchmark_without_gpu_rows():
    done = subprocess.run([sys.executable, "-m", "bench", "search", "--device", "cuda"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--device cuda is for encoder, transcription, ingest only" in done.stderr
