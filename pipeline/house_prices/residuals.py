"""Where the model is wrong: the out-of-fold errors by house and by group, before choosing the
next feature.

Every number comes from the `cv` stage's out-of-fold predictions, so each house is priced by
models that never saw it. Errors are in log space, predicted minus actual (positive: priced
too high), the scale of Kaggle's score: a group's `log_rmse` is what the score would be on
that group alone, `bias` its mean error, and `share` its part of the total squared error
(the groups that move the score most are those with a large share, not only a large error).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.house_prices.schemas import ID, TARGET

PREDICTION = "oof_prediction"
MEMBER_PREFIX = "oof_member"
PRICE_BIN = "price_decile"


def residual_frame(oof: pd.DataFrame, train: pd.DataFrame, columns: list[str], price_bins: int) -> pd.DataFrame:
    """One row per training house: id, price, prediction, log error (and each member's), the
    `columns` asked for, and its price bin (1 = cheapest tenth for 10 bins)."""
    missing = [c for c in columns if c not in train.columns]
    if missing:
        raise KeyError(f"residuals: unknown training column(s) {', '.join(missing)}")
    frame = oof.merge(train[[ID, *columns]], on=ID, how="left", validate="one_to_one")
    log_actual = np.log(frame[TARGET].to_numpy(dtype=np.float64))
    out = pd.DataFrame({ID: frame[ID], TARGET: frame[TARGET], "predicted": frame[PREDICTION].round(0),
                        "log_error": np.log(frame[PREDICTION].to_numpy(dtype=np.float64)) - log_actual})
    for column in (c for c in oof.columns if c.startswith(MEMBER_PREFIX)):
        member = column.removeprefix("oof_")
        out[f"{member}_log_error"] = np.log(frame[column].to_numpy(dtype=np.float64)) - log_actual
    out[PRICE_BIN] = pd.qcut(frame[TARGET], price_bins, labels=False) + 1
    for column in columns:
        out[column] = frame[column]
    return out


def worst_houses(residuals: pd.DataFrame, n: int) -> pd.DataFrame:
    """The `n` houses with the largest absolute log error, worst first."""
    order = residuals["log_error"].abs().sort_values(ascending=False, kind="stable").index
    return residuals.loc[order[:n]].reset_index(drop=True)


def error_by(residuals: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per value of `column`: houses, log-RMSE, bias (mean log error) and share of the total
    squared error, largest share first."""
    squared = residuals["log_error"] ** 2
    groups = residuals.assign(squared=squared).groupby(column, dropna=False)
    table = pd.DataFrame({"houses": groups.size(), "log_rmse": np.sqrt(groups["squared"].mean()),
                          "bias": groups["log_error"].mean(), "share": groups["squared"].sum() / squared.sum()})
    if column == PRICE_BIN:
        prices = groups[TARGET]
        table["price_low"], table["price_high"] = prices.min(), prices.max()
    return table.sort_values("share", ascending=False, kind="stable").reset_index()


def summary(residuals: pd.DataFrame, worst: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> dict[str, object]:
    """The report's numbers: the overall score (`log_rmse_all`: cv.json's `log_rmse_oof`, under a
    name of its own so that DVC's tables keep both unprefixed), how much of it the worst houses
    carry, and each breakdown's largest contributor (`top_shares`, a list of records: DVC's tables
    show only the top-level numbers)."""
    squared = residuals["log_error"] ** 2
    metrics: dict[str, object] = {
        "log_rmse_all": float(np.sqrt(squared.mean())),
        "bias": float(residuals["log_error"].mean()),
        "worst_houses": len(worst),
        "worst_houses_share": float((worst["log_error"] ** 2).sum() / squared.sum()),
        "log_rmse_without_worst": float(np.sqrt(squared.drop(residuals.index[residuals[ID].isin(worst[ID])]).mean())),
    }
    metrics["top_shares"] = []
    for column, table in tables.items():
        top = table.iloc[0]
        metrics["top_shares"].append({"by": column, "value": _plain(top[column]), "share": float(top["share"]),
                                      "log_rmse": float(top["log_rmse"]), "houses": int(top["houses"])})
    return metrics


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def plot_residuals(residuals: pd.DataFrame, worst: pd.DataFrame, tables: dict[str, pd.DataFrame], path: Path) -> None:
    """Predicted vs actual log price (worst houses marked with their ids), error vs price, and
    the log-RMSE of each group of each breakdown."""
    from pipeline.common.figures import plt, save_figure

    panels = 2 + len(tables)
    cols = 3
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), dpi=100, squeeze=False)
    axes = axes.ravel()
    actual = np.log(residuals[TARGET])
    predicted = actual + residuals["log_error"]
    is_worst = residuals[ID].isin(worst[ID])
    ax = axes[0]
    ax.scatter(actual[~is_worst], predicted[~is_worst], s=6, alpha=0.4, color="tab:blue", label="houses")
    ax.scatter(actual[is_worst], predicted[is_worst], s=14, color="tab:red", label=f"worst {len(worst)}")
    for house_id, x, y in zip(residuals[ID][is_worst], actual[is_worst], predicted[is_worst], strict=True):
        ax.annotate(str(house_id), (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="grey", lw=1, ls="--")
    ax.set(xlabel="log actual price", ylabel="log predicted price (out of fold)", title="predicted vs actual")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.scatter(actual, residuals["log_error"], s=6, alpha=0.4, color=np.where(is_worst, "tab:red", "tab:blue"))
    ax.axhline(0, color="grey", lw=1, ls="--")
    ax.set(xlabel="log actual price", ylabel="log error (predicted - actual)", title="error vs price")
    for ax, (column, table) in zip(axes[2:], tables.items(), strict=False):
        ordered = table.sort_values(column, kind="stable") if column in (PRICE_BIN, "OverallQual") \
            else table.sort_values("log_rmse", ascending=False, kind="stable")
        labels = [str(_plain(v)) for v in ordered[column]]
        ax.bar(range(len(ordered)), ordered["log_rmse"], color="tab:orange")
        ax.set_xticks(range(len(ordered)), labels, rotation=90 if len(ordered) > 10 else 0, fontsize=7)
        ax.axhline(float(np.sqrt((residuals["log_error"] ** 2).mean())), color="grey", lw=1, ls=":", label="all")
        ax.set(ylabel="log-RMSE", title=f"error by {column}")
        ax.legend(fontsize=8)
    for ax in axes[panels:]:
        ax.set_visible(False)
    save_figure(fig, path)
