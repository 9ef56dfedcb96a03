"""openai-whisper (PyTorch, the reference implementation) on the same weights faster-whisper serves.

Our Whisper weights exist only in CTranslate2 format (model.bin), so they are converted once into an
openai checkpoint ({"dims", "model_state_dict"}, the layout `whisper.load_model(path)` also reads) and
cached under config.models_dir()/openai-whisper/. The model.bin reader needs only numpy, so it is testable where
openai-whisper is not installed (it is an optional extra: its package pulls a ~1 GB `triton` wheel).
"""

import re
import struct
from pathlib import Path

import numpy as np

from reelvec.config import models_dir
from reelvec.models import whisper as ct2_whisper

VERSION = "20250625"
INSTALL = (
    ".venv/bin/pip install -e '.[export,test,bench]' && "
    f".venv/bin/pip install --no-deps openai-whisper=={VERSION}"
)
CACHE_DIR = models_dir() / "openai-whisper"

# The DataType enum of ctranslate2/specs/model_spec.py (_dtype_to_type_id); bfloat16 has no numpy type.
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.uint16}
_BFLOAT16 = 5


class NotInstalled(RuntimeError):
    pass


def available() -> bool:
    try:
        import whisper  # noqa: F401
    except ImportError:
        return False
    return hasattr(whisper, "load_model")  # not some other package that took the name


