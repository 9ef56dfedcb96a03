"""The encoder's models behind the core's model interface (reelvec.models.base), with one factory
and one cache.

A Model is loaded (`load`: waits until it can answer, learns its version and batch limit), then
asked for rows (`predict`: a batch in, one [n, size] array per output of its kind out, every row
checked). Two kinds: the visual model (EfficientNet-Lite0: uint8 [n, 224, 224, 3] frames in; its
embedding and its whitened descriptor out) and the learned audio encoder (log-mel windows in, an
embedding out; `reelvec train encoder --multimodal`). Two backends:

- TritonModel (the default): served by Triton over gRPC, every call with a deadline. Batches larger
  than the model's max_batch_size are split; Triton's dynamic batcher merges concurrent clips'.
- OnnxModel (`visual_backend=onnxruntime`): the same model.onnx in this process, for machines
  where Triton cannot run.

`make(settings, kind, version)` builds one; ModelCache keeps the versions callers pin, each built
once under a lock, the least recently used closed past `size`.
"""

import abc
import asyncio
import collections
import contextlib
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from reelvec import errors
from reelvec.modalities import AUDIO_DIM, FRAME_DIM, VISUAL_DIM
from reelvec.models import (
    AUDIO_EMBEDDING,
    AUDIO_INPUT,
    AUDIO_MODEL_NAME,
    VISUAL_DESCRIPTOR,
    VISUAL_DESCRIPTOR_HEAD,
    VISUAL_EMBEDDING,
    VISUAL_INPUT,
    VISUAL_MODEL_NAME,
    ModelVersion,
    base,
)
from reelvec.server import caller_deadline
from reelvec.vectors import unit


@dataclasses.dataclass(frozen=True)
class Kind:
    """What a model is called in the repository, and the tensors it takes and gives."""

    name: str
    input: str
    datatype: str  # Triton's name for the input's type
    outputs: tuple[tuple[str, int], ...]  # (tensor, row size), in the order predict returns them

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.outputs]


VISUAL = Kind(VISUAL_MODEL_NAME, VISUAL_INPUT, "UINT8",
              ((VISUAL_EMBEDDING, VISUAL_DIM), (VISUAL_DESCRIPTOR, FRAME_DIM), (VISUAL_DESCRIPTOR_HEAD, 1)))
AUDIO = Kind(AUDIO_MODEL_NAME, AUDIO_INPUT, "FP32", ((AUDIO_EMBEDDING, AUDIO_DIM),))


def pool(embeddings: np.ndarray) -> np.ndarray:
    """Clip vector: the mean of the frame (or window) embeddings, L2-normalized."""
    return unit(embeddings.astype(np.float64).mean(axis=0)).astype(np.float32)


class Model(base.Model):
    """A base.Model of one Kind whose predict splits the batch at max_batch and checks every row."""

    def __init__(self, kind: Kind, version: str):
        self.kind, self.version = kind, version  # version "": the newest, learned by load()
        self.name = str(ModelVersion(kind.name, version or "?"))

    @abc.abstractmethod
    async def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        """One array per output of the kind."""

    async def predict(self, batch: np.ndarray) -> list[np.ndarray]:
        size = self.max_batch or len(batch)
        parts = [batch[i : i + size] for i in range(0, len(batch), size)]
        runs = await asyncio.gather(*(self._run(p) for p in parts))
        results = []
        for index, (output, dim) in enumerate(self.kind.outputs):
            rows = np.concatenate([run[index] for run in runs])
            if rows.shape != (len(batch), dim) or not np.isfinite(rows).all():
                raise errors.ReelvecError(f"{self.name} returned {output} {rows.shape} (all finite: "
                                          f"{np.isfinite(rows).all()}), expected ({len(batch)}, {dim})")
            results.append(rows)
        return results


