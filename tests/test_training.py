"""SimCLR fine-tuning of the visual encoder, tiny settings: the loss falls, and the
exported version is served by the same running Triton after a load, with different vectors."""

import asyncio
import shutil

import numpy as np
import pytest

from reelvec import samples, triton
from reelvec.modalities import FRAME_DIM
from reelvec.models import VISUAL_MODEL_NAME, triton_repository
from reelvec.tools import launcher
from reelvec.tools.training import simclr
from services.encoder.models import VISUAL, TritonModel


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("simclr")
    return [samples.make_video(folder / f"v{i}.mp4", seed=i, seconds=3, audio=False) for i in range(5)]


@pytest.fixture(scope="module")
def trained(clips):
    return simclr.train(clips, steps=8, batch_videos=5, lr=1e-3)


def test_simclr_lowers_the_contrastive_loss(trained):
    first, last = np.mean(trained.losses[:2]), np.mean(trained.losses[-2:])
    assert np.isfinite(trained.losses).all() and last < 0.5 * first


def test_augmented_views_keep_shape_and_range():
    import torch

    frames = torch.randint(0, 256, (3, 224, 224, 3), dtype=torch.uint8)
    views = simclr.augment(frames, torch.Generator().manual_seed(0))
    assert views.shape == (3, 224, 224, 3) and views.min() >= 0 and views.max() <= 255
    assert not torch.equal(views, frames.float())


def test_the_3d_conv_baseline_learns_and_embeds_clips(clips):
    from reelvec.tools.training import clip3d

    videos = clip3d.video_clips([c.read_bytes() for c in clips])
    assert all(v.shape[1:] == (clip3d.SIZE, clip3d.SIZE, 3) and v.dtype == np.uint8 for v in videos)
    trained = clip3d.train(videos, steps=12, batch_videos=5, lr=1e-3)
    first, last = np.mean(trained.losses[:3]), np.mean(trained.losses[-3:])
    assert np.isfinite(trained.losses).all() and last < first
    vectors = clip3d.embed(trained, videos)
    assert vectors.shape == (5, clip3d.DIM) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.abs(vectors @ vectors.T - np.eye(5)).max() > 1e-3  # not all one vector


def test_a_clip_is_augmented_the_same_way_in_every_frame():
    import torch

    from reelvec.tools.training import clip3d

    frame = torch.randint(0, 256, (1, 1, 32, 32, 3)).float()
    clip = frame.repeat(1, clip3d.WINDOW, 1, 1, 1)  # a still picture
    views = clip3d.augment(clip, torch.Generator().manual_seed(3))
    assert views.shape == clip.shape and not torch.equal(views, clip)
    assert torch.allclose(views[0], views[0, :1].expand_as(views[0]))  # still a still picture


@pytest.mark.integration
def test_the_new_version_is_served_without_restarting_triton(trained, clips, tmp_path):
    repository = tmp_path / "repository"
    shutil.copytree(triton_repository() / VISUAL_MODEL_NAME, repository / VISUAL_MODEL_NAME,
                    ignore=shutil.ignore_patterns("*.partial", "__pycache__"))
    ports = [launcher.free_port() for _ in range(3)]
    argv, env = triton.command(repository, tmp_path / "work", *ports)
    process = triton.start(argv, env, tmp_path / "triton.log")
    frames = simclr.video_frames(clips[:2], per_video=4)[0]

    async def embed_before_and_after():
        url = f"127.0.0.1:{ports[0]}"
        visual = TritonModel(VISUAL, "", url, timeout=60)
        await visual.load(120)
        (before, *_), name_before = await visual.predict(frames), visual.name
        simclr.export(trained, repository, version=2)
        await visual.client.load_model(VISUAL_MODEL_NAME)  # explicit mode: re-reads the versions
        await visual.load(120)
        (after, described, _), name_after = await visual.predict(frames), visual.name
        await visual.close()
        return before, name_before, after, name_after, described

    try:
        triton.wait_ready(f"127.0.0.1:{ports[0]}", timeout=120, process=process)
        before, name_before, after, name_after, described = asyncio.run(embed_before_and_after())
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert (name_before, name_after) == (f"{VISUAL_MODEL_NAME}:1", f"{VISUAL_MODEL_NAME}:2")
    assert after.shape == before.shape and np.isfinite(after).all()
    cosines = (before * after).sum(1) / np.linalg.norm(before, axis=1) / np.linalg.norm(after, axis=1)
    assert cosines.max() < 0.999  # fine-tuning changed every frame's vector
    # the new version carries a descriptor head whitened on its own features
    assert described.shape == (len(frames), FRAME_DIM) and np.allclose(np.linalg.norm(described, axis=1), 1, atol=1e-4)


def test_multimodal_training_aligns_audio_with_pictures_and_exports_it(tmp_path):
    import onnxruntime as ort

    from reelvec.models import AUDIO_MODEL_NAME
    from reelvec.tools.training import multimodal

    tones = [samples.make_video(tmp_path / f"t{i}.mp4", seed=20 + i, seconds=3, tone_hz=200.0 * (i + 1))
             for i in range(5)]
    trained = multimodal.train(tones, steps=10, batch_videos=5, lr=1e-3)
    assert np.isfinite(trained.losses).all()
    assert np.mean(trained.cross_losses[-3:]) < np.mean(trained.cross_losses[:3])  # the two views align
    path = multimodal.export_audio(trained.audio, tmp_path / "repository", version=1)
    assert path == tmp_path / "repository" / AUDIO_MODEL_NAME / "1" / "model.onnx"
    assert (path.parent / "model.py").exists() and (path.parent.parent / "config.pbtxt").exists()
    windows = multimodal.videos(tones[:2])[0].logmel
    out = ort.InferenceSession(str(path)).run(None, {"logmel": windows})[0]
    assert out.shape == (len(windows), 195) and np.isfinite(out).all()
    with pytest.raises(ValueError, match="with sound"):
        multimodal.videos([samples.make_video(tmp_path / f"s{i}.mp4", seed=i, seconds=2, audio=False) for i in range(3)])
