"""The neural likes models: trained with PyTorch, served from ONNX by onnxruntime (no torch at
serving time). Both read the standardized row of features.py.

- mlp: the fused embedding squeezed to 64 (dropout, linear, GELU), joined with the 10 tabular
  features, then 74 -> 32 -> 1.
- transformer: the second seed study's head over modality tokens. The fused vector's blocks
  (visual, audio, text: fusion.py keeps them in order, scaled) and the tabular features each become
  one token through their own linear projection, plus a learned [CLS] token and a learned embedding
  per modality; two pre-norm encoder layers; the [CLS] output is the prediction.

Training: Adam with weight decay on 85% of the training split, early stopping on the other 15%
(patience 20 epochs, at most 200), batch 32; squared error, or Huber (delta 1 in standardized units).
"""

import base64
import io
import warnings

import numpy as np

from reelvec import early_stopping, modalities
from reelvec.likes import features

D_MODEL, HEADS, LAYERS = 64, 4, 2
MAX_EPOCHS, PATIENCE, BATCH = 200, 20, 32
VALIDATION = 0.15
WEIGHT_DECAY = 1e-2
LEARNING_RATE = 3e-3
HUBER_DELTA = 1.0
INPUT, OUTPUT = "rows", "likes"

# token boundaries in a row: the fused vector's modality blocks, then the tabular columns
_EDGES = np.cumsum([0, *modalities.SOURCES.values(), len(features.TABULAR)])
TOKENS = [slice(int(a), int(b)) for a, b in zip(_EDGES[:-1], _EDGES[1:])]


def _networks():
    import torch
    from torch import nn

    class MLP(nn.Module):
        def __init__(self, width: int):
            super().__init__()
            tabular = len(features.TABULAR)
            # the embedding is squeezed on its own first, so that its 1.9k columns cannot drown
            # the tabular ones (with a few hundred videos a plain MLP learnt nothing here)
            self.embedding = nn.Sequential(nn.Dropout(0.2), nn.Linear(width - tabular, 64), nn.GELU())
            self.body = nn.Sequential(nn.Dropout(0.3), nn.Linear(64 + tabular, 32), nn.GELU(), nn.Linear(32, 1))
            self.split = width - tabular

        def forward(self, rows):
            joined = torch.cat([self.embedding(rows[:, : self.split]), rows[:, self.split :]], dim=1)
            return self.body(joined).squeeze(-1)

    class TokenTransformer(nn.Module):
        def __init__(self, width: int):
            super().__init__()
            self.project = nn.ModuleList(nn.Linear(s.stop - s.start, D_MODEL) for s in TOKENS)
            self.kind = nn.Parameter(0.02 * torch.randn(len(TOKENS) + 1, D_MODEL))
            self.cls = nn.Parameter(0.02 * torch.randn(1, 1, D_MODEL))
            layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, 2 * D_MODEL, dropout=0.1,
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
            self.head = nn.Sequential(nn.LayerNorm(D_MODEL), nn.Linear(D_MODEL, 1))

        def forward(self, rows):
            tokens = [p(rows[:, s]) for p, s in zip(self.project, TOKENS)]
            x = torch.cat([self.cls.expand(rows.shape[0], -1, -1), torch.stack(tokens, dim=1)], dim=1)
            return self.head(self.encoder(x + self.kind)[:, 0]).squeeze(-1)

    return {"mlp": MLP, "transformer": TokenTransformer}


def train(kind: str, z: np.ndarray, y: np.ndarray, huber: bool, seed: int) -> bytes:
    """Fits on standardized rows `z` and target `y`; returns the ONNX model as bytes."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = _networks()[kind](z.shape[1])
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    zt, yt = as_tensor(z), as_tensor(y)
    loss_fn = torch.nn.HuberLoss(delta=HUBER_DELTA) if huber else torch.nn.MSELoss()
    optimizer = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    early_stopping.fit(net, zt, yt, loss_fn, optimizer, rng, batch=BATCH, max_epochs=MAX_EPOCHS,
                       patience=PATIENCE, validation=VALIDATION)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the tracer's notes on attention's fast-path checks
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (zt[:2],), buffer, input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=17,
                          dynamo=False)
    model = buffer.getvalue()
    with torch.no_grad():  # traced with 2 rows: check the graph on every row, one batch of all
        expected = net(zt).numpy()
    if not np.allclose(OnnxNet(model)(z), expected, atol=1e-4):
        raise RuntimeError(f"the ONNX export of the {kind} model does not reproduce PyTorch's outputs")
    return model


class OnnxNet:
    """The exported network in onnxruntime: one thread, a row or a few per call."""

    def __init__(self, model: bytes):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.model = model
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT], {INPUT: z.astype(np.float32)})[0].astype(np.float64)

    def to_text(self) -> str:
        return base64.b64encode(self.model).decode()

    @classmethod
    def from_text(cls, text: str) -> "OnnxNet":
        return cls(base64.b64decode(text))
