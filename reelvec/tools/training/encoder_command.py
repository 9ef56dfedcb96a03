"""`reelvec train encoder [--multimodal]`: SimCLR on the stack's own videos, new Triton versions,
a re-embed.

Runs where the stack's data directory is (training needs PyTorch, which the serving processes do
not load): it reads the kept uploads in `<data-dir>/media` (or the files given), writes the new
version into the stack's model repository `<data-dir>/triton/models`, asks the running Triton
(address from `<data-dir>/stack.json`) to load it, and asks the gateway to re-embed the corpus with
it. Versions no collection uses any more are deleted once the alias has moved.
"""

import time
from pathlib import Path

import tritonclient.grpc as grpcclient

from reelvec import model_repository
from reelvec.models import AUDIO_MODEL_NAME, VISUAL_MODEL_NAME
from reelvec.tools.training import simclr, stack


def corpus(data_dir: Path, files: list[Path]) -> list[Path]:
    if files:
        return files
    media = sorted(p for p in (data_dir / "media").glob("??/*") if not p.name.startswith("."))
    if not media:
        raise ValueError(f"no kept uploads under {data_dir / 'media'}: index videos first or give files")
    return media


def load(address: str, model: str, version: int, timeout: float = 300.0) -> None:
    """Explicit model control: loading the model again re-reads its versions; the running ones
    keep serving while the new one loads. A model Triton has not seen yet loads the same way."""
    client = grpcclient.InferenceServerClient(address)
    try:
        client.load_model(model, client_timeout=timeout)
        deadline = time.monotonic() + timeout
        while not client.is_model_ready(model, str(version), client_timeout=stack.CALL_TIMEOUT):
            if time.monotonic() > deadline:
                raise TimeoutError(f"Triton did not serve {model} version {version} in {timeout:g}s")
            time.sleep(stack.POLL_SECONDS)
    finally:
        client.close()


def train(stub, data_dir: Path, files: list[Path], steps: int, batch_videos: int, lr: float,
          reembed: bool = True, progress=None, multimodal: bool = False) -> dict:
    """SimCLR on the visual encoder; with `multimodal`, the audio encoder trained with it."""
    data_dir = Path(data_dir)
    address = stack.address(data_dir, "triton")
    paths = corpus(data_dir, files)
    repository = data_dir / "triton" / "models"
    started = time.monotonic()
    versions = {VISUAL_MODEL_NAME: model_repository.next_version(repository, VISUAL_MODEL_NAME)}
    if multimodal:
        from reelvec.tools.training import multimodal as joint

        result = joint.train(paths, steps=steps, batch_videos=batch_videos, lr=lr)
        versions[AUDIO_MODEL_NAME] = model_repository.next_version(repository, AUDIO_MODEL_NAME)
        joint.export(result, repository, versions[VISUAL_MODEL_NAME], versions[AUDIO_MODEL_NAME])
    else:
        result = simclr.train(paths, steps=steps, batch_videos=batch_videos, lr=lr)
        simclr.export(result, repository, versions[VISUAL_MODEL_NAME])
    for model, version in versions.items():
        load(address, model, version)
    report = {
        "videos": len(paths),
        "steps": steps,
        "loss_first": result.losses[0],
        "loss_last": result.losses[-1],
        "train_seconds": round(time.monotonic() - started, 1),
        "visual_version": versions[VISUAL_MODEL_NAME],
    }
    if multimodal:
        report.update(audio_version=versions[AUDIO_MODEL_NAME], cross_modal_loss_first=result.cross_losses[0],
                      cross_modal_loss_last=result.cross_losses[-1])
    if not reembed:
        return report
    report.update(stack.reembed(stub, progress, **{
        "visual_version": str(versions[VISUAL_MODEL_NAME]),
        "audio_version": str(versions.get(AUDIO_MODEL_NAME, "")),
    }))
    if report["reembed"] == "DONE":  # the old versions' collection is gone: so may their models be
        report["removed_versions"] = {}
        for model, version in versions.items():
            removed = model_repository.prune(repository, model, keep={version})
            report["removed_versions"][model] = removed
            if removed:
                load(address, model, version)
    return report
