"""The book's two pictures of a classifier, drawn to PNG with matplotlib's Agg backend.

Agg needs no display, so stages run the same under DVC, CI and ssh.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.common.figures import plt, save_figure
from pipeline.fashion.arrays import CLASS_NAMES
from pipeline.fashion.train import EpochStats


def plot_training_curves(history: Sequence[EpochStats], title: str, path: Path) -> None:
    """Train loss, train accuracy and test accuracy against epoch (the book's Animator)."""
    epochs = [s.epoch for s in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(epochs, [s.train_loss for s in history], "-o", ms=3, label="train loss")
    ax.plot(epochs, [s.train_accuracy for s in history], "--s", ms=3, label="train acc")
    ax.plot(epochs, [s.test_accuracy for s in history], "-.^", ms=3, label="test acc")
    ax.set_xlabel("epoch")
    ax.set_xlim(0.8, max(epochs) + 0.2)
    ax.grid(alpha=0.3)
    ax.legend(loc="center right")
    final = history[-1]
    ax.set_title(f"{title}: test acc {final.test_accuracy:.4f} after {final.epoch} epochs")
    save_figure(fig, path)


def plot_predictions(images: np.ndarray, true: np.ndarray, predicted: np.ndarray, title: str,
                     path: Path, columns: int = 6) -> None:
    """Test images with true and predicted labels (the book's `predict_ch3`); misses in red."""
    n = len(images)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.7 * columns, 2.0 * rows + 0.4), dpi=120,
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
        ok = true[i] == predicted[i]
        ax.set_title(f"true: {CLASS_NAMES[true[i]]}\npred: {CLASS_NAMES[predicted[i]]}",
                     fontsize=8, color="black" if ok else "crimson")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
