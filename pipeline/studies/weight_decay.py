"""Weight decay on the book's deliberately overfit regression (D2L 3.7).

20 training rows and 200 features: without a penalty the weights fit the noise and the
test loss stays high. The L2 penalty is applied two ways, explicitly in the loss and as
the optimizer's `weight_decay`; with lambda/2 * ||w||^2 in the loss the two give the same
gradient, so their curves should coincide, which is the check that both are wired right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from pipeline.common.figures import plt, save_figure
from pipeline.studies.linreg import squared_loss

PenaltyMode = Literal["penalty", "optimizer"]


@dataclass(frozen=True)
class RegressionSplit:
    x: torch.Tensor
    y: torch.Tensor


@dataclass(frozen=True)
class DecayRun:
    lam: float
    mode: PenaltyMode
    train_losses: list[float]
    test_losses: list[float]
    w_norm: float

    @property
    def test_loss(self) -> float:
        return self.test_losses[-1]


def make_high_dim_data(train_rows: int, test_rows: int, features: int, noise: float,
                       generator: torch.Generator) -> tuple[RegressionSplit, RegressionSplit]:
    """y = 0.05 + sum_i 0.01 x_i + N(0, noise^2), x ~ N(0, 1)."""
    def split(rows: int) -> RegressionSplit:
        x = torch.randn(rows, features, generator=generator)
        y = 0.05 + 0.01 * x.sum(dim=1, keepdim=True) + noise * torch.randn(rows, 1,
                                                                            generator=generator)
        return RegressionSplit(x, y)
    return split(train_rows), split(test_rows)


def train_with_decay(train: RegressionSplit, test: RegressionSplit, lam: float,
                     mode: PenaltyMode, epochs: int, batch_size: int, lr: float,
                     seed: int, device: torch.device = torch.device("cpu")) -> DecayRun:
    """Linear regression by minibatch SGD with an L2 penalty of strength `lam` on w (not b).

    `seed` fixes the initial weights and the batch order, so every (lam, mode) pair starts
    from the same point and differs only in the penalty.
    """
    generator = torch.Generator().manual_seed(seed)
    train, test = (RegressionSplit(s.x.to(device), s.y.to(device)) for s in (train, test))
    w = torch.randn(train.x.shape[1], 1, generator=generator).to(device).requires_grad_()
    b = torch.zeros(1, device=device, requires_grad=True)
    if mode == "optimizer":
        optimizer = torch.optim.SGD([{"params": [w], "weight_decay": lam},
                                     {"params": [b], "weight_decay": 0.0}], lr=lr)
    else:
        optimizer = torch.optim.SGD([w, b], lr=lr)
    train_losses, test_losses = [], []
    for _ in range(epochs):
        for idx in torch.randperm(len(train.x), generator=generator).split(batch_size):
            loss = squared_loss(train.x[idx] @ w + b, train.y[idx])
            if mode == "penalty":
                loss = loss + lam * (w ** 2).sum() / 2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            train_losses.append(float(squared_loss(train.x @ w + b, train.y)))
            test_losses.append(float(squared_loss(test.x @ w + b, test.y)))
    return DecayRun(lam, mode, train_losses, test_losses, float(w.detach().norm()))


def plot_weight_decay(runs: Sequence[DecayRun], path: Path) -> None:
    """One panel per lambda: train and test loss, explicit penalty vs optimizer weight_decay."""
    lambdas = sorted({r.lam for r in runs})
    fig, axes = plt.subplots(1, len(lambdas), figsize=(4.2 * len(lambdas), 3.8), dpi=120,
                             sharey=True, squeeze=False)
    for ax, lam in zip(axes[0], lambdas, strict=True):
        for run in (r for r in runs if r.lam == lam):
            style = "-" if run.mode == "penalty" else ":"
            epochs = range(1, len(run.train_losses) + 1)
            ax.semilogy(epochs, run.train_losses, style, color="tab:blue", lw=2 if
                        run.mode == "penalty" else 3, label=f"train ({run.mode})")
            ax.semilogy(epochs, run.test_losses, style, color="tab:orange", lw=2 if
                        run.mode == "penalty" else 3, label=f"test ({run.mode})")
        first = next(r for r in runs if r.lam == lam)
        ax.set_title(f"lambda={lam:g}: ||w||={first.w_norm:.3f}, test loss {first.test_loss:.3g}",
                     fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("mean squared loss / 2")
    axes[0][0].legend(fontsize=7)
    save_figure(fig, path)
