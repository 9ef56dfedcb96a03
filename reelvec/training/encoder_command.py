"""`reelvec train encoder`: SimCLR on the stack's own videos, a new Triton version, a re-embed.

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
from reelvec.models import VISUAL_MODEL_NAME
from reelvec.training import simclr, stack


def corpus(data_dir: Path, files: list[Path]) -> list[Path]:
    if files:
        return files
    media = sorted(p for p in (data_dir / "media").glob("??/*") if not p.name.startswith("."))
    if not media:
        raise ValueError(f"no kept uploads under {data_dir / 'media'}: index videos first or give files")
    return media


def load(address: str, version: int, timeout: float = 300.0) -> None:
    """Explicit model control: loading the model again re-reads its versions; the running ones
    keep serving while the new one loads."""
    client = grpcclient.InferenceServerClient(address)
    try:
        client.load_model(VISUAL_MODEL_NAME, client_timeout=timeout)
        deadline = time.monotonic() + timeout
        while not client.is_model_ready(VISUAL_MODEL_NAME, str(version), client_timeout=stack.CALL_TIMEOUT):
            if time.monotonic() > deadline:
                raise TimeoutError(f"Triton did not serve {VISUAL_MODEL_NAME} version {version} in {timeout:g}s")
            time.sleep(stack.POLL_SECONDS)
    finally:
        client.close()


def train(stub, data_dir: Path, files: list[Path], steps: int, batch_videos: int, lr: float,
          reembed: bool = True, progress=None) -> dict:
    data_dir = Path(data_dir)
    address = stack.address(data_dir, "triton")
    paths = corpus(data_dir, files)
    started = time.monotonic()
    result = simclr.train(paths, steps=steps, batch_videos=batch_videos, lr=lr)
    repository = data_dir / "triton" / "models"
    version = model_repository.next_version(repository, VISUAL_MODEL_NAME)
    simclr.export(result, repository, version)
    load(address, version)
    report = {
        "videos": len(paths),
        "steps": steps,
        "loss_first": result.losses[0],
        "loss_last": result.losses[-1],
        "train_seconds": round(time.monotonic() - started, 1),
        "visual_version": version,
    }
    if not reembed:
        return report
    report.update(stack.reembed(stub, progress, visual_version=str(version)))
    if report["reembed"] == "DONE":  # the old version's collection is gone: so may its model be
        report["removed_versions"] = model_repository.prune(repository, VISUAL_MODEL_NAME, keep={version})
        if report["removed_versions"]:
            load(address, version)
    return report
