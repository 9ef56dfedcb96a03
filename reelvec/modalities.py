"""The named vectors every stored video may carry, their sizes, and their names in the protos."""

from reelvec import errors
from reelvec.v1 import common_pb2

VISUAL = "visual"
AUDIO = "audio"
TEXT = "text"
FUSED = "fused"

VISUAL_DIM = 1280  # EfficientNet-Lite0 pooled features
AUDIO_DIM = 195  # see reelvec/audio_features.py for the layout
TEXT_DIM = 384  # all-MiniLM-L6-v2
# a frame descriptor for copy detection: the visual model's row whitened (docs/copies.md); stored in
# the frame index, never a video's vector
FRAME_DIM = 256

# model_versions' key for the visual model's descriptor head that made a video's frames (its id,
# docs/copies.md): frames of two heads are never compared
DESCRIPTOR = "descriptor"

SOURCES = {VISUAL: VISUAL_DIM, AUDIO: AUDIO_DIM, TEXT: TEXT_DIM}
DIMS = {**SOURCES, FUSED: VISUAL_DIM + AUDIO_DIM + TEXT_DIM}

_BY_PROTO = {
    common_pb2.MODALITY_UNSPECIFIED: FUSED,  # the default search modality
    common_pb2.MODALITY_FUSED: FUSED,
    common_pb2.MODALITY_VISUAL: VISUAL,
    common_pb2.MODALITY_AUDIO: AUDIO,
    common_pb2.MODALITY_TEXT: TEXT,
}
_TO_PROTO = {name: value for value, name in _BY_PROTO.items() if value != common_pb2.MODALITY_UNSPECIFIED}


def from_proto(value: int) -> str:
    """A request's Modality as its vector name; INVALID_ARGUMENT for a value this version lacks."""
    if value not in _BY_PROTO:
        raise errors.InvalidInput(f"unknown modality {value}: use one of {', '.join(_TO_PROTO)}")
    return _BY_PROTO[value]


def to_proto(name: str) -> int:
    """A vector name as the Modality a request carries; ValueError names the choices."""
    if name not in _TO_PROTO:
        raise ValueError(f"unknown modality {name!r}: use one of {', '.join(_TO_PROTO)}")
    return _TO_PROTO[name]
