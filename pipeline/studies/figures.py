"""PNG pictures of the three studies (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.figures import plt, save_figure

from pipeline.studies.linreg import LinregFit
from pipeline.studies.weight_decay import DecayRun


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


def plot_weight_decay(runs: Sequence[DecayRun], path: Path) -> None:
    """One panel per lambda: train and test loss, explicit penalty vs optimizer weight_decay."""
    lambdas = sorted({r.lam for r in runs})
    fig, axes = plt.subplots(1, len(lambdas), figsize=(4.2 * len(lambdas), 3.8), dpi=120,
                             sharey=True, squeeze=False)
    for ax, lam in zip(axes[0], lambdas):
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


def plot_stability(grad_norms: Mapping[str, Sequence[float]], product_norms: Sequence[float],
                   path: Path) -> None:
    """Left: weight-gradient norm per layer per (activation, init). Right: norm of products."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    for name, norms in grad_norms.items():
        left.semilogy(range(1, len(norms) + 1), norms, "-o", ms=3, label=name)
    left.set_xlabel("layer (1 = input side)")
    left.set_ylabel("||dL/dW||")
    left.set_title("Gradient norm per layer of a deep MLP")
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize=7)
    right.semilogy(range(1, len(product_norms) + 1), product_norms, "-", color="tab:red")
    right.set_xlabel("number of random matrices multiplied")
    right.set_ylabel("Frobenius norm of the product")
    right.set_title(f"Product of N(0,1) matrices: {product_norms[-1]:.3g} after "
                    f"{len(product_norms)}")
    right.grid(alpha=0.3, which="both")
    save_figure(fig, path)
