"""Multimodal SimCLR (the seed thesis's audio-visual variant): the visual encoder
and a learned audio encoder trained together, so that the two embeddings of one video align.

- Visual: the packaged EfficientNet-Lite0, fine-tuned as in simclr.py (two augmented frames of a
  video are positives), with its projection head.
- Audio: a small CNN over log-mel windows (services/encoder/audio_features.logmel_windows: 64 mel
  bands x 5 s), trained from scratch: four strided Conv2d blocks (32-64-128-256, BatchNorm, ReLU),
  global average pooling, a linear layer to AUDIO_DIM. The output keeps the audio slot's size
  (195), so fusion, the store and the regressor take it in place of the hand-made statistics.
  Augmentation: a random window of the clip, and a random stretch of time and of mel bands
  masked (SpecAugment's masks).
- Loss: the visual NT-Xent (frame view vs frame view) plus a cross-modal NT-Xent whose positives
  are a video's visual view and its audio window, over the videos of the batch that have sound.
- Export: the visual model as a new version of efficientnet_lite0, the audio model as a version of
  audio_logmel (reelvec.models.AUDIO_MODEL_NAME), both ONNX behind Triton's Python backend, both
  checked against PyTorch.
"""

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np

from reelvec import audio_features, media
from reelvec import frames as frame_ops
from reelvec.modalities import AUDIO_DIM
from reelvec.models import AUDIO_EMBEDDING, AUDIO_INPUT, AUDIO_MODEL_NAME, TRITON_TEMPLATES, VISUAL_MODEL_NAME
from reelvec.tools.training import simclr

MAX_BATCH = 16


@dataclasses.dataclass
class Video:
    frames: np.ndarray  # uint8 [n, 224, 224, 3]
    logmel: np.ndarray | None  # float32 [windows, N_MELS, LOGMEL_WINDOW]; None without sound


@dataclasses.dataclass
class Result:
    losses: list[float]
    model: object  # the visual encoder, as simclr.Result.model
    audio: object  # logmel [n, N_MELS, LOGMEL_WINDOW] -> [n, AUDIO_DIM]
    cross_losses: list[float]


def videos(paths: list[Path]) -> list[Video]:
    out = []
    for path in paths:
        data = Path(path).read_bytes()
        sampled = frame_ops.sample(data, simclr.FRAMES_PER_VIDEO, per_second=0)
        if len(sampled.frames) < 2:
            continue
        samples = media.decode_audio(data, audio_features.SAMPLE_RATE)
        sound = samples is not None and samples.size > 0 and float(np.abs(samples).max()) > 1e-4
        out.append(Video(sampled.frames, audio_features.logmel_windows(samples) if sound else None))
    if sum(v.logmel is not None for v in out) < 2:
        raise ValueError("multimodal training needs at least 2 videos with sound and 2 or more usable frames")
    return out


def audio_model():
    from torch import nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    class AudioEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(*block(1, 32), *block(32, 64), *block(64, 128), *block(128, 256),
                                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, AUDIO_DIM))

        def forward(self, logmel):  # [n, mels, frames]
            return self.net(logmel.unsqueeze(1))

    return AudioEncoder()


