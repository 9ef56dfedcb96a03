"""The Triton model repository one stack serves: `<data-dir>/triton/models`.

The prepared repository (reelvec.models.triton_repository(), version 1 written by `make models`)
stays read-only; each stack serves its own copy, so versions trained on a user's videos (`reelvec train
encoder`) live with that user's data and never in the source tree. Configs (configs/ too) are
copied again at every start (a new release may change them); packaged versions are symlinks;
trained versions are real folders next to them, whose Python backend (model.py) is refreshed too.
"""

import filecmp
import shutil
from pathlib import Path

from reelvec.models import TRITON_TEMPLATES, VISUAL_MODEL_NAME

# the Python backend every version runs, trained ones too (they are served by their own copy)
PYTHON_BACKEND = TRITON_TEMPLATES / VISUAL_MODEL_NAME / "1" / "model.py"


def assemble(source: Path, target: Path) -> Path:
    for model in sorted(p for p in Path(source).iterdir() if (p / "config.pbtxt").exists()):
        served = Path(target) / model.name
        served.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model / "config.pbtxt", served / "config.pbtxt")
        if (model / "configs").is_dir():  # the device configs `--model-config-name` picks (python_gpu)
            shutil.copytree(model / "configs", served / "configs", dirs_exist_ok=True)
        for version in model.iterdir():
            link = served / version.name
            if not version.name.isdigit():
                continue
            if link.is_symlink() and link.resolve() != version.resolve():
                link.unlink()  # the prepared repository moved (another models dir): follow it
            if not link.exists():
                link.symlink_to(version.resolve(), target_is_directory=True)
    # a trained version keeps the backend it was exported with: give it this release's, as its
    # configs (a GPU config's runtime needs the backend that knows it)
    for backend in Path(target).glob("*/*/model.py"):
        if backend.parent.name.isdigit() and not backend.parent.is_symlink() and not filecmp.cmp(backend, PYTHON_BACKEND, shallow=False):
            shutil.copyfile(PYTHON_BACKEND, backend)
    # ... and the visual config names a descriptor output that versions trained before it lack:
    # they get the head (a minute each, once)
    for trained in _numbered(target, VISUAL_MODEL_NAME):
        if not trained.is_symlink() and (trained / "model.onnx").exists():
            from reelvec.models import visual

            visual.add_descriptor_head(trained / "model.onnx")
    return Path(target)


def _numbered(repository: Path, model: str) -> list[Path]:
    folder = Path(repository) / model
    return [p for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []


def served_models(repository: Path) -> tuple[str, ...]:
    """Models with a config and at least one version: what Triton loads at start."""
    return tuple(sorted(
        p.name for p in Path(repository).iterdir()
        if (p / "config.pbtxt").exists() and any((v / "model.onnx").exists() for v in _numbered(repository, p.name))
    ))


def next_version(repository: Path, model: str) -> int:
    return max((int(p.name) for p in _numbered(repository, model)), default=0) + 1


def prune(repository: Path, model: str, keep: set[int]) -> list[int]:
    """Deletes trained versions not in `keep` (packaged ones, being links, stay); Triton stops
    serving them at the model's next load."""
    removed = []
    for path in _numbered(repository, model):
        if not path.is_symlink() and int(path.name) not in keep:
            shutil.rmtree(path)
            removed.append(int(path.name))
    return sorted(removed)
