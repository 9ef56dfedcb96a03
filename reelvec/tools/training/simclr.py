"""SimCLR fine-tuning of the served visual encoder on the user's own videos (the seed
studies' best TikTok embeddings came from SimCLR).

Positives are two views of the same video: two different sampled frames (a temporal shift), each
randomly cropped and resized, maybe flipped, colour-jittered and blurred. Every other view in the
batch is a negative. NT-Xent loss on a projection head (1280 -> 512 -> 128) that is dropped after
training: the served vector stays the backbone's 1280-d pooled features, so the rest of reelvec is
unchanged. Runs on CPU for small corpora and on CUDA when present.

Augmentations are written with plain torch ops on uint8 NHWC frames, the encoder's own input, so
no torchvision is needed.
"""

import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np

from reelvec import frames as frame_ops
from reelvec import model_repository
from reelvec.models import VISUAL_MODEL_NAME, visual

FRAMES_PER_VIDEO = 8
TEMPERATURE = 0.2
PROJECTION = (512, 128)


@dataclasses.dataclass
class Result:
    losses: list[float]  # per step
    model: object  # the fine-tuned visual.eager_model()-shaped module (frames -> 1280)


def video_frames(paths: list[Path], per_video: int = FRAMES_PER_VIDEO) -> list[np.ndarray]:
    """The encoder's own sampling (black frames skipped), per video: uint8 [n, 224, 224, 3]."""
    out = []
    for path in paths:
        sampled = frame_ops.sample(Path(path).read_bytes(), per_video, per_second=0)
        if len(sampled.frames) >= 2:
            out.append(sampled.frames)
    if len(out) < 2:
        raise ValueError("SimCLR needs at least 2 videos with 2 or more usable frames")
    return out


def augment(batch, generator):
    """uint8 NHWC -> float NHWC in [0, 255]: crop (8-100% area) resized back, flip, jitter, blur."""
    import torch
    import torch.nn.functional as F

    n, h, w, _ = batch.shape
    x = batch.permute(0, 3, 1, 2).float()
    views = []
    for i in range(n):
        area = float(torch.empty(1).uniform_(0.08, 1.0, generator=generator))
        ratio = float(torch.exp(torch.empty(1).uniform_(np.log(3 / 4), np.log(4 / 3), generator=generator)))
        ch = max(8, min(h, int(round((area * h * w / ratio) ** 0.5))))
        cw = max(8, min(w, int(round((area * h * w * ratio) ** 0.5))))
        top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
        view = F.interpolate(x[i : i + 1, :, top : top + ch, left : left + cw], size=(h, w),
                             mode="bilinear", align_corners=False)
        if float(torch.rand(1, generator=generator)) < 0.5:
            view = view.flip(-1)
        brightness, contrast, saturation = (1 + 0.4 * (2 * torch.rand(3, generator=generator) - 1)).tolist()
        mean = view.mean(dim=(1, 2, 3), keepdim=True)
        grey = view.mean(dim=1, keepdim=True)
        view = (view * saturation + grey * (1 - saturation))
        view = ((view - mean) * contrast + mean) * brightness
        if float(torch.rand(1, generator=generator)) < 0.5:
            view = F.avg_pool2d(F.pad(view, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
        views.append(view.clamp(0, 255))
    return torch.cat(views).permute(0, 2, 3, 1)


def nt_xent(z1, z2, temperature: float = TEMPERATURE):
    """The normalized-temperature cross-entropy of SimCLR over 2n views."""
    import torch
    import torch.nn.functional as F

    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sims = z @ z.T / temperature
    sims.fill_diagonal_(float("-inf"))
    n = len(z1)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sims, targets)


def seeded(seed: int, device: str) -> tuple[str, object, np.random.Generator]:
    """The device (CUDA when present), a torch generator for augmentations and a numpy one for
    sampling, everything seeded: the training commands' common start."""
    import torch

    torch.manual_seed(seed)
    return device or ("cuda" if torch.cuda.is_available() else "cpu"), torch.Generator().manual_seed(seed), \
        np.random.default_rng(seed)


def projection_head(width: int):
    from torch import nn

    return nn.Sequential(nn.Linear(width, PROJECTION[0]), nn.ReLU(), nn.Linear(*PROJECTION))


def frame_views(clips: list[np.ndarray], chosen, rng: np.random.Generator, generator, device: str) -> list:
    """Two augmented views per chosen video, from two different frames of it (the temporal shift)."""
    import torch

    pairs = [(clips[c][a], clips[c][b]) for c in chosen for a, b in [rng.choice(len(clips[c]), size=2, replace=False)]]
    return [augment(torch.from_numpy(np.stack(side)), generator).to(device) for side in zip(*pairs)]


def train(paths: list[Path], steps: int = 100, batch_videos: int = 16, lr: float = 1e-4,
          seed: int = 0, device: str = "") -> Result:
    """Fine-tunes the packaged EfficientNet-Lite0 with SimCLR on frames of `paths`."""
    import torch

    device, generator, rng = seeded(seed, device)
    clips = video_frames(paths)
    model = visual.eager_model().to(device)
    head = projection_head(1280).to(device)
    optimizer = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=lr, weight_decay=1e-4)
    model.train()
    losses = []
    for _ in range(steps):
        chosen = rng.choice(len(clips), size=min(batch_videos, len(clips)), replace=False)
        views = frame_views(clips, chosen, rng, generator, device)
        z1, z2 = (head(model(v)) for v in views)  # the model's first step casts to float anyway
        loss = nt_xent(z1, z2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return Result(losses, model.cpu().eval())


def export(result: Result, repository: Path, version: int) -> Path:
    """Writes the fine-tuned encoder as `<repository>/<model>/<version>/model.onnx`: the same
    inputs and outputs as version 1, so Triton serves it with the same config (a running Triton in
    explicit model-control mode picks it up on its next load_model, without a restart)."""
    import torch

    folder = Path(repository) / VISUAL_MODEL_NAME
    target = folder / str(version) / "model.onnx"
    # the CPU config's Python backend runs <version>/model.py: the new version gets this release's
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_repository.PYTHON_BACKEND, target.parent / "model.py")
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in result.model.parameters())).hexdigest()
    with torch.no_grad():
        visual.write_onnx(result.model, target, f"{visual.RECIPE}:simclr-{digest[:16]}")
    return target
