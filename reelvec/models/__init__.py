"""Where the models live. Weights come from installed packages; `make models` (reelvec.models.prepare)
turns them into the serving formats below once. Nothing downloads at run time."""

import dataclasses
import os
from pathlib import Path

from reelvec.config import REPO_ROOT

# Triton model repository (Triton tutorials layout): <name>/config.pbtxt + <name>/1/model.*
TRITON_REPOSITORY = Path(
    os.environ.get("REELVEC_TRITON_REPOSITORY", REPO_ROOT / "deploy" / "triton" / "model_repository")
)
VISUAL_MODEL_NAME = "efficientnet_lite0"
# the learned audio encoder: no packaged version, `reelvec train encoder --multimodal` makes them
AUDIO_MODEL_NAME = "audio_logmel"



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


# Other generated artifacts: text encoder ONNX, assembled Whisper weights.
MODELS_DIR = Path(os.environ.get("REELVEC_MODELS_DIR", REPO_ROOT / ".models"))
TEXT_MODEL_DIR = MODELS_DIR / "all-minilm-l6-v2"
WHISPER_BASE_DIR = MODELS_DIR / "whisper-base"
