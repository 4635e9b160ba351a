"""Per-epoch curves as DVC plot files (CSV) and as pictures (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.common.io import write_frame
from pipeline.house_prices.training import History


def curves_frame(history: History) -> pd.DataFrame:
    """One row per epoch: mean train/valid log-RMSE over models, then one column per fold."""
    epochs = np.arange(1, history.train.shape[0] + 1)
    frame = pd.DataFrame({"epoch": epochs, "train_log_rmse": np.nanmean(history.train, axis=1)})
    if not np.isnan(history.valid).all():
        frame["valid_log_rmse"] = np.nanmean(history.valid, axis=1)
        for f in range(history.valid.shape[1]):
            frame[f"train_fold{f + 1}"] = history.train[:, f]
            frame[f"valid_fold{f + 1}"] = history.valid[:, f]
    return frame


def write_history(history: History, csv_path: Path, png_path: Path | None, title: str) -> None:
    """The curves as a DVC plot file (CSV) and, given `png_path`, as a picture."""
    frame = curves_frame(history)
    write_frame(frame, csv_path)
    if png_path is not None:
        plot_curves(frame, png_path, title)


def plot_curves(frame: pd.DataFrame, png_path: Path, title: str) -> None:
    """The book's picture: train and valid log-RMSE per epoch (log scale), folds faint."""
    from pipeline.common.figures import plt, save_figure

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for col in frame.columns:
        if col.startswith(("train_fold", "valid_fold")):
            ax.plot(frame["epoch"], frame[col], lw=0.7, alpha=0.25,
                    color="tab:blue" if col.startswith("train") else "tab:orange")
    ax.plot(frame["epoch"], frame["train_log_rmse"], color="tab:blue", lw=2, label="train (mean)")
    if "valid_log_rmse" in frame:
        ax.plot(frame["epoch"], frame["valid_log_rmse"], color="tab:orange", lw=2, label="valid (mean)")
        best = frame["valid_log_rmse"].idxmin()
        ax.axhline(frame["valid_log_rmse"].iloc[-1], color="grey", ls=":", lw=1)
        ax.scatter([frame["epoch"][best]], [frame["valid_log_rmse"][best]], color="tab:red", zorder=3,
                   label=f"best valid {frame['valid_log_rmse'][best]:.4f} @ {frame['epoch'][best]}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("log-RMSE")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save_figure(fig, png_path)
