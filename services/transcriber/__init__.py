"""Whisper speech-to-text (language, segments) and sentence embeddings of caption + transcript."""

import os

# Idle OpenMP workers of CTranslate2 and onnxruntime spin by default and steal the cores the other
# runtime (or a second request) needs: Whisper ran 3-6x faster under contention with passive waits.
# It must be set before either library loads, hence here, ahead of every submodule.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
