"""`kpipe runs`: past CV runs from MLflow as a table, best first."""

from __future__ import annotations

import pandas as pd

from pipeline.common.paths import ProjectPaths
from pipeline.common.tracking import HOUSE_PRICES_EXPERIMENT, tracking_uri

SCORE, SPREAD = "metrics.log_rmse_mean", "metrics.log_rmse_std"


def cv_runs(paths: ProjectPaths, experiment: str = HOUSE_PRICES_EXPERIMENT) -> pd.DataFrame:
    """Parent CV runs (not their fold children), sorted by CV log-RMSE."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(paths))
    if mlflow.get_experiment_by_name(experiment) is None:
        return pd.DataFrame()
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string="tags.stage = 'cv'",
                              order_by=[f"{SCORE} ASC"], output_format="pandas")
    return runs


def runs_table(runs: pd.DataFrame, limit: int = 20) -> pd.DataFrame:
    """Run id, date, CV mean/std and only the params that differ between runs."""
    if runs.empty:
        return runs
    params = [c for c in runs.columns if c.startswith("params.")]
    differing = [c for c in params if runs[c].astype(str).nunique(dropna=False) > 1]
    table = pd.DataFrame({
        "run": runs["run_id"].str[:8],
        "date": pd.to_datetime(runs["start_time"]).dt.strftime("%Y-%m-%d %H:%M"),
        "cv_mean": runs[SCORE].round(4),
        "cv_std": runs[SPREAD].round(4),
    })
    for column in differing:
        table[column.removeprefix("params.")] = runs[column]
    return table.sort_values("cv_mean", na_position="last").head(limit).reset_index(drop=True)
