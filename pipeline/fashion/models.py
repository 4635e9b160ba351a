"""The six Fashion-MNIST classifiers, chosen by name: three from scratch, three in torch.nn."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from pipeline.fashion import scratch

N_PIXELS = 28 * 28
N_CLASSES = 10

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Classifier:
    """A model, the loss it trains with, and whether its parts are our own (scratch)."""

    name: str
    model: nn.Module
    loss: LossFn
    scratch: bool


def build_classifier(name: str, mlp_hidden: tuple[int, ...], dropout_hidden: tuple[int, ...],
                     dropout_rates: tuple[float, ...],
                     generator: torch.Generator | None = None) -> Classifier:
    """The classifier called `name`; the twins share architecture and initialization scheme."""
    if name == "softmax_scratch":
        return Classifier(name, scratch.SoftmaxRegressionScratch(N_PIXELS, N_CLASSES, generator),
                          scratch.cross_entropy, True)
    if name == "mlp_scratch":
        return Classifier(name, scratch.MLPScratch(N_PIXELS, mlp_hidden, N_CLASSES,
                                                   generator=generator),
                          scratch.cross_entropy, True)
    if name == "dropout_scratch":
        return Classifier(name, scratch.MLPScratch(N_PIXELS, dropout_hidden, N_CLASSES,
                                                   dropout_rates, generator),
                          scratch.cross_entropy, True)
    if name == "softmax":
        return Classifier(name, nn.Linear(N_PIXELS, N_CLASSES), nn.CrossEntropyLoss(), False)
    if name == "mlp":
        return Classifier(name, _torch_mlp(mlp_hidden, ()), nn.CrossEntropyLoss(), False)
    if name == "dropout":
        return Classifier(name, _torch_mlp(dropout_hidden, dropout_rates), nn.CrossEntropyLoss(),
                          False)
    raise ValueError(f"unknown model {name!r}")


def _torch_mlp(hidden: tuple[int, ...], dropout_rates: tuple[float, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    n_in = N_PIXELS
    for i, width in enumerate(hidden):
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        if dropout_rates:
            layers.append(nn.Dropout(dropout_rates[i]))
        n_in = width
    layers.append(nn.Linear(n_in, N_CLASSES))
    return nn.Sequential(*layers)
