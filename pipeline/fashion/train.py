"""Training from in-memory tensors: the whole split is one float tensor, batches are slices.

The book's loop pays, per sample and per epoch, for a PIL-free but still per-sample
`ToTensor` inside a multi-worker DataLoader, which on a small machine costs far more than the
arithmetic of an epoch (docs/results/fashion-speed.md). Indexing a pre-converted tensor with a
shuffled permutation costs next to nothing, so an epoch here is close to the arithmetic.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.common.console import progress_bar
from pipeline.common.io import atomic_path
from pipeline.fashion.models import Classifier
from pipeline.fashion.optim import OptimizerName, ScheduleName, build_optimizer, scheduled_lr, set_learning_rate

log = logging.getLogger(__name__)

EVAL_BATCH = 4096


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    optimizer: OptimizerName
    lr: float
    momentum: float
    weight_decay: float
    schedule: ScheduleName


@dataclass(frozen=True)
class EpochStats:
    """One epoch: loss and accuracy over its training minibatches, test accuracy after it."""

    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float  # the training pass only, not the evaluation


# The committed files hold what the same commit computes again on another machine; an epoch's
# seconds are not that, so they go to MLflow only (pipeline/stages/train_fashion.py).
TIMING = ("seconds",)


def write_epoch_stats(history: Sequence[EpochStats], path: Path) -> None:
    """One CSV row per epoch, without its time: what `dvc plots` draws."""
    fields = [f.name for f in dataclasses.fields(EpochStats) if f.name not in TIMING]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(dataclasses.asdict(s) for s in history)


def summarize(history: Sequence[EpochStats]) -> dict[str, float]:
    """Final-epoch loss and accuracies."""
    final = history[-1]
    return {"test_accuracy": final.test_accuracy, "train_accuracy": final.train_accuracy,
            "train_loss": final.train_loss}


def mean_epoch_seconds(history: Sequence[EpochStats]) -> float:
    """The mean seconds of a training pass (evaluation excluded), for MLflow."""
    return sum(s.seconds for s in history) / len(history)


def train_classifier(clf: Classifier, x_train: torch.Tensor, y_train: torch.Tensor,
                     x_test: torch.Tensor, y_test: torch.Tensor, settings: TrainSettings,
                     generator: torch.Generator, progress: bool = True,
                     device: torch.device | None = None) -> list[EpochStats]:
    """Train `clf.model` in place on `device` (default: CPU); return per-epoch statistics.

    The model and all four tensors move to the device once and stay there for the whole run;
    only the per-epoch statistics come back. Minibatches are rows picked by a shuffled
    permutation drawn from the CPU `generator`, so the order is reproducible, the same on
    every device, and independent of any other use of the global RNG.
    """
    device = device or torch.device("cpu")
    model = clf.model.to(device)
    x_train, y_train, x_test, y_test = (t.to(device) for t in (x_train, y_train, x_test, y_test))
    optimizer = build_optimizer(settings.optimizer, model.parameters(), settings.lr,
                                settings.momentum, settings.weight_decay, clf.scratch)
    n = len(x_train)
    batches_per_epoch = -(-n // settings.batch_size)
    total_steps = settings.epochs * batches_per_epoch
    history: list[EpochStats] = []
    step = 0
    with progress_bar(total=total_steps, desc=clf.name, unit="batch", disable=not progress,
              mininterval=0.5) as bar:
        for epoch in range(1, settings.epochs + 1):
            model.train()
            start = time.perf_counter()
            order = torch.randperm(n, generator=generator).to(device)
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            for first in range(0, n, settings.batch_size):
                idx = order[first:first + settings.batch_size]
                xb, yb = x_train[idx], y_train[idx]
                set_learning_rate(optimizer, scheduled_lr(settings.schedule, settings.lr, step,
                                                          total_steps))
                logits = model(xb)
                loss = clf.loss(logits, yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                with torch.no_grad():
                    loss_sum += loss.detach() * len(idx)
                    correct += (logits.argmax(dim=1) == yb).sum()
                bar.update(1)
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # kernels run asynchronously: time them finished
            seconds = time.perf_counter() - start
            stats = EpochStats(epoch, float(loss_sum) / n, int(correct) / n,
                               evaluate_accuracy(model, x_test, y_test), seconds)
            history.append(stats)
            bar.set_postfix(loss=f"{stats.train_loss:.3f}", train=f"{stats.train_accuracy:.3f}",
                            test=f"{stats.test_accuracy:.3f}")
            log.debug("%s epoch %d: %s", clf.name, epoch, stats)
    return history


@torch.no_grad()
def predict_labels(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Predicted class per row (on the CPU), in eval mode (dropout off); restores the mode.

    `x` moves to the model's device in evaluation batches.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i:i + EVAL_BATCH].to(device)).argmax(dim=1).cpu()
                          for i in range(0, len(x), EVAL_BATCH)])
    finally:
        model.train(was_training)


def evaluate_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows whose predicted class equals the label."""
    return float((predict_labels(model, x) == y.cpu()).float().mean())
