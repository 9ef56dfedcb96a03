"""Sentence embeddings served from the exported ONNX graph: `tokenizers` + onnxruntime, no torch."""

from pathlib import Path

import numpy as np
import onnxruntime

from reelvec.models import text


class TextEmbedder:
    version = text.VERSION

    def __init__(self, directory: Path, device: str = "cpu", threads: int = 0):
        model = directory / text.ONNX_NAME
        if not model.exists():
            raise FileNotFoundError(f"{model} is missing: run `make models`")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's default, one per physical core
        # idle threads sleep instead of spinning on the cores Whisper and the other services need
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        wanted = ["CUDAExecutionProvider"] if device == "cuda" else []
        available = onnxruntime.get_available_providers()
        providers = [p for p in wanted if p in available] + ["CPUExecutionProvider"]
        self.session = onnxruntime.InferenceSession(str(model), options, providers=providers)
        self.tokenizer = text.tokenizer_for_serving(directory / text.TOKENIZER_NAME)

    def embed(self, texts: list[str]) -> np.ndarray:
        """[len(texts), 384] float32 unit vectors."""
        encoded = self.tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        return self.session.run([text.OUTPUT], feeds)[0]
