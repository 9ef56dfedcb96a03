"""Triton Python backend: the model.onnx beside this file, run by onnxruntime on the CPU or by
PyTorch on a GPU.

The tritonserver bundled in nvidia-pytriton has only the Python backend, so this file is how it
serves model.onnx. The config's `runtime` parameter picks the engine:
- "onnxruntime" (config.pbtxt): onnxruntime's CPU execution provider.
- "torch" (configs/python_gpu.pbtxt): the graph converted by onnx2torch and run by the machine's
  PyTorch on the instance's GPU (KIND_GPU), so the same model.onnx, fine-tuned versions too, runs on
  CUDA without onnxruntime-gpu. `precision` "float16" runs it under autocast.

Dynamic batching hands `execute` several requests at once; their frames go through one run and are
split back per request.
"""

import json
import os

import numpy as np
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


class OnnxRuntime:
    def __init__(self, path: str, config: dict, input_name: str, output_name: str):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads(config)
        options.inter_op_num_threads = 1
        # idle intra-op threads would spin between batches and starve the encoder's decoding
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input, self.output = input_name, output_name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output], {self.input: batch})[0]


class Torch:
    def __init__(self, path: str, config: dict, device: str):
        import torch
        from onnx2torch import convert

        self.torch = torch
        self.device = torch.device(device)
        self.module = convert(path).eval().to(self.device)
        self.dtype = torch.float16 if _parameter(config, "precision", "float32") == "float16" else None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode(), torch.autocast(self.device.type, self.dtype, enabled=self.dtype is not None):
            return self.module(torch.from_numpy(batch).to(self.device)).float().cpu().numpy()


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        # one input, one output, named by the config: the learned audio model runs this file too
        self.input, self.output = config["input"][0]["name"], config["output"][0]["name"]
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        runtime = _parameter(config, "runtime", "onnxruntime")
        if runtime == "torch":
            gpu = args["model_instance_kind"] == "GPU"
            self.run = Torch(path, config, f"cuda:{args['model_instance_device_id']}" if gpu else "cpu")
        elif runtime == "onnxruntime":
            self.run = OnnxRuntime(path, config, self.input, self.output)
        else:
            raise ValueError(f"parameter runtime is {runtime!r}: use onnxruntime or torch")

    def execute(self, requests):
        batches = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        try:
            embeddings = self.run(np.concatenate(batches))
        except Exception as exc:  # answer every request of the batch instead of crashing the stub
            error = pb_utils.TritonError(f"{type(self.run).__name__} failed: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        bounds = np.cumsum([len(b) for b in batches])[:-1]
        return [
            pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(self.output, part)])
            for part in np.split(embeddings, bounds)
        ]
