"""Numerical stability (D2L 5.4): where gradients vanish or explode, and why init matters.

Two demonstrations. A product of random matrices grows (or shrinks) geometrically with its
length, which is what backpropagation through many layers computes. And the per-layer
weight-gradient norms of a deep MLP: with sigmoid the gradient shrinks towards the input
layers (its derivative is at most 1/4), with N(0, 1) weights it explodes, while Xavier
(or torch's default fan-in scaling) with ReLU keeps it in range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from pipeline.common.figures import plt, save_figure

Activation = Literal["sigmoid", "relu"]
Init = Literal["default", "xavier", "normal"]
ACTIVATIONS: tuple[Activation, ...] = ("sigmoid", "relu")
INITS: tuple[Init, ...] = ("default", "xavier", "normal")


def matrix_product_norms(count: int, size: int, generator: torch.Generator,
                         device: torch.device = torch.device("cpu")) -> list[float]:
    """Frobenius norm of M_1 @ ... @ M_k for k = 1..count, M_i ~ N(0, 1), in float64."""
    product = torch.eye(size, dtype=torch.float64, device=device)
    norms = []
    for _ in range(count):
        product = product @ torch.randn(size, size, generator=generator, dtype=torch.float64).to(device)
        norms.append(float(product.norm()))
    return norms


def build_deep_mlp(depth: int, width: int, activation: Activation, init: Init,
                   generator: torch.Generator) -> nn.Sequential:
    """`depth` Linear(width, width) layers, each followed by the activation."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        linear = nn.Linear(width, width)
        with torch.no_grad():
            if init == "xavier":
                bound = (6.0 / (2 * width)) ** 0.5
                linear.weight.copy_((torch.rand(width, width, generator=generator) * 2 - 1)
                                    * bound)
                linear.bias.zero_()
            elif init == "normal":
                linear.weight.copy_(torch.randn(width, width, generator=generator))
                linear.bias.zero_()
            else:  # torch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from `generator`
                bound = width ** -0.5
                linear.weight.copy_((torch.rand(width, width, generator=generator) * 2 - 1)
                                    * bound)
                linear.bias.copy_((torch.rand(width, generator=generator) * 2 - 1) * bound)
        layers += [linear, nn.Sigmoid() if activation == "sigmoid" else nn.ReLU()]
    return nn.Sequential(*layers)


def layer_gradient_norms(depth: int, width: int, batch_size: int, activation: Activation,
                         init: Init, generator: torch.Generator,
                         device: torch.device = torch.device("cpu")) -> list[float]:
    """Norm of d(loss)/d(W_l) for layers l = 1 (input side) .. depth, loss = mean output^2."""
    net = build_deep_mlp(depth, width, activation, init, generator).to(device)
    x = torch.randn(batch_size, width, generator=generator).to(device)
    loss = (net(x) ** 2).mean()
    loss.backward()
    return [float(m.weight.grad.norm()) for m in net if isinstance(m, nn.Linear)]


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
