"""Triton Python backend: EfficientNet-Lite0 embeddings with onnxruntime on the CPU.

The bundled tritonserver has no onnxruntime backend, so this model runs the same model.onnx that the
GPU config serves natively. Dynamic batching hands `execute` several requests at once; their frames go
through one onnxruntime run and are split back per request.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


def _threads(config: dict) -> int:
    wanted = int(config.get("parameters", {}).get("intra_op_threads", {}).get("string_value", "0"))
    if wanted > 0:
        return wanted
    instances = sum(group.get("count", 1) for group in config.get("instance_group", [])) or 1
    # sched_getaffinity honours taskset and cgroup cpusets, cpu_count() does not
    return max(1, len(os.sched_getaffinity(0)) // instances)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        # one input, one output, named by the config: the learned audio model runs this file too
        self.input, self.output = config["input"][0]["name"], config["output"][0]["name"]
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads(config)
        options.inter_op_num_threads = 1
        # idle intra-op threads would spin between batches and starve the encoder's decoding
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        batches = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        try:
            embeddings = self.session.run([self.output], {self.input: np.concatenate(batches)})[0]
        except Exception as exc:  # answer every request of the batch instead of crashing the stub
            error = pb_utils.TritonError(f"onnxruntime failed: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        bounds = np.cumsum([len(b) for b in batches])[:-1]
        return [
            pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(self.output, part)])
            for part in np.split(embeddings, bounds)
        ]
