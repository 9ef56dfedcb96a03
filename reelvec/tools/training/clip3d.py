"""The second visual baseline: a 3D-convolutional clip encoder, trained from
scratch with the same SimCLR recipe as the fine-tuned EfficientNet (reelvec/tools/training/simclr.py),
so that `reelvec evaluate` compares the two on the same videos.

The seed studies tried clip models (a ConvLSTM autoencoder, 3D convolutions) beside per-frame
CNNs. This is the 3D-conv one, small enough to train on a CPU in minutes: four Conv3d blocks
(32-64-128-256 channels, BatchNorm, ReLU), global average pooling, a 256-d clip vector. Input: 8
frames at 112x112, half the encoder's 224 sampling. Positives: two 8-frame windows of the same
video at different offsets (the temporal shift). Each window gets one random resized crop, flip
and brightness/contrast jitter, the same for all its frames, so that motion stays coherent.
Projection head 256 -> 512 -> 128 (simclr.projection_head), NT-Xent.
"""

import dataclasses

import numpy as np

from reelvec import frames as frame_ops
from reelvec.tools.training import simclr
from reelvec.vectors import unit

WINDOW = 8  # frames per clip
SIZE = 112
SAMPLED = 16  # frames sampled per video; windows are taken from these
DIM = 256


@dataclasses.dataclass
class Result:
    losses: list[float]
    model: object  # clip uint8 [n, WINDOW, SIZE, SIZE, 3] -> [n, DIM]


def video_clips(data: list[bytes]) -> list[np.ndarray]:
    """Per video: uint8 [SAMPLED or fewer, SIZE, SIZE, 3] (the encoder's sampling, halved)."""
    out = []
    for payload in data:
        sampled = frame_ops.sample(payload, SAMPLED, per_second=0).frames
        if len(sampled) == 0:
            out.append(np.zeros((1, SIZE, SIZE, 3), np.uint8))
            continue
        halved = sampled.reshape(len(sampled), SIZE, 2, SIZE, 2, 3).mean(axis=(2, 4))
        out.append(halved.astype(np.uint8))
    return out


def window(frames: np.ndarray, start: int) -> np.ndarray:
    """WINDOW frames from `start`, the last one repeated when the video has fewer."""
    index = np.minimum(np.arange(start, start + WINDOW), len(frames) - 1)
    return frames[index]


def model():
    from torch import nn

    def block(cin, cout, stride):
        return [nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU()]

    class Clip3D(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv3d(3, 32, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2), bias=False),
                nn.BatchNorm3d(32),
                nn.ReLU(),
                *block(32, 64, (1, 2, 2)),
                *block(64, 128, (2, 2, 2)),
                *block(128, DIM, (2, 2, 2)),
                nn.AdaptiveAvgPool3d(1),
                nn.Flatten(),
            )

        def forward(self, clips):  # uint8 or float [n, T, H, W, 3] in [0, 255]
            x = clips.float().permute(0, 4, 1, 2, 3) / 127.5 - 1.0
            return self.net(x)

    return Clip3D()


def augment(clips, generator):
    """float [n, T, H, W, 3] -> the same shape: one crop, flip and jitter per clip."""
    import torch
    import torch.nn.functional as F

    n, t, h, w, _ = clips.shape
    out = []
    for clip in clips:
        area = float(torch.empty(1).uniform_(0.3, 1.0, generator=generator))
        side_h, side_w = max(8, int(h * area**0.5)), max(8, int(w * area**0.5))
        top = int(torch.randint(0, h - side_h + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - side_w + 1, (1,), generator=generator))
        x = clip.permute(0, 3, 1, 2)[:, :, top : top + side_h, left : left + side_w]
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        if float(torch.rand(1, generator=generator)) < 0.5:
            x = x.flip(-1)
        brightness, contrast = (1 + 0.4 * (2 * torch.rand(2, generator=generator) - 1)).tolist()
        mean = x.mean()
        x = ((x - mean) * contrast + mean) * brightness
        out.append(x.clamp(0, 255).permute(0, 2, 3, 1))
    return torch.stack(out)


def train(clips: list[np.ndarray], steps: int = 100, batch_videos: int = 16, lr: float = 1e-3,
          seed: int = 0, device: str = "") -> Result:
    import torch

    if len(clips) < 2:
        raise ValueError("the 3D-conv encoder needs at least 2 videos")
    device, generator, rng = simclr.seeded(seed, device)
    encoder = model().to(device)
    head = simclr.projection_head(DIM).to(device)
    optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=lr, weight_decay=1e-4)
    encoder.train()
    losses = []
    for _ in range(steps):
        chosen = rng.choice(len(clips), size=min(batch_videos, len(clips)), replace=False)
        views = []
        for _view in range(2):
            starts = [int(rng.integers(0, max(1, len(clips[c]) - WINDOW + 1))) for c in chosen]
            batch = torch.from_numpy(np.stack([window(clips[c], s) for c, s in zip(chosen, starts)])).float()
            views.append(augment(batch, generator).to(device))
        loss = simclr.nt_xent(head(encoder(views[0])), head(encoder(views[1])))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return Result(losses, encoder.cpu().eval())


def embed(result: Result, clips: list[np.ndarray]) -> np.ndarray:
    """[videos, DIM]: the mean of a video's windows (start, middle, end), L2-normalized."""
    import torch

    rows = []
    with torch.no_grad():
        for frames in clips:
            starts = sorted({0, max(0, (len(frames) - WINDOW) // 2), max(0, len(frames) - WINDOW)})
            batch = torch.from_numpy(np.stack([window(frames, s) for s in starts]))
            rows.append(result.model(batch).mean(0).numpy())
    return unit(rows)
