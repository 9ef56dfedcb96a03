"""The learned audio encoder (issue 4 item 2; `reelvec train encoder --multimodal`) behind the same
two backends as the visual model: log-mel windows (audio_features.logmel_windows) in, AUDIO_DIM
rows out, pooled like frames. It takes the audio slot of the hand-made statistics, which stay the
default until a collection pins a learned version (docs/versions.md)."""

from reelvec.modalities import AUDIO_DIM
from services.encoder.visual import OnnxVisual, TritonVisual


class TritonAudio(TritonVisual):
    INPUT, DATATYPE, OUTPUT, DIM = "logmel", "FP32", "embedding", AUDIO_DIM


class OnnxAudio(OnnxVisual):
    INPUT, OUTPUT, DIM = "logmel", "embedding", AUDIO_DIM
