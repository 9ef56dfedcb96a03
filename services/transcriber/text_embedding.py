"""Sentence embeddings served from the exported ONNX graph: `tokenizers` + onnxruntime, no torch."""

import asyncio
from pathlib import Path

import numpy as np
import onnxruntime

from reelvec.models import base, text


class TextEmbedder(base.Model):
    """predict: a list of texts in, [len(texts), 384] float32 unit vectors out."""

    name = text.VERSION

    def __init__(self, directory: Path, device: str = "cpu", threads: int = 0):
        self.directory, self.device, self.threads = Path(directory), device, threads
        self.session: onnxruntime.InferenceSession | None = None

    async def load(self, timeout: float = 0.0) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        model = self.directory / text.ONNX_NAME
        if not model.exists():
            raise FileNotFoundError(f"{model} is missing: run `make models`")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads  # 0: onnxruntime's default, one per physical core
        # idle threads sleep instead of spinning on the cores Whisper and the other services need
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        wanted = ["CUDAExecutionProvider"] if self.device == "cuda" else []
        available = onnxruntime.get_available_providers()
        providers = [p for p in wanted if p in available] + ["CPUExecutionProvider"]
        self.tokenizer = text.tokenizer_for_serving(self.directory / text.TOKENIZER_NAME)
        self.session = onnxruntime.InferenceSession(str(model), options, providers=providers)

    async def predict(self, batch: list[str]) -> np.ndarray:
        return await asyncio.to_thread(self.embed, batch)

    def embed(self, texts: list[str]) -> np.ndarray:
        """predict's work, in the calling thread."""
        encoded = self.tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        return self.session.run([text.OUTPUT], feeds)[0]
