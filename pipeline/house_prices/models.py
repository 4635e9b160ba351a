"""Linear and MLP regressors, fold-batched so that several independent models train as one.

A CV run trains one model per fold. Written as separate `nn.Linear` models, each step of each
fold pays Python and dispatch overhead for a tiny matrix product. Here every weight carries a
leading "model" dimension and one `baddbmm` computes all folds at once. Adam and L2 weight
decay act elementwise, so F batched models trained on the sum of their losses follow exactly
the trajectories of F separate models: batching is a speed-up, not a different method. ("Stack"
in this package means the blend of members only: `blend.py`.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from pipeline.house_prices.params import ModelParams


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model before loading its weights."""

    kind: str  # "linear" | "mlp"
    in_features: int
    hidden: tuple[int, ...] = ()
    dropout: float = 0.0
    n_models: int = 1
    linear_skip: bool = False

    @property
    def widths(self) -> list[int]:
        hidden = list(self.hidden) if self.kind == "mlp" else []
        return [self.in_features, *hidden, 1]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        return cls(**{**data, "hidden": tuple(data.get("hidden", ()))})


def model_spec(params: ModelParams, in_features: int, n_models: int) -> ModelSpec:
    """The spec of `n_models` fold-batched regressors of `params`' kind over `in_features` inputs."""
    return ModelSpec(kind=params.kind, in_features=in_features, hidden=params.hidden,
                     dropout=params.dropout, n_models=n_models, linear_skip=params.linear_skip)


class FoldBatchedRegressor(nn.Module):
    """`n_models` independent regressors; input `[M, B, d]`, output `[M, B]`.

    Initialization matches `nn.Linear` (uniform in +-1/sqrt(fan_in)) for every model.
    """

    def __init__(self, spec: ModelSpec, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if spec.kind not in ("linear", "mlp"):
            raise ValueError(f"unknown model kind '{spec.kind}': choose linear or mlp")
        if spec.kind == "mlp" and not spec.hidden:
            raise ValueError("an mlp needs at least one hidden layer size")
        if not 0.0 <= spec.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {spec.dropout}")
        self.spec = spec
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        widths = spec.widths
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            bound = 1.0 / math.sqrt(fan_in)
            w = torch.empty(spec.n_models, fan_in, fan_out).uniform_(-bound, bound, generator=generator)
            b = torch.empty(spec.n_models, 1, fan_out).uniform_(-bound, bound, generator=generator)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        # Wide & deep: an MLP plus a linear path from the inputs to the output, so the
        # network only has to learn what a linear model misses.
        self.skip = (nn.Parameter(torch.zeros(spec.n_models, spec.in_features, 1))
                     if spec.kind == "mlp" and spec.linear_skip else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        inputs = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w) if x.dim() == 3 else torch.matmul(x, w) + b
            if i < last:
                x = torch.relu(x)
                if self.spec.dropout > 0:
                    x = nn.functional.dropout(x, self.spec.dropout, self.training)
        if self.skip is not None:
            x = x + (torch.bmm(inputs, self.skip) if inputs.dim() == 3 else torch.matmul(inputs, self.skip))
        return x.squeeze(-1)

    def set_output_bias(self, values: torch.Tensor) -> None:
        """Start each model's output at its target mean (e.g. the mean log price, ~12)."""
        with torch.no_grad():
            self.biases[-1].copy_(values.reshape(-1, 1, 1).to(self.biases[-1]))


def parameter_groups(model: FoldBatchedRegressor, weight_decay: float) -> list[dict]:
    """Decay weights, not biases.

    Decaying the output bias drags it from the mean log price (about 12) toward 0, which
    wrecks the score under Adam; biases carry no capacity worth regularizing.
    """
    return [
        {"params": list(model.weights) + ([model.skip] if model.skip is not None else []),
         "weight_decay": weight_decay},
        {"params": list(model.biases), "weight_decay": 0.0},
    ]