def read_model_bin(path: Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model.bin (binary version 6: header, then per variable its
    name, shape, dtype id, byte count and raw little-endian data, then aliases), aliases resolved."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    offset = 0

    def take(fmt: str) -> tuple:
        nonlocal offset
        values = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return values

    def number(fmt: str) -> int:
        return take(fmt)[0]

    def string() -> str:
        nonlocal offset
        length = number("H")  # includes the trailing NUL
        text = bytes(data[offset : offset + length - 1]).decode()
        offset += length
        return text

    version = number("I")
    if version != 6:
        raise ValueError(f"{path}: CTranslate2 binary version {version}, this reader knows 6")
    spec, _revision, count = string(), number("I"), number("I")
    if spec != "WhisperSpec":
        raise ValueError(f"{path} holds a {spec}, not a WhisperSpec")
    variables = {}
    for _ in range(count):
        name = string()
        shape = take("I" * number("B"))  # () for a scalar
        dtype_id, size = number("B"), number("I")
        value = np.frombuffer(data, _DTYPES[dtype_id], size // np.dtype(_DTYPES[dtype_id]).itemsize, offset)
        offset += size
        if dtype_id == _BFLOAT16:  # the upper half of a float32
            value = (value.astype(np.uint32) << 16).view(np.float32)
        variables[name] = value.reshape(shape)
    for _ in range(number("I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return variables


def _float(variables: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A weight as floats; int8/int16 ones are divided by their `_scale` (per output row for int8)."""
    value = variables[name]
    scale = variables.get(f"{name}_scale")
    if scale is None:
        return value
    scale = scale.astype(np.float32)
    return value.astype(np.float32) / scale.reshape(scale.shape + (1,) * (value.ndim - scale.ndim))


def dimensions(variables: dict[str, np.ndarray]) -> dict[str, int]:
    """openai-whisper's ModelDimensions, from the shapes (and the two head counts) in model.bin."""
    layers = lambda side: len({k.split("/")[1] for k in variables  # noqa: E731
                               if re.match(rf"{side}/layer_\d+/", k)})  # not {side}/layer_norm
    n_audio_state, n_mels, _ = variables["encoder/conv1/weight"].shape
    n_vocab, n_text_state = variables["decoder/embeddings/weight"].shape
    return {
        "n_mels": int(n_mels),
        "n_audio_ctx": int(variables["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(n_audio_state),
        "n_audio_head": int(variables["encoder/num_heads"]),
        "n_audio_layer": layers("encoder"),
        "n_vocab": int(n_vocab),
        "n_text_ctx": int(variables["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(n_text_state),
        "n_text_head": int(variables["decoder/num_heads"]),
        "n_text_layer": layers("decoder"),
    }


def convert(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """openai parameter names -> arrays. CTranslate2 fuses q/k/v (self-attention) and k/v
    (cross-attention) into one linear; openai's key projection has no bias, so CTranslate2's converter
    filled that slice with zeros and it is dropped here."""
    out: dict[str, np.ndarray] = {}
    get = lambda name: _float(variables, name)  # noqa: E731

    def linear(target: str, source: str):
        out[f"{target}.weight"] = get(f"{source}/weight")
        out[f"{target}.bias"] = get(f"{source}/bias")

    def norm(target: str, source: str):
        out[f"{target}.weight"] = get(f"{source}/gamma")
        out[f"{target}.bias"] = get(f"{source}/beta")

    def split(target: str, source: str, parts: tuple[str, ...]):
        weights = np.split(get(f"{source}/weight"), len(parts))
        biases = np.split(get(f"{source}/bias"), len(parts))
        for part, weight, bias in zip(parts, weights, biases):
            out[f"{target}.{part}.weight"] = weight
            if part == "key":
                if np.any(bias):
                    raise ValueError(f"{source}: nonzero key bias, which openai-whisper cannot hold")
            else:
                out[f"{target}.{part}.bias"] = bias

    def block(target: str, source: str, cross: bool):
        split(f"{target}.attn", f"{source}/self_attention/linear_0", ("query", "key", "value"))
        linear(f"{target}.attn.out", f"{source}/self_attention/linear_1")
        norm(f"{target}.attn_ln", f"{source}/self_attention/layer_norm")
        if cross:
            linear(f"{target}.cross_attn.query", f"{source}/attention/linear_0")
            split(f"{target}.cross_attn", f"{source}/attention/linear_1", ("key", "value"))
            linear(f"{target}.cross_attn.out", f"{source}/attention/linear_2")
            norm(f"{target}.cross_attn_ln", f"{source}/attention/layer_norm")
        linear(f"{target}.mlp.0", f"{source}/ffn/linear_0")
        linear(f"{target}.mlp.2", f"{source}/ffn/linear_1")
        norm(f"{target}.mlp_ln", f"{source}/ffn/layer_norm")

    dims = dimensions(variables)
    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    out["encoder.positional_embedding"] = get("encoder/position_encodings/encodings")
    for n in range(dims["n_audio_layer"]):
        block(f"encoder.blocks.{n}", f"encoder/layer_{n}", cross=False)
    norm("encoder.ln_post", "encoder/layer_norm")
    # openai ties the output projection to the token embedding; model.bin stores it as an alias.
    out["decoder.token_embedding.weight"] = get("decoder/embeddings/weight")
    out["decoder.positional_embedding"] = get("decoder/position_encodings/encodings")
    for n in range(dims["n_text_layer"]):
        block(f"decoder.blocks.{n}", f"decoder/layer_{n}", cross=True)
    norm("decoder.ln", "decoder/layer_norm")
    return out


def checkpoint_path(name: str) -> Path:
    """The converted checkpoint of Whisper `name`, written on first use (redone when model.bin is newer)."""
    import torch

    source = ct2_whisper.model_dir(name) / "model.bin"
    target = CACHE_DIR / f"{name}.pt"
    if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    variables = read_model_bin(source)
    # Kept in model.bin's own precision (float16 for ours): lossless, half the disk of float32.
    state = {k: torch.from_numpy(np.array(v)) for k, v in convert(variables).items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    torch.save({"dims": dimensions(variables), "model_state_dict": state}, partial)
    partial.replace(target)  # never a half-written checkpoint under the real name
    return target


def load(name: str = "base"):
    """openai-whisper's `Whisper` model (float32, CPU, eval mode) with the weights of our `name`."""
    if not available():
        raise NotInstalled(f"openai-whisper is not installed; install the baseline with: {INSTALL}")
    import torch
    from whisper.model import ModelDimensions, Whisper

    checkpoint = torch.load(checkpoint_path(name), map_location="cpu", weights_only=True)
    model = Whisper(ModelDimensions(**checkpoint["dims"]))
    model.load_state_dict(checkpoint["model_state_dict"])  # strict: every name must match
    return model.float().eval()
