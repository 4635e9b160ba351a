"""`kpipe runs`: a project's CV runs in MLflow as one table, best first, for any competition (its
experiment, its metric's columns and direction). pandas and MLflow only: listing runs imports no
torch and no model code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.common.paths import ProjectPaths
from pipeline.common.tracking import COMMIT_TAG, DVC_EXPERIMENT_TAG, tracking_uri


def cv_runs(paths: ProjectPaths, experiment: str, score: str, ascending: bool) -> pd.DataFrame:
    """Parent CV runs (not their fold children), best CV score first (any competition's: its
    experiment, score column and direction)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(paths))
    if mlflow.get_experiment_by_name(experiment) is None:
        return pd.DataFrame()
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string="tags.stage = 'cv'",
                              order_by=[f"{score} {'ASC' if ascending else 'DESC'}"], output_format="pandas")
    return runs


def runs_table(runs: pd.DataFrame, limit: int, score: str, spread: str, ascending: bool) -> pd.DataFrame:
    """Run id, date, commit, DVC experiment, CV mean/std, the public score (once a submission of the
    run's model was scored) and only the params that differ between runs."""
    if runs.empty:
        return runs
    params = [c for c in runs.columns if c.startswith("params.")]
    differing = [c for c in params if runs[c].astype(str).nunique(dropna=False) > 1]
    table = pd.DataFrame({
        "run": runs["run_id"].str[:8],
        "date": pd.to_datetime(runs["start_time"]).dt.strftime("%Y-%m-%d %H:%M"),
        "commit": _tag(runs, COMMIT_TAG),
        "dvc_exp": _tag(runs, DVC_EXPERIMENT_TAG),
        "cv_mean": runs[score].round(4),
        "cv_std": runs[spread].round(4),
        # Kaggle's score of a submission made from this CV's model (pipeline/submissions/scores.py).
        "public_score": _metric(runs, "public_score").round(5),
    })
    for column in differing:
        table[column.removeprefix("params.")] = runs[column]
    return table.sort_values("cv_mean", ascending=ascending, na_position="last").head(limit).reset_index(drop=True)


def _tag(runs: pd.DataFrame, tag: str) -> pd.Series:
    """A tag's column, "-" where a run lacks it (older runs; runs outside `dvc exp run`)."""
    column = f"tags.{tag}"
    return runs[column].fillna("-") if column in runs.columns else pd.Series("-", index=runs.index)


def _metric(runs: pd.DataFrame, name: str) -> pd.Series:
    """A metric's column, NaN where a run lacks it."""
    column = f"metrics.{name}"
    return runs[column] if column in runs.columns else pd.Series(np.nan, index=runs.index)
