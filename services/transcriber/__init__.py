"""Whisper speech-to-text (language, segments) and sentence embeddings of caption + transcript."""

import os

# By default idle OpenMP workers of CTranslate2 and onnxruntime spin, stealing the cores that the
# other runtime, a second request or a neighbouring service needs (docs/transcriber.md has numbers).
# It must be set before either library loads, hence here, ahead of every submodule.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
