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


def test_saved_clips_come_back_as_the_ingest_suites_items(tmp_path, monkeypatch):
    from bench import ingest, ingest_gpu
    from reelvec.v1 import common_pb2

    def corpus(folder, quick):
        folder.mkdir(parents=True, exist_ok=True)
        video = samples.make_video(folder / "talk0.mp4", seed=0, speech="one clip")
        return [(video, common_pb2.VideoMetadata(id="talk0", caption="one clip", likes=300))]

    monkeypatch.setattr(ingest, "_corpus", corpus)
    ingest_gpu.save_inputs(tmp_path / "inputs", clips=True)
    ((path, metadata),) = ingest_gpu.stack_items(tmp_path / "inputs" / "clips")
    assert path == tmp_path / "inputs" / "clips" / "talk0.mp4" and path.stat().st_size > 0
    assert (metadata.id, metadata.caption, metadata.likes) == ("talk0", "one clip", 300)
    assert media.probe(path.read_bytes()).duration > 0
