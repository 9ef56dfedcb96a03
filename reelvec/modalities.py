"""The named vectors every stored video may carry, and their sizes."""

VISUAL = "visual"
AUDIO = "audio"
TEXT = "text"
FUSED = "fused"

VISUAL_DIM = 1280  # EfficientNet-Lite0 pooled features
AUDIO_DIM = 195  # see services/encoder/audio_features.py for the layout
TEXT_DIM = 384  # all-MiniLM-L6-v2

SOURCES = {VISUAL: VISUAL_DIM, AUDIO: AUDIO_DIM, TEXT: TEXT_DIM}
DIMS = {**SOURCES, FUSED: VISUAL_DIM + AUDIO_DIM + TEXT_DIM}
