"""Kaggle's scores back into MLflow, beside the CV they are compared with.

A scored submission's public (and, once Kaggle reveals it, private) score lands as the metrics
`public_score` / `private_score` on the run that trained the submitted model and on the CV run
it was trained after (so `mlflow ui` and `kpipe runs` show them in the CV run's row), stamped
with the submission's date: a run submitted twice keeps both values in its metric history and
shows the latest. The submission ref and scores also become tags of the run and of the
registered model version, so the model registry says which version scored what.

As everywhere in tracking, a failure is one warning: the score is in the submission log whatever
MLflow says, and `kpipe submissions` tries again for rows not yet recorded.
"""

from __future__ import annotations

import pandas as pd

from pipeline.common.paths import ProjectPaths
from pipeline.common.tracking import annotate_run, tag_model_version
from pipeline.submissions.log import LogRow

PUBLIC, PRIVATE = "public_score", "private_score"
REF_TAG = "kaggle.submission_ref"


def score_metrics(row: LogRow) -> dict[str, float]:
    return {name: value for name, value in ((PUBLIC, row.public_score), (PRIVATE, row.private_score))
            if value is not None}


def record_scores(paths: ProjectPaths, row: LogRow) -> list[str]:
    """Log `row`'s scores to its runs and model version; what was written to, for one line of output."""
    metrics = score_metrics(row)
    if not metrics:
        return []
    when = int(pd.Timestamp(row.date).timestamp() * 1000)
    tags = {REF_TAG: str(row.ref), **{f"kaggle.{k}": f"{v:.5f}" for k, v in metrics.items()}}
    written = []
    for label, run_id in (("training run", row.mlflow_run_id), ("CV run", row.cv_run_id)):
        if run_id and annotate_run(paths, run_id, metrics, tags, when):
            written.append(f"{label} {run_id[:8]}")
    if row.model_name and row.model_version and tag_model_version(paths, row.model_name, row.model_version, tags):
        written.append(f"model {row.model_name} version {row.model_version}")
    return written
