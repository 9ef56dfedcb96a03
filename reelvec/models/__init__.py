"""Where the models live. Weights come from installed packages; `make models` (reelvec.models.prepare)
turns them into the serving formats under config.models_dir() once. Nothing downloads at run time."""

import dataclasses
import importlib.util
import sys
import types
from pathlib import Path

from reelvec import config

# The Triton repository's committed parts (Triton tutorials layout: <name>/config.pbtxt,
# <name>/1/model.py), shipped inside the package; `make models` copies them beside the ONNX it writes.
TRITON_TEMPLATES = Path(__file__).resolve().parent / "triton"
VISUAL_MODEL_NAME = "efficientnet_lite0"
# the learned audio encoder: no packaged version, `reelvec train encoder --multimodal` makes them
AUDIO_MODEL_NAME = "audio_logmel"
# Tensor names, as the exports write them and the Triton configs and the encoder ask for them
VISUAL_INPUT, VISUAL_EMBEDDING, VISUAL_DESCRIPTOR = "frames", "embedding", "descriptor"
VISUAL_DESCRIPTOR_HEAD = "descriptor_head"  # int64 [batch, 1]: every row the head's id (Whitening.head_id)
AUDIO_INPUT, AUDIO_EMBEDDING = "logmel", "embedding"


def python_backend(utils: types.ModuleType | None = None) -> types.ModuleType:
    """The Triton Python backend's model.py as a module outside Triton (benchmarks, tests): `utils`
    stands in for the stub's triton_python_backend_utils, an empty module where only its runtimes
    are built."""
    name = "triton_python_backend_utils"
    spec = importlib.util.spec_from_file_location("reelvec_python_backend", TRITON_TEMPLATES / VISUAL_MODEL_NAME / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = utils or types.ModuleType(name)
    try:
        spec.loader.exec_module(module)
    finally:
        if previous is None:
            del sys.modules[name]
        else:
            sys.modules[name] = previous
    return module


def triton_repository() -> Path:
    """The prepared Triton model repository: templates plus version 1 of the visual model."""
    return config.models_dir() / "triton"


def text_model_dir() -> Path:
    return config.models_dir() / "all-minilm-l6-v2"


def whisper_base_dir() -> Path:
    return config.models_dir() / "whisper-base"


@dataclasses.dataclass(frozen=True)
class ModelVersion:
    """A model as stored vectors name it in their payload: "efficientnet_lite0:2" (name:version);
    the hand-made audio statistics are a name alone."""

    name: str
    version: str = ""

    @classmethod
    def parse(cls, text: str) -> "ModelVersion":
        name, colon, version = text.rpartition(":")
        return cls(name, version) if colon else cls(text)

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" if self.version else self.name
