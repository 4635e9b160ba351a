"""Where a competition project's model is wrong: the out-of-fold loss by row and by group.

Every number comes from the `cv` stage's out-of-fold predictions, so each row is predicted by
models that never saw it. A row's loss is the one members fit: the squared error in fit space
(of log1p(target) for log metrics) for a regression, the log-loss of the true class for a
classification, whatever the competition's metric, because it is defined on every single row
(AUC is not) and its groups add up: `share` is a group's part of the total loss, so the groups
that move the score most stand out, not only those with a large mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.tabular.modeling import Problem
from pipeline.tabular.validation import json_scalar

TARGET_BIN = "target_decile"
EPS = 1e-15


def residual_frame(problem: Problem, oof: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """One row per training row: id, target, prediction, loss, and the group columns."""
    competition = problem.competition
    frame = oof.merge(train.drop(columns=[competition.target]), on=competition.id_column, how="left",
                      validate="one_to_one")
    y = problem.fit_target(frame)
    if problem.task.kind == "regression":
        predicted = frame["oof"].to_numpy(dtype=np.float64)
        fit = np.log1p(np.clip(predicted, 0, None)) if problem.metric.fits_log else predicted
        error = fit - y
        out = frame.assign(predicted=predicted, error=error, loss=error ** 2)
        out[TARGET_BIN] = pd.qcut(frame[competition.target], 10, labels=False, duplicates="drop") + 1
        return out
    columns = [c for c in frame.columns if c.startswith("oof_p_")]
    p = frame[columns].to_numpy(dtype=np.float64)
    if problem.task.kind == "binary":
        p = np.column_stack([1 - p[:, 0], p[:, 0]])
    true_p = np.clip(p[np.arange(len(y)), y], EPS, 1)
    return frame.assign(p_true=true_p, correct=np.argmax(p, axis=1) == y, loss=-np.log(true_p))


def group_columns(residuals: pd.DataFrame, problem: Problem, max_values: int) -> list[str]:
    """The columns worth a breakdown: text or whole-number columns with 2..max_values values."""
    skip = {problem.competition.id_column, "loss", "error", "predicted", "p_true", "correct", "oof"}
    chosen = [problem.competition.target] if problem.task.kind != "regression" else [TARGET_BIN]
    for column in residuals.columns:
        if column in skip or column in chosen or column.startswith("oof_"):
            continue
        if 2 <= residuals[column].nunique() <= max_values and not pd.api.types.is_float_dtype(residuals[column]):
            chosen.append(column)
    return chosen


def loss_by(residuals: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per value of `column`: rows, mean loss, its share of the total loss (largest first), and
    the bias (regression) or accuracy (classification)."""
    groups = residuals.groupby(column, dropna=False)
    table = pd.DataFrame({"rows": groups.size(), "mean_loss": groups["loss"].mean(),
                          "share": groups["loss"].sum() / residuals["loss"].sum()})
    if "error" in residuals:
        table["bias"] = groups["error"].mean()
    else:
        table["accuracy"] = groups["correct"].mean()
    return table.sort_values("share", ascending=False, kind="stable").reset_index()


def worst_rows(residuals: pd.DataFrame, n: int) -> pd.DataFrame:
    order = residuals["loss"].sort_values(ascending=False, kind="stable").index
    return residuals.loc[order[:n]].reset_index(drop=True)


def summary(residuals: pd.DataFrame, worst: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> dict[str, object]:
    total = float(residuals["loss"].sum())
    metrics: dict[str, object] = {"mean_loss": float(residuals["loss"].mean()), "worst_rows": len(worst),
                                  "worst_rows_share": float(worst["loss"].sum() / total) if total else 0.0}
    # Each breakdown's largest contributor, as a list of records: DVC's tables show only the top-level numbers.
    metrics["top_shares"] = []
    for column, table in tables.items():
        top = table.iloc[0]
        metrics["top_shares"].append({"by": column, "value": json_scalar(top[column]), "share": float(top["share"]),
                                      "rows": int(top["rows"])})
    return metrics


def plot_loss_by(tables: dict[str, pd.DataFrame], path: Path) -> None:
    """One bar chart of mean loss per group for each breakdown."""
    from pipeline.common.figures import plt, save_figure

    cols = min(3, max(1, len(tables)))
    rows = -(-max(1, len(tables)) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), dpi=100, squeeze=False)
    for ax, (column, table) in zip(axes.ravel(), tables.items(), strict=False):
        ax.bar(range(len(table)), table["mean_loss"], color="tab:orange")
        ax.set_xticks(range(len(table)), [str(v)[:16] for v in table[column]], rotation=90, fontsize=7)
        ax.set(ylabel="mean out-of-fold loss", title=f"loss by {column}")
    for ax in axes.ravel()[len(tables):]:
        ax.set_visible(False)
    save_figure(fig, path)
