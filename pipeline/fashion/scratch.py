"""The book's from-scratch building blocks, written so they cannot overflow or misbehave.

The book computes softmax as `exp(X) / exp(X).sum()`, which overflows to inf (and then nan)
once a logit passes about 88 in float32; here everything goes through log-sum-exp with the
row maximum subtracted. Its dropout draws the keep-mask from `randn`, which keeps about half
of the units whatever `p` is; here the mask is Bernoulli(1 - p) from `rand`.
"""

from __future__ import annotations

import torch


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Row-wise log softmax: `x - logsumexp(x)`, with the row max subtracted before `exp`."""
    shifted = logits - logits.max(dim=1, keepdim=True).values
    return shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Row-wise probabilities; finite for any finite logits."""
    return torch.exp(log_softmax(logits))


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of `labels` (int64) under softmax(`logits`)."""
    picked = log_softmax(logits).gather(1, labels.unsqueeze(1))
    return -picked.mean()


def relu(x: torch.Tensor) -> torch.Tensor:
    """max(x, 0)."""
    return torch.clamp(x, min=0.0)


def dropout(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero each element with probability `p`, scale the kept ones by 1/(1-p) (inverted dropout).

    The scaling keeps the expected value of every unit, so evaluation needs no rescaling.
    p=0 returns `x` itself; p=1 returns zeros (1/(1-p) would divide by zero).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must lie in [0, 1], got {p}")
    if p == 0.0:
        return x
    if p == 1.0:
        return torch.zeros_like(x)
    keep = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device) >= p
    return x * keep / (1.0 - p)


def uniform_parameter(fan_in: int, shape: tuple[int, ...], generator: torch.Generator | None
                      ) -> torch.nn.Parameter:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): the same init `nn.Linear` uses, so twins compare."""
    bound = fan_in ** -0.5
    values = (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound
    return torch.nn.Parameter(values)


class LinearScratch(torch.nn.Module):
    """x @ W + b with own parameters."""

    def __init__(self, n_in: int, n_out: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.weight = uniform_parameter(n_in, (n_in, n_out), generator)
        self.bias = uniform_parameter(n_in, (n_out,), generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


class SoftmaxRegressionScratch(torch.nn.Module):
    """Softmax regression: one linear layer producing logits (the loss applies the softmax)."""

    def __init__(self, n_in: int, n_classes: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.linear = LinearScratch(n_in, n_classes, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class MLPScratch(torch.nn.Module):
    """ReLU hidden layers, each optionally followed by own dropout.

    Dropout acts only while `self.training` is true, so `model.eval()` switches it off exactly
    as it does for `nn.Dropout`.
    """

    def __init__(self, n_in: int, hidden: tuple[int, ...], n_classes: int,
                 dropout_rates: tuple[float, ...] = (),
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if dropout_rates and len(dropout_rates) != len(hidden):
            raise ValueError("one dropout rate per hidden layer")
        sizes = (n_in, *hidden, n_classes)
        self.layers = torch.nn.ModuleList(LinearScratch(a, b, generator)
                                          for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.dropout_rates = tuple(dropout_rates) or (0.0,) * len(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for layer, p in zip(self.layers[:-1], self.dropout_rates, strict=True):
            h = relu(layer(h))
            if self.training:
                h = dropout(h, p)
        return self.layers[-1](h)
