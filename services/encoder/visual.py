"""Frame embeddings from EfficientNet-Lite0, behind one small interface with two backends:

- TritonVisual (the default): the model served by Triton, over gRPC, every call with a deadline.
  Requests larger than the model's max_batch_size are split; Triton's dynamic batcher merges the
  frames of concurrent clips.
- OnnxVisual (`visual_backend=onnxruntime`): the same model.onnx in this process, for machines where
  Triton cannot run.

Both take uint8 [n, 224, 224, 3] RGB and return raw [n, 1280] features; `pool` makes the clip vector.
"""

import asyncio
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from reelvec import errors
from reelvec.modalities import VISUAL_DIM
from reelvec.models import ModelVersion
from reelvec.server import caller_deadline
from reelvec.vectors import unit

INPUT = "frames"
OUTPUT = "embedding"


def pool(embeddings: np.ndarray) -> np.ndarray:
    """Clip vector: the mean of the frame embeddings, L2-normalized."""
    return unit(embeddings.astype(np.float64).mean(axis=0)).astype(np.float32)


def _check(embeddings: np.ndarray, count: int, dim: int) -> np.ndarray:
    if embeddings.shape != (count, dim) or not np.isfinite(embeddings).all():
        raise errors.ReelvecError(
            f"model returned {embeddings.shape} (all finite: {np.isfinite(embeddings).all()}), "
            f"expected ({count}, {dim})"
        )
    return embeddings


class TritonVisual:
    # the tensor it sends and the rows it expects back; services/encoder/learned_audio.py has others
    INPUT, DATATYPE, OUTPUT, DIM = INPUT, "UINT8", OUTPUT, VISUAL_DIM

    def __init__(self, url: str, model: str, version: str = "", timeout: float = 30.0):
        self.url, self.model, self.version, self.timeout = url, model, version, timeout
        self.client = grpcclient.InferenceServerClient(url)
        self.max_batch = 0
        self.name = str(ModelVersion(model, version or "?"))

    async def ready(self, timeout: float) -> None:
        """Waits until Triton serves the model, then learns its version and batch limit."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            try:
                if await self.client.is_model_ready(self.model, self.version, client_timeout=5):
                    break
                last = "model not ready"
            except InferenceServerException as exc:
                last = exc.message()
            if time.monotonic() > deadline:
                raise errors.Unavailable(f"triton at {self.url} not serving {self.model}: {last}")
            await asyncio.sleep(0.5)
        config = (await self.client.get_model_config(self.model, self.version, as_json=True))["config"]
        self.max_batch = int(config.get("max_batch_size", 0))
        metadata = await self.client.get_model_metadata(self.model, self.version, as_json=True)
        self.name = str(ModelVersion(self.model, self.version or max(metadata["versions"], key=int)))

    async def _infer(self, frames: np.ndarray) -> np.ndarray:
        tensor = grpcclient.InferInput(self.INPUT, list(frames.shape), self.DATATYPE)
        tensor.set_data_from_numpy(frames)
        deadline = caller_deadline.get()
        timeout = self.timeout if deadline is None else max(0.001, min(self.timeout, deadline - time.monotonic()))
        try:
            result = await self.client.infer(
                self.model, [tensor], model_version=self.version,
                outputs=[grpcclient.InferRequestedOutput(self.OUTPUT)], client_timeout=timeout,
                timeout=int(timeout * 1e6),  # Triton's queue policy drops it once the caller is gone
            )
        except InferenceServerException as exc:
            status = (exc.status() or "").removeprefix("StatusCode.")
            if "queue" in exc.message().lower():  # full, or timed out waiting: back off and retry
                raise errors.ResourceExhausted(f"triton at {self.url} is overloaded: {exc.message()}") from None
            raise errors.Unavailable(f"triton at {self.url} failed ({status}): {exc.message()}") from None
        return result.as_numpy(self.OUTPUT)

    async def embed(self, frames: np.ndarray) -> np.ndarray:
        size = self.max_batch or len(frames)
        parts = [frames[i : i + size] for i in range(0, len(frames), size)]
        embeddings = np.concatenate(await asyncio.gather(*(self._infer(p) for p in parts)))
        return _check(embeddings, len(frames), self.DIM)

    async def close(self) -> None:
        await self.client.close()


class OnnxVisual:
    INPUT, OUTPUT, DIM = INPUT, OUTPUT, VISUAL_DIM

    def __init__(self, repository: Path, model: str, version: str = "", threads: int = 0):
        folder = Path(repository) / model
        if not version:
            numbered = [p.name for p in folder.glob("*") if p.name.isdigit() and (p / "model.onnx").exists()]
            if not numbered:
                raise FileNotFoundError(f"no {folder}/<version>/model.onnx: run `make models`")
            version = max(numbered, key=int)
        if not (folder / version / "model.onnx").exists():
            raise FileNotFoundError(f"no {folder / version / 'model.onnx'}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        # no busy-waiting between runs: the decoding threads need those cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(folder / version / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.name = str(ModelVersion(model, version))
        self._lock = asyncio.Lock()  # one run at a time uses every intra-op thread; more would thrash

    async def ready(self, timeout: float) -> None:
        return None

    async def embed(self, frames: np.ndarray) -> np.ndarray:
        async with self._lock:
            embeddings = await asyncio.to_thread(self.session.run, [self.OUTPUT], {self.INPUT: frames})
        return _check(embeddings[0], len(frames), self.DIM)

    async def close(self) -> None:
        return None
