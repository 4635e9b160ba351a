"""Optimizers and learning-rate schedules, scratch and torch, behind one small interface.

Scratch models get own update rules (the book's `sgd` generalized with momentum and Adam);
torch models get `torch.optim`. Both expose `zero_grad()`, `step()` and a settable
learning rate, so the training loop and the schedule treat them alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal, Protocol

import torch

OptimizerName = Literal["sgd", "sgd_momentum", "adam"]
ScheduleName = Literal["constant", "cosine"]


class Optimizer(Protocol):
    def zero_grad(self) -> None: ...
    def step(self) -> None: ...


class ScratchSGD:
    """Minibatch SGD: p -= lr * (grad + wd * p), with optional heavy-ball momentum.

    The gradient is that of a *mean* loss over the minibatch, so no division by the batch
    size here (the book's `sgd` divides because its loss is summed).
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        self.params = list(params)
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad if not self.weight_decay else p.grad + self.weight_decay * p
            if self.momentum:
                buf = self.buffers[i]
                if buf is None:
                    buf = self.buffers[i] = g.clone()
                else:
                    buf.mul_(self.momentum).add_(g)
                g = buf
            p.sub_(self.lr * g)


class ScratchAdam:
    """Adam (Kingma and Ba) with bias correction and L2 weight decay added to the gradient."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float]
                 = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.params = list(params)
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        c1 = 1.0 - self.beta1 ** self.t
        c2 = 1.0 - self.beta2 ** self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            g = p.grad if not self.weight_decay else p.grad + self.weight_decay * p
            m.mul_(self.beta1).add_(g, alpha=1.0 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1.0 - self.beta2)
            denom = (v / c2).sqrt_().add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lr / c1)


def build_optimizer(name: OptimizerName, params: Iterable[torch.nn.Parameter], lr: float,
                    momentum: float, weight_decay: float, scratch: bool) -> Optimizer:
    """The named optimizer: own implementation for scratch models, torch.optim otherwise."""
    params = list(params)
    if name == "adam":
        if scratch:
            return ScratchAdam(params, lr, weight_decay=weight_decay)
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    m = momentum if name == "sgd_momentum" else 0.0
    if scratch:
        return ScratchSGD(params, lr, momentum=m, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=m, weight_decay=weight_decay)


def set_learning_rate(optimizer: Optimizer, lr: float) -> None:
    """Works for both torch optimizers (param_groups) and the scratch ones (`lr`)."""
    groups = getattr(optimizer, "param_groups", None)
    if groups is not None:
        for group in groups:
            group["lr"] = lr
    else:
        optimizer.lr = lr  # type: ignore[attr-defined]


def scheduled_lr(schedule: ScheduleName, base_lr: float, step: int, total_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based) of `total_steps`.

    Cosine decays from `base_lr` to 0 over the whole run: the late small steps settle the
    weights, which removes most of the epoch-to-epoch jitter of constant-rate SGD.
    """
    if schedule == "constant":
        return base_lr
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * step / max(total_steps, 1)))
