"""The minibatch loop the small PyTorch models share (the regressor's networks, the autoencoder
fusion): shuffle each epoch, stop when the held-out loss has not improved for `patience` epochs,
keep the best weights."""

import numpy as np


def fit(net, inputs, targets, loss_fn, optimizer, rng: np.random.Generator, *, batch: int,
        max_epochs: int, patience: int, validation: float) -> list[float]:
    """Trains `net` in place on float tensors; holds out `validation` of the rows when there are at
    least 10. Returns the mean training loss of every epoch."""
    import torch

    order = rng.permutation(len(inputs))
    n_val = int(validation * len(inputs)) if len(inputs) >= 10 else 0
    val, train = order[:n_val], order[n_val:]
    best, best_state, waited, losses = float("inf"), None, 0, []
    for _ in range(max_epochs):
        net.train()
        rng.shuffle(train)
        total = 0.0
        for start in range(0, len(train), batch):
            rows = torch.as_tensor(train[start : start + batch])
            optimizer.zero_grad()
            loss = loss_fn(net(inputs[rows]), targets[rows])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        losses.append(total / len(train))
        if not n_val:
            continue
        net.eval()
        with torch.no_grad():
            held = loss_fn(net(inputs[val]), targets[val]).item()
        if held < best - 1e-4:
            best, best_state, waited = held, {k: v.clone() for k, v in net.state_dict().items()}, 0
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return losses