def _mask(windows, rng: np.random.Generator):
    """SpecAugment's time and frequency masks, filled with the floor (-1)."""
    out = windows.clone()
    for window in out:
        mels, frames = window.shape
        t, f = int(rng.integers(0, frames // 5)), int(rng.integers(0, mels // 8))
        t0, f0 = int(rng.integers(0, frames - t + 1)), int(rng.integers(0, mels - f + 1))
        window[:, t0 : t0 + t] = -1.0
        window[f0 : f0 + f, :] = -1.0
    return out


def train(paths: list[Path], steps: int = 100, batch_videos: int = 16, lr: float = 1e-4, audio_lr: float = 1e-3,
          seed: int = 0, device: str = "") -> Result:
    import torch

    from reelvec.models import visual

    device, generator, rng = simclr.seeded(seed, device)
    data = videos(paths)
    frames = [v.frames for v in data]
    encoder, sound = visual.eager_model().to(device), audio_model().to(device)
    visual_head, audio_head = simclr.projection_head(1280).to(device), simclr.projection_head(AUDIO_DIM).to(device)
    optimizer = torch.optim.AdamW([
        {"params": [*encoder.parameters(), *visual_head.parameters()], "lr": lr},
        {"params": [*sound.parameters(), *audio_head.parameters()], "lr": audio_lr},
    ], weight_decay=1e-4)
    encoder.train()
    sound.train()
    losses, cross_losses = [], []
    for _ in range(steps):
        chosen = rng.choice(len(data), size=min(batch_videos, len(data)), replace=False)
        z1, z2 = (visual_head(encoder(v)) for v in simclr.frame_views(frames, chosen, rng, generator, device))
        loss = simclr.nt_xent(z1, z2)
        heard = [i for i, c in enumerate(chosen) if data[c].logmel is not None]
        cross = torch.zeros(())
        if len(heard) >= 2:
            windows = torch.from_numpy(np.stack([
                data[chosen[i]].logmel[rng.integers(len(data[chosen[i]].logmel))] for i in heard
            ]))
            za = audio_head(sound(_mask(windows, rng).to(device)))
            cross = simclr.nt_xent(z1[heard], za)
            loss = loss + cross
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        cross_losses.append(float(cross))
    return Result(losses, encoder.cpu().eval(), sound.cpu().eval(), cross_losses)


AUDIO_CONFIG = f"""# Written by reelvec/tools/training/multimodal.py: the learned audio encoder.
# Same Python backend as efficientnet_lite0 (<version>/model.py runs <version>/model.onnx).
name: "{AUDIO_MODEL_NAME}"
backend: "python"
version_policy: {{ all {{ }} }}
max_batch_size: {MAX_BATCH}
input [
  {{
    name: "{AUDIO_INPUT}"
    data_type: TYPE_FP32
    dims: [ {audio_features.N_MELS}, {audio_features.LOGMEL_WINDOW} ]
  }}
]
output [
  {{
    name: "{AUDIO_EMBEDDING}"
    data_type: TYPE_FP32
    dims: [ {AUDIO_DIM} ]
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: 2000
}}
instance_group [
  {{
    count: 1
    kind: KIND_CPU
  }}
]
"""


def export_audio(model, repository: Path, version: int) -> Path:
    """`<repository>/audio_logmel/<version>/model.onnx`, checked against PyTorch, with the config
    and the Python backend's model.py (the packaged one, which reads tensor names from the config)."""
    import onnxruntime as ort
    import torch

    folder = Path(repository) / AUDIO_MODEL_NAME
    target = folder / str(version) / "model.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not (folder / "config.pbtxt").exists():
        (folder / "config.pbtxt").write_text(AUDIO_CONFIG)
    shutil.copyfile(TRITON_TEMPLATES / VISUAL_MODEL_NAME / "1" / "model.py", target.parent / "model.py")
    example = -torch.rand(3, audio_features.N_MELS, audio_features.LOGMEL_WINDOW)
    partial = target.with_suffix(".onnx.partial")
    model.eval()
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(partial), input_names=[AUDIO_INPUT], output_names=[AUDIO_EMBEDDING],
                          dynamic_axes={AUDIO_INPUT: {0: "batch"}, AUDIO_EMBEDDING: {0: "batch"}}, opset_version=17,
                          dynamo=False)
        expected = model(example).numpy()
    got = ort.InferenceSession(str(partial), providers=["CPUExecutionProvider"]).run(
        [AUDIO_EMBEDDING], {AUDIO_INPUT: example.numpy()})[0]
    if not np.allclose(got, expected, atol=1e-4):
        raise RuntimeError(f"the audio model's ONNX differs from PyTorch by {np.abs(got - expected).max():g}")
    os.replace(partial, target)
    return target


def export(result: Result, repository: Path, visual_version: int, audio_version: int) -> tuple[Path, Path]:
    visual_path = simclr.export(simclr.Result(result.losses, result.model), repository, visual_version)
    return visual_path, export_audio(result.audio, repository, audio_version)

