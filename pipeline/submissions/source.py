"""What made a submission file: the CV run, the training run, the registered model version, the
commit, the DVC experiment and the CV score, found in MLflow from the file's bytes alone.

Kaggle only ever sees bytes; to put its score back beside the run that made them, each stage
leaves a content address on its MLflow run, as a tag:

- `cv` tags its run with the SHA-1 of the CV metrics file it wrote (`cv.metrics_sha1`);
- `train` finds that run by the SHA-1 of the metrics file it read (`cv.run_id`, on its own
  run) and tags its run with the digest of the model folder it saved (`model.digest`);
- `predict` finds the training run by the digest of the model folder it loaded and tags it with
  the SHA-1 of the submission it wrote (`submission.sha1`); `kpipe predict --model-uri` tags the
  run of the model it used;
- `kpipe submit` finds the run by the SHA-1 of the file it sends, and reads the rest from it.

Tags, not files beside the outputs: the outputs stay the same bytes for the same inputs (a
forced retrain leaves dvc.lock unchanged), and a file whose bytes no stage wrote simply has no
source. Each lookup takes the newest run with the tag: two runs that made the same bytes are
equally their source. Tracking off, or a run not found: the source is None and the log row says
so. This module imports MLflow only inside its functions (through `tracking`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.common.io import sha1_of
from pipeline.common.paths import ProjectPaths
from pipeline.common.tracking import COMMIT_TAG, DVC_EXPERIMENT_TAG, annotate_run, newest_run, run_model_version

CV_METRICS_TAG = "cv.metrics_sha1"  # on a CV run: the SHA-1 of the metrics file it wrote
CV_RUN_ID_TAG = "cv.run_id"  # on a training run: the CV run it was trained after
MODEL_DIGEST_TAG = "model.digest"  # on a training run: the digest of the model folder it saved
SUBMISSION_TAG = "submission.sha1"  # on a training run: the SHA-1 of the last submission of its model


@dataclass(frozen=True)
class ModelSource:
    """Where a submitted model came from. Every field but the competition may be unknown (None)."""

    competition: str
    metric: str
    cv_mean: float | None = None
    cv_std: float | None = None
    experiment: str | None = None  # the MLflow experiment
    cv_run_id: str | None = None
    train_run_id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    commit: str | None = None
    dvc_exp: str | None = None


def cv_scores(cv: dict[str, Any], metric: str) -> dict[str, float]:
    """`<metric>_mean` and `<metric>_std` of a CV metrics file, as the training run logs them."""
    return {k: float(cv[k]) for k in (f"{metric}_mean", f"{metric}_std") if isinstance(cv.get(k), (int, float))}


def folder_digest(folder: Path) -> str:
    """SHA-1 over every file of `folder` (relative names and bytes, in name order)."""
    digest = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + sha1_of(path).encode())
    return digest.hexdigest()


def cv_run_of(paths: ProjectPaths, experiment: str, cv_metrics: Path) -> str | None:
    """The CV run that wrote `cv_metrics` as it is now, for the training run to name."""
    run = newest_run(paths, experiment, {CV_METRICS_TAG: sha1_of(cv_metrics)}) if cv_metrics.is_file() else None
    return run.info.run_id if run is not None else None


def link_submission(paths: ProjectPaths, experiment: str, model_dir: Path, submission: Path) -> str | None:
    """Tag the training run of the model in `model_dir` with `submission`'s SHA-1; its run id."""
    run = newest_run(paths, experiment, {MODEL_DIGEST_TAG: folder_digest(model_dir)})
    if run is None:
        return None
    annotate_run(paths, run.info.run_id, {}, {SUBMISSION_TAG: sha1_of(submission)})
    return run.info.run_id


def link_model_submission(paths: ProjectPaths, run_id: str | None, submission: Path) -> None:
    """Tag run `run_id` (an MLflow model's, `kpipe predict --model-uri`) with `submission`'s SHA-1."""
    if run_id:
        annotate_run(paths, run_id, {}, {SUBMISSION_TAG: sha1_of(submission)})


def submission_source(paths: ProjectPaths, experiment: str, sha1: str, slug: str, metric: str) -> ModelSource | None:
    """The source of the bytes with SHA-1 `sha1`, or None when no tracked model wrote them."""
    run = newest_run(paths, experiment, {SUBMISSION_TAG: sha1})
    if run is None:
        return None
    metrics, tags = run.data.metrics, run.data.tags
    version = run_model_version(paths, run.info.run_id)
    return ModelSource(competition=slug, metric=metric, cv_mean=metrics.get(f"{metric}_mean"),
                       cv_std=metrics.get(f"{metric}_std"), experiment=experiment,
                       cv_run_id=tags.get(CV_RUN_ID_TAG) or None, train_run_id=run.info.run_id,
                       model_name=version[0] if version else None, model_version=version[1] if version else None,
                       commit=tags.get(COMMIT_TAG), dvc_exp=tags.get(DVC_EXPERIMENT_TAG))