class TritonModel(Model):
    def __init__(self, kind: Kind, version: str, url: str, timeout: float = 30.0):
        super().__init__(kind, version)
        self.url, self.timeout = url, timeout
        self.client = grpcclient.InferenceServerClient(url)

    async def load(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            try:
                if await self.client.is_model_ready(self.kind.name, self.version, client_timeout=5):
                    break
                last = "model not ready"
            except InferenceServerException as exc:
                last = exc.message()
            if time.monotonic() > deadline:
                raise errors.Unavailable(f"triton at {self.url} not serving {self.kind.name}: {last}")
            await asyncio.sleep(0.5)
        config = (await self.client.get_model_config(self.kind.name, self.version, as_json=True))["config"]
        self.max_batch = int(config.get("max_batch_size", 0))
        metadata = await self.client.get_model_metadata(self.kind.name, self.version, as_json=True)
        self.name = str(ModelVersion(self.kind.name, self.version or max(metadata["versions"], key=int)))

    async def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        tensor = grpcclient.InferInput(self.kind.input, list(batch.shape), self.kind.datatype)
        tensor.set_data_from_numpy(batch)
        deadline = caller_deadline.get()
        timeout = self.timeout if deadline is None else max(0.001, min(self.timeout, deadline - time.monotonic()))
        try:
            result = await self.client.infer(
                self.kind.name, [tensor], model_version=self.version,
                outputs=[grpcclient.InferRequestedOutput(name) for name in self.kind.names], client_timeout=timeout,
                timeout=int(timeout * 1e6),  # Triton's queue policy drops it once the caller is gone
            )
        except InferenceServerException as exc:
            status = (exc.status() or "").removeprefix("StatusCode.")
            if "queue" in exc.message().lower():  # full, or timed out waiting: back off and retry
                raise errors.ResourceExhausted(f"triton at {self.url} is overloaded: {exc.message()}") from None
            raise errors.Unavailable(f"triton at {self.url} failed ({status}): {exc.message()}") from None
        return [result.as_numpy(name) for name in self.kind.names]

    async def close(self) -> None:
        await self.client.close()


class OnnxModel(Model):
    def __init__(self, kind: Kind, version: str, repository: Path, threads: int = 0):
        folder = Path(repository) / kind.name
        if not version:
            numbered = [p.name for p in folder.glob("*") if p.name.isdigit() and (p / "model.onnx").exists()]
            if not numbered:
                raise FileNotFoundError(f"no {folder}/<version>/model.onnx: run `make models`")
            version = max(numbered, key=int)
        if not (folder / version / "model.onnx").exists():
            raise FileNotFoundError(f"no {folder / version / 'model.onnx'}")
        super().__init__(kind, version)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        # no busy-waiting between runs: the decoding threads need those cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(folder / version / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self._lock = asyncio.Lock()  # one run at a time uses every intra-op thread; more would thrash

    async def load(self, timeout: float) -> None:
        return None  # the session opened in the constructor

    async def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        async with self._lock:
            return await asyncio.to_thread(self.session.run, self.kind.names, {self.kind.input: batch})


BACKENDS = ("triton", "onnxruntime")


def make(settings, kind: Kind, version: str = "") -> Model:
    """`settings`: the encoder's (backend, Triton address, repository, threads). FileNotFoundError
    when the onnxruntime backend has no such version."""
    if kind is VISUAL:
        kind = dataclasses.replace(kind, name=settings.visual_model)
    if settings.visual_backend == "triton":
        return TritonModel(kind, version, settings.triton_url, settings.triton_timeout)
    return OnnxModel(kind, version, Path(settings.model_repository), settings.onnx_threads)


class ModelCache:
    """The model versions callers pin: each built and loaded once, under a lock of its own, so that
    concurrent first calls share one. Past `size` versions the least recently used leaves the
    cache, and closes once the calls that hold it are done."""

    def __init__(self, build, size: int = 4):
        """`build(kind, version)`: an async function that returns a loaded Model."""
        self._build, self._size = build, size
        self._models: collections.OrderedDict[tuple[Kind, str], Model] = collections.OrderedDict()
        self._locks: dict[tuple[Kind, str], asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._users: collections.Counter[Model] = collections.Counter()

    @contextlib.asynccontextmanager
    async def use(self, kind: Kind, version: str):
        key = (kind, version)
        async with self._locks[key]:
            model = self._models.get(key)
            if model is None:
                model = self._models[key] = await self._build(kind, version)
            self._models.move_to_end(key)
            self._users[model] += 1
        evicted = []
        while len(self._models) > self._size:
            evicted.append(self._models.popitem(last=False)[1])
        try:
            for old in evicted:
                await self._close_if_unused(old)
            yield model
        finally:
            self._users[model] -= 1
            await self._close_if_unused(model)

    async def _close_if_unused(self, model: Model) -> None:
        if self._users[model] <= 0 and model not in self._models.values():
            del self._users[model]
            await model.close()

    def __len__(self) -> int:
        return len(self._models)

    async def close(self) -> None:
        while self._models:
            await self._models.popitem()[1].close()
