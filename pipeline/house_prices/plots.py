"""Per-epoch curves of every model that was trained, as DVC plot files and as one picture.

An ensemble's score is that of its blended out-of-fold predictions, which exist only after
training: there is no blended curve per epoch. So the files and the picture show each member
under its own name (`member0-mlp`, ...), and the picture's title gives the blend's score and
says that the lines are the members'. A single model is one line pair named by its kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.common.io import atomic_dir
from pipeline.house_prices.training import History


def curves_frame(history: History) -> pd.DataFrame:
    """One row per epoch: mean train/valid log-RMSE over folds, then one column per fold."""
    epochs = np.arange(1, history.train.shape[0] + 1)
    frame = pd.DataFrame({"epoch": epochs, "train_log_rmse": np.nanmean(history.train, axis=1)})
    if not np.isnan(history.valid).all():
        frame["valid_log_rmse"] = np.nanmean(history.valid, axis=1)
        for f in range(history.valid.shape[1]):
            frame[f"train_fold{f + 1}"] = history.train[:, f]
            frame[f"valid_fold{f + 1}"] = history.valid[:, f]
    return frame


def write_curves(histories: Mapping[str, History], folder: Path, png: Path, title: str) -> None:
    """`<folder>/<model>.csv` per model (DVC draws the folder), and one picture of them all."""
    frames = {name: curves_frame(history) for name, history in histories.items()}
    with atomic_dir(folder) as tmp:
        for name, frame in frames.items():
            frame.to_csv(tmp / f"{name}.csv", index=False)
    plot_models(frames, png, title)


def plot_models(frames: Mapping[str, pd.DataFrame], png: Path, title: str) -> None:
    """Each model's mean valid log-RMSE per epoch (solid) and train (dashed), log scale, with
    its best validation epoch marked and named; train only where there are no valid rows."""
    from pipeline.common.figures import plt, save_figure

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, frame) in enumerate(frames.items()):
        color = colors[i % len(colors)]
        has_valid = "valid_log_rmse" in frame
        ax.plot(frame["epoch"], frame["train_log_rmse"], color=color, lw=1.2 if has_valid else 1.8,
                ls="--" if has_valid else "-", alpha=0.6 if has_valid else 1.0,
                label=f"{name} train" if has_valid else name)
        if has_valid:
            best = int(frame["valid_log_rmse"].idxmin())
            ax.plot(frame["epoch"], frame["valid_log_rmse"], color=color, lw=1.8,
                    label=f"{name} valid (best {frame['valid_log_rmse'][best]:.4f} @ {frame['epoch'][best]})")
            ax.scatter([frame["epoch"][best]], [frame["valid_log_rmse"][best]], color=color, zorder=3,
                       edgecolors="black", linewidths=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("log-RMSE (mean over folds)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(frames) > 3 else 1)
    save_figure(fig, png)

