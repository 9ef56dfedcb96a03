"""The Triton Python backend's model.py outside Triton: its CPU runtime's batching, and the folding
that its GPU runtime (onnx2torch, PyTorch on CUDA) starts from. The GPU runtime itself needs CUDA
and torchvision, which CI lacks: bench/gpu/run.sh runs it on a lent GPU (BENCHMARKS.md, "GPU")."""

import json
import types

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from reelvec.models import VISUAL_MODEL_NAME, python_backend, triton_repository


class Tensor:
    """What the stub's pb_utils.Tensor offers model.py's CPU runtime."""

    def __init__(self, name: str, array: np.ndarray):
        self.name, self.array = name, array

    def as_numpy(self) -> np.ndarray:
        return self.array


@pytest.fixture(scope="module")
def served():
    utils = types.ModuleType("triton_python_backend_utils")
    utils.Tensor = Tensor
    return python_backend(utils)


MODEL = triton_repository() / VISUAL_MODEL_NAME / "1" / "model.onnx"


def _frames(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 224, 224, 3), dtype=np.uint8)


def test_cpu_runtime_answers_each_request_of_a_batch_with_its_own_rows(served):
    config = {"parameters": {"intra_op_threads": {"string_value": "2"}}}
    runtime = served.OnnxRuntime(str(MODEL), config, "frames", ["embedding", "descriptor"])
    requests = [_frames(n, seed) for seed, n in enumerate((2, 3, 1))]
    outputs = runtime([Tensor("frames", r) for r in requests])
    assert [[o.name for o in tensors] for tensors in outputs] == [["embedding", "descriptor"]] * 3
    for request, (embedding, descriptor) in zip(requests, outputs):
        alone = runtime([Tensor("frames", request)])[0]
        assert embedding.array.shape == (len(request), 1280) and descriptor.array.shape == (len(request), 256)
        np.testing.assert_allclose(embedding.array, alone[0].array, atol=1e-4)
        np.testing.assert_allclose(descriptor.array, alone[1].array, atol=1e-4)


def test_folding_leaves_the_network_and_its_answers(served, tmp_path):
    folded = served.fold(str(MODEL), str(tmp_path))
    # the head's id is shaped by the batch, so its three nodes stay; they are no padding arithmetic
    ops = {node.op_type for node in onnx.load(folded).graph.node if not node.output[0].startswith("descriptor_head")}
    before = {node.op_type for node in onnx.load(str(MODEL)).graph.node}
    # the exporter's padding arithmetic is gone, the layers stay
    assert {"ConstantOfShape", "Slice", "Pad"} <= before and not ops & {"ConstantOfShape", "Slice", "Pad", "Concat"}
    assert {"Conv", "Clip", "Add", "ReduceMean"} <= ops
    assert all(node.domain in ("", "ai.onnx") for node in onnx.load(folded).graph.node)  # standard ops only
    frames = _frames(4, 7)
    expected = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"]).run(None, {"frames": frames})[0]
    actual = ort.InferenceSession(folded, providers=["CPUExecutionProvider"]).run(None, {"frames": frames})[0]
    np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_an_unknown_runtime_fails_the_load_with_the_choices(served):
    config = {"input": [{"name": "frames"}], "output": [{"name": "embedding"}],
              "parameters": {"runtime": {"string_value": "tensorrt"}}}
    args = {"model_config": json.dumps(config), "model_repository": str(MODEL.parent.parent), "model_version": "1"}
    with pytest.raises(ValueError, match="onnxruntime or torch"):
        served.TritonPythonModel().initialize(args)
