"""The Fashion-MNIST sections of params.yaml: where the data comes from, and how all six train.

`fashion_models` (the list DVC's `train-fashion` matrix runs over) is not read by any stage:
adding a model adds a stage and reruns none of the others.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from pipeline.common.params import ParamsError, at_least, positive, ranged

FASHION_MODELS = ("softmax_scratch", "softmax", "mlp_scratch", "mlp", "dropout_scratch", "dropout")
# `fashion_models` as params.yaml holds it, for the check of the whole file: some of the six.
FashionModelList = tuple[Literal[FASHION_MODELS], ...]


@dataclasses.dataclass(frozen=True)
class FashionDataParams:
    """Where the four Fashion-MNIST IDX files come from."""

    source: Literal["local", "url"]
    local_dir: str
    url: str
    max_file_mb: float = positive()  # cap on each file, compressed and decompressed


@dataclasses.dataclass(frozen=True)
class FashionTrainParams:
    """One set of training settings shared by all six models, so they compare fairly."""

    epochs: int = at_least(1)
    batch_size: int = at_least(1)
    optimizer: Literal["sgd", "sgd_momentum", "adam"]
    lr: float = positive()
    momentum: float = ranged(0, 1, high_open=True)
    weight_decay: float = at_least(0)
    schedule: Literal["constant", "cosine"]
    mlp_hidden: tuple[int, ...] = at_least(1)
    dropout_hidden: tuple[int, ...] = at_least(1)
    dropout_rates: tuple[float, ...] = ranged(0, 1, high_open=True)

    def check(self) -> None:
        if len(self.dropout_rates) != len(self.dropout_hidden):
            raise ParamsError("fashion_train: dropout_rates needs one rate per dropout_hidden layer")


def check_model(model: str) -> str:
    """`model` if it is one of the six, else a params error naming the choices."""
    if model not in FASHION_MODELS:
        raise ParamsError(f"unknown Fashion-MNIST model {model!r}: choose from {', '.join(FASHION_MODELS)}")
    return model
