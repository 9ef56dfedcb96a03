"""The third seed study's learned fusion: an autoencoder over the standardized concatenation of the
modality vectors, whose bottleneck is the fused representation (their 1425 -> 256, sized here to
our 1859 inputs: 1859 -> 512 -> 256 -> 512 -> 1859).

`reelvec evaluate` trains it on the corpus and compares its bottleneck with the
served fusion, plain concatenation and PCA; `reelvec train fusion` trains it on the stored vectors
and serves its encoder half as the fused vector (reelvec.fusion.LearnedFusion, docs/versions.md).
GELU is the tanh form so that the numpy forward pass in the gateway matches it exactly.
"""

from pathlib import Path

import numpy as np

from reelvec import early_stopping
from reelvec.fusion import LearnedFusion

HIDDEN, LATENT = 512, 256
MAX_EPOCHS, PATIENCE, BATCH = 300, 25, 32
VALIDATION = 0.15


class Autoencoder:
    def __init__(self, rows: np.ndarray, seed: int = 0):
        """Trains on `rows` (videos x concatenated features): MSE reconstruction of the standardized
        features, AdamW, early stopping on 15% of the rows when there are at least 10."""
        import torch
        from torch import nn

        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        self.mean, self.scale = rows.mean(axis=0), rows.std(axis=0)
        self.scale[self.scale < 1e-9] = 1.0
        z = torch.as_tensor((rows - self.mean) / self.scale, dtype=torch.float32)
        width = z.shape[1]
        gelu = nn.GELU(approximate="tanh")
        self.encoder = nn.Sequential(nn.Linear(width, HIDDEN), gelu, nn.Dropout(0.1), nn.Linear(HIDDEN, LATENT))
        decoder = nn.Sequential(gelu, nn.Linear(LATENT, HIDDEN), gelu, nn.Linear(HIDDEN, width))
        net = nn.Sequential(self.encoder, decoder)
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-3)
        self.losses = early_stopping.fit(net, z, z, nn.functional.mse_loss, optimizer, rng, batch=BATCH,
                                         max_epochs=MAX_EPOCHS, patience=PATIENCE, validation=VALIDATION)

    def encode(self, rows: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            z = torch.as_tensor((rows - self.mean) / self.scale, dtype=torch.float32)
            return self.encoder(z).numpy().astype(np.float64)

    def save(self, folder: Path) -> Path:
        """The encoder half as a LearnedFusion file in `folder`; returns its path (name = version)."""
        first, last = self.encoder[0], self.encoder[3]
        weights = [p.detach().numpy() for p in (first.weight, first.bias, last.weight, last.bias)]
        return LearnedFusion.save(folder, self.mean, self.scale, weights[0].T, weights[1], weights[2].T, weights[3])
