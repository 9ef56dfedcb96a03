"""Triton Python backend: the model.onnx beside this file, run by onnxruntime on the CPU or by
PyTorch on a GPU.

The tritonserver bundled in nvidia-pytriton has only the Python backend, so this file is how it
serves model.onnx. The config's `runtime` parameter picks the engine:
- "onnxruntime" (config.pbtxt): onnxruntime's CPU execution provider.
- "torch" (configs/python_gpu.pbtxt): the graph folded by onnxruntime, converted by onnx2torch and
  run by the environment's PyTorch on the `device` parameter ("cuda"), so the same model.onnx,
  fine-tuned versions too, runs on a GPU without onnxruntime-gpu. `precision` "float16" runs it
  under autocast.

Dynamic batching hands `execute` several requests at once; their frames go through one run and are
split back per request, with every output the config names (the visual model's `embedding`, `descriptor`
and `descriptor_head`; the learned audio model's one).
"""

import json
import os
import tempfile

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


def _parameter(config: dict, key: str, default: str) -> str:
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


def _threads(config: dict) -> int:
    wanted = int(_parameter(config, "intra_op_threads", "0"))
    if wanted > 0:
        return wanted
    instances = sum(group.get("count", 1) for group in config.get("instance_group", [])) or 1
    # sched_getaffinity honours taskset and cgroup cpusets, cpu_count() does not
    return max(1, len(os.sched_getaffinity(0)) // instances)


def fold(path: str, folder: str) -> str:
    """model.onnx with its constant subgraphs folded (onnxruntime's basic level, standard ONNX ops
    only), written into `folder`. The exporter spells each "same" padding as ~10 small ops on
    constants; folded, the graph is the network's ~110 layers, not ~450, and an op-by-op engine
    such as PyTorch eager pays per op."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = os.path.join(folder, "folded.onnx")
    ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return options.optimized_model_filepath


class OnnxRuntime:
    """Tensors cross the stub as numpy arrays: the CPU environment keeps numpy 1 (nvidia-pytriton
    pins it), and that stub crashed on numpy's own DLPack capsules."""

    def __init__(self, path: str, config: dict, input_name: str, outputs: list[str]):
        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads(config)
        options.inter_op_num_threads = 1
        # idle intra-op threads would spin between batches and starve the encoder's decoding
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input, self.outputs = input_name, outputs

    def __call__(self, inputs: list) -> list[list]:
        batches = [tensor.as_numpy() for tensor in inputs]
        results = self.session.run(self.outputs, {self.input: np.concatenate(batches)})
        bounds = np.cumsum([len(b) for b in batches])[:-1]
        split = [np.split(result, bounds) for result in results]
        return [[pb_utils.Tensor(name, parts[i]) for name, parts in zip(self.outputs, split)] for i in range(len(batches))]


class Torch:
    """Tensors cross the stub by DLPack, never as numpy arrays: the stub is built against numpy 1,
    and under the numpy 2 that a GPU machine's PyTorch brings, outputs made from numpy arrays come
    back empty."""

    def __init__(self, path: str, config: dict, device: str, outputs: list[str]):
        import onnx
        import torch
        from onnx2torch import convert

        self.torch, self.outputs = torch, outputs
        self.device = torch.device(device)
        with tempfile.TemporaryDirectory() as folder:
            folded = fold(path, folder)
            # onnx2torch returns the graph's outputs in the graph's order: a list when there are several
            self.order = [o.name for o in onnx.load(folded, load_external_data=False).graph.output]
            self.module = convert(folded).eval().to(self.device)
        self.dtype = torch.float16 if _parameter(config, "precision", "float32") == "float16" else None

    def __call__(self, inputs: list) -> list[list]:
        torch = self.torch
        batches = [torch.from_dlpack(tensor.to_dlpack()) for tensor in inputs]
        with torch.inference_mode(), torch.autocast(self.device.type, self.dtype, enabled=self.dtype is not None):
            results = self.module(torch.cat(batches).to(self.device))
        results = dict(zip(self.order, results if isinstance(results, (list, tuple)) else (results,)))
        sizes = [len(b) for b in batches]
        # autocast's float16 back to the config's float32; the head's int64 id stays exact
        split = [torch.split(_as_served(results[name]).cpu(), sizes) for name in self.outputs]
        return [[pb_utils.Tensor.from_dlpack(name, torch.utils.dlpack.to_dlpack(parts[i].contiguous()))
                 for name, parts in zip(self.outputs, split)] for i in range(len(batches))]


def _as_served(tensor):
    return tensor.float() if tensor.is_floating_point() else tensor


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        # one input and the outputs named by the config: the learned audio model runs this file too
        self.input, outputs = config["input"][0]["name"], [output["name"] for output in config["output"]]
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        runtime = _parameter(config, "runtime", "onnxruntime")
        if runtime == "torch":
            # the device is a parameter, not the instance kind, so one model.py serves both kinds
            self.run = Torch(path, config, _parameter(config, "device", "cpu"), outputs)
        elif runtime == "onnxruntime":
            self.run = OnnxRuntime(path, config, self.input, outputs)
        else:
            raise ValueError(f"parameter runtime is {runtime!r}: use onnxruntime or torch")

    def execute(self, requests):
        try:
            outputs = self.run([pb_utils.get_input_tensor_by_name(r, self.input) for r in requests])
        except Exception as exc:  # answer every request of the batch instead of crashing the stub
            error = pb_utils.TritonError(f"{type(self.run).__name__} failed: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        return [pb_utils.InferenceResponse(output_tensors=tensors) for tensors in outputs]
