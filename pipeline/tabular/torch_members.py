"""Torch members of any task: linear, logistic and softmax regression, and MLPs.

These are the Fashion-MNIST pipeline's lessons on a table: one `nn.Linear` is linear
regression with a squared loss, logistic regression with a binary cross-entropy, softmax
regression with a cross-entropy over classes; hidden ReLU layers with dropout make the MLP.
Adam with decoupled weight decay (`AdamW`), minibatches shuffled by a seeded generator.
A regression target is standardized on the fit rows (and the prediction mapped back), so one
learning rate suits any target's scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from pipeline.tabular.params import TorchParams

LOSS = {"regression": nn.MSELoss, "binary": nn.BCEWithLogitsLoss, "multiclass": nn.CrossEntropyLoss}


def network(n_in: int, n_out: int, hidden: tuple[int, ...], dropout: float) -> nn.Sequential:
    """`hidden=()` is the linear model; each hidden width adds Linear -> ReLU -> Dropout."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


@dataclass
class TorchModel:
    """A fitted network and what maps its output back: link-space predictions (`predict`)."""

    net: nn.Sequential
    task: str
    hidden: tuple[int, ...]
    y_mean: float = 0.0
    y_scale: float = 1.0

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.net.eval()
        with torch.no_grad():
            out = torch.cat([self.net(torch.from_numpy(chunk)) for chunk in np.array_split(x, max(1, len(x) // 65536))
                             ]) if len(x) else torch.zeros((0, self.net[-1].out_features))
        out = out.double().numpy()
        if self.task == "regression":
            return out[:, 0] * self.y_scale + self.y_mean
        if self.task == "binary":
            return out[:, 0]
        return out - np.logaddexp.reduce(out, axis=1, keepdims=True)  # log-probabilities

    def save(self, directory: Path, stem: str) -> dict:
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, directory / f"{stem}.safetensors")
        first, last = self.net[0], self.net[-1]
        return {"file": f"{stem}.safetensors", "n_in": first.in_features, "n_out": last.out_features,
                "hidden": list(self.hidden), "y_mean": self.y_mean, "y_scale": self.y_scale}

    @classmethod
    def load(cls, directory: Path, spec: dict, task: str) -> TorchModel:
        net = network(spec["n_in"], spec["n_out"], tuple(spec["hidden"]), 0.0)
        net.load_state_dict(load_file(directory / spec["file"]))
        return cls(net.eval(), task, tuple(spec["hidden"]), spec["y_mean"], spec["y_scale"])


def fit_torch(x: np.ndarray, y: np.ndarray, task: str, n_classes: int, params: TorchParams, hidden: tuple[int, ...],
              seed: int) -> TorchModel:
    """Train on `x` (float32) and `y` (fit-space values, or class indices)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the layers' initial weights
    n_out = n_classes if task == "multiclass" else 1
    net = network(x.shape[1], n_out, hidden, params.dropout)
    y_mean, y_scale = 0.0, 1.0
    if task == "regression":
        y_mean, y_scale = float(np.mean(y)), float(np.std(y)) or 1.0
        target = torch.from_numpy(((y - y_mean) / y_scale).astype(np.float32)).unsqueeze(1)
    elif task == "binary":
        target = torch.from_numpy(y.astype(np.float32)).unsqueeze(1)
    else:
        target = torch.from_numpy(y.astype(np.int64))
    features = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    loss_fn = LOSS[task]()
    optimizer = torch.optim.AdamW(net.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    batch = max(params.batch_size, math.ceil(len(x) / params.max_batches))
    for _epoch in range(params.epochs):
        net.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            rows = order[start:start + batch]
            optimizer.zero_grad()
            loss_fn(net(features[rows]), target[rows]).backward()
            optimizer.step()
    return TorchModel(net.eval(), task, hidden, y_mean, y_scale)

