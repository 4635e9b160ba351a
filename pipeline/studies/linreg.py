"""Linear regression on synthetic data (D2L sections 3.2 and 3.3): can SGD recover the true w and b?

Both versions see the same data, the same initial weights and the same minibatch order, so
any difference between them is in the update code alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pipeline.common.figures import plt, save_figure


@dataclass(frozen=True)
class LinregFit:
    w: list[float]
    b: float
    epoch_losses: list[float]  # mean squared loss / 2 over all rows after each epoch


def make_linear_data(true_w: torch.Tensor, true_b: float, rows: int, noise: float,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """X ~ N(0, 1), y = X w + b + N(0, noise^2): the book's `synthetic_data`."""
    x = torch.randn(rows, len(true_w), generator=generator)
    y = x @ true_w + true_b + noise * torch.randn(rows, generator=generator)
    return x, y.reshape(-1, 1)


def squared_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean of (y_hat - y)^2 / 2, the book's loss."""
    return ((y_hat - y) ** 2 / 2).mean()


def fit_scratch(x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, lr: float,
                generator: torch.Generator, device: torch.device = torch.device("cpu")) -> LinregFit:
    """Own parameters, own model, own minibatch SGD step (on `device`; random draws on the CPU)."""
    init = torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
    x, y = x.to(device), y.to(device)
    w = (0.01 * torch.randn(x.shape[1], 1, generator=init)).to(device).requires_grad_()
    b = torch.zeros(1, device=device, requires_grad=True)
    losses = []
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=generator).split(batch_size):
            loss = squared_loss(x[idx] @ w + b, y[idx])
            loss.backward()
            with torch.no_grad():
                for p in (w, b):
                    p -= lr * p.grad
                    p.grad = None
        with torch.no_grad():
            losses.append(float(squared_loss(x @ w + b, y)))
    return LinregFit(w.detach().flatten().tolist(), float(b.detach()), losses)


def fit_nn(x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, lr: float,
           generator: torch.Generator, device: torch.device = torch.device("cpu")) -> LinregFit:
    """`nn.Linear`, `nn.MSELoss` (halved, as the book's) and `torch.optim.SGD`."""
    init = torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
    net = nn.Linear(x.shape[1], 1)
    with torch.no_grad():
        net.weight.copy_(0.01 * torch.randn(1, x.shape[1], generator=init))
        net.bias.zero_()
    net.to(device)
    x, y = x.to(device), y.to(device)
    mse = nn.MSELoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=generator).split(batch_size):
            loss = mse(net(x[idx]), y[idx]) / 2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            losses.append(float(mse(net(x), y) / 2))
    return LinregFit(net.weight.detach().flatten().tolist(), float(net.bias.detach()), losses)


def plot_linreg(fits: Mapping[str, LinregFit], true_w: Sequence[float], true_b: float,
                path: Path) -> None:
    """Loss per epoch (log scale) of each fit, with the recovered parameters in the legend."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, fit in fits.items():
        params = ", ".join(f"{v:.4f}" for v in fit.w)
        ax.semilogy(range(1, len(fit.epoch_losses) + 1), fit.epoch_losses, "-o", ms=4,
                    label=f"{name}: w=[{params}], b={fit.b:.4f}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean squared loss / 2")
    ax.set_title(f"Linear regression, true w={list(true_w)}, b={true_b}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_figure(fig, path)
