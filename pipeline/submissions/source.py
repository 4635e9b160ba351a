"""What made a submission file: the CV run, the training run, the registered model version, the
commit, the DVC experiment and the CV score, carried from stage to stage in small JSON files.

Kaggle only ever sees bytes. To put its score back beside the run that made them, each stage
leaves one record: `cv` writes its MLflow run id (`data/processed/cv_run.json`); `train` writes
a `ModelSource` into the model folder (`source.json`: the runs, the model version, the CV it
was trained after); `predict` writes the same beside the submission, with the file's SHA-1
(`submission.source.json`). `kpipe submit` believes a record only when that SHA-1 is the
file's: a file edited or written by something else has no source, and its log row says so.

JSON files, not MLflow lookups: they travel with `dvc exp run`, `dvc checkout` and a DVC
remote exactly as the model and the file do, and they work when tracking is off. This module
imports nothing heavy: the stages that write it import it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.common.io import sha1_of, write_json
from pipeline.common.provenance import dvc_experiment, git_commit

MODEL_SOURCE = "source.json"  # inside the model folder
CV_RUN_ID_TAG = "cv.run_id"  # the training run's tag naming the CV run it was trained after


@dataclass(frozen=True)
class ModelSource:
    """Where a trained model came from. Every field but the competition may be unknown (None):
    tracking off, no git checkout, no `dvc exp run`."""

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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSource:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class SubmissionSource:
    """A submission file's bytes (their SHA-1) and the model that wrote them."""

    sha1: str
    model: ModelSource


def cv_scores(cv: dict[str, Any], metric: str) -> dict[str, float]:
    """`<metric>_mean` and `<metric>_std` of a CV metrics file, as the training run logs them."""
    return {k: float(cv[k]) for k in (f"{metric}_mean", f"{metric}_std") if isinstance(cv.get(k), (int, float))}


def model_source(slug: str, metric: str, cv: dict[str, Any], root: Path, **runs: str | None) -> ModelSource:
    """The record of a model just trained at `root` after the CV `cv` (its metrics file), with
    the MLflow facts in `runs` (experiment, cv_run_id, train_run_id, model_name, model_version)."""
    commit = git_commit(root)
    scores = cv_scores(cv, metric)
    return ModelSource(competition=slug, metric=metric, cv_mean=scores.get(f"{metric}_mean"),
                       cv_std=scores.get(f"{metric}_std"), commit=commit.short if commit else None,
                       dvc_exp=dvc_experiment(), **runs)


def registered_version(logged: Any) -> str | None:
    """The version `mlflow.<flavor>.log_model(registered_model_name=...)` registered, if any."""
    version = getattr(logged, "registered_model_version", None)
    return None if version is None else str(version)


def write_cv_run(path: Path, run_id: str | None) -> None:
    """The `cv` stage's MLflow run id (None when tracking was off), for `train` to carry on."""
    write_json({"run_id": run_id}, path)


def read_cv_run(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        run_id = json.loads(path.read_text()).get("run_id")
    except (json.JSONDecodeError, AttributeError):
        return None
    return run_id if isinstance(run_id, str) else None


def write_model_source(model_dir: Path, source: ModelSource) -> None:
    write_json(source.to_dict(), model_dir / MODEL_SOURCE)


def read_model_source(model_dir: Path) -> ModelSource | None:
    """The model folder's record, or None (a folder saved before records existed)."""
    path = model_dir / MODEL_SOURCE
    if not path.is_file():
        return None
    try:
        return ModelSource.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError):
        return None


def submission_source_path(submission: Path) -> Path:
    """`submissions/submission.csv` -> `submissions/submission.source.json`."""
    return submission.with_name(f"{submission.stem}.source.json")


def write_submission_source(submission: Path, model: ModelSource) -> Path:
    """Record, beside a file just written, its SHA-1 and the model that wrote it."""
    record = submission_source_path(submission)
    write_json({"file": submission.name, "sha1": sha1_of(submission), "model": model.to_dict()}, record)
    return record


def read_submission_source(submission: Path) -> tuple[SubmissionSource | None, str]:
    """The file's source and "", or None and why there is none."""
    record = submission_source_path(submission)
    sha1 = sha1_of(submission)
    if not record.is_file():
        return None, f"no {record.name} beside it (a file `kpipe predict` did not write)"
    try:
        data = json.loads(record.read_text())
        written = data["sha1"]
        model = ModelSource.from_dict(data["model"])
    except (json.JSONDecodeError, KeyError, TypeError):
        return None, f"{record} is not a source record `kpipe predict` wrote"
    if written != sha1:
        return None, f"the file changed after `kpipe predict` wrote it ({record.name} names other bytes)"
    return SubmissionSource(sha1, model), ""


def model_uri_source(tracking: str, uri: str, slug: str, metric: str) -> ModelSource:
    """The record of an MLflow model (`models:/name/3`, `models:/name@champion`,
    `models:/name/latest`, `runs:/<id>/model`), read from its training run: the CV it logged,
    the CV run it names, the commit and the DVC experiment. Fields MLflow cannot tell stay None."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from pipeline.common.tracking import COMMIT_TAG, DVC_EXPERIMENT_TAG

    client = MlflowClient(tracking)
    name = version = run_id = None
    try:
        if uri.startswith("models:/"):
            name, _, rest = uri.removeprefix("models:/").partition("/")
            if "@" in name:
                name, alias = name.split("@", 1)
                found = client.get_model_version_by_alias(name, alias)
            elif rest in ("", "latest"):
                found = max(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
            else:
                found = client.get_model_version(name, rest)
            version, run_id = str(found.version), found.run_id
        elif uri.startswith("runs:/"):
            run_id = uri.removeprefix("runs:/").split("/")[0]
        run = client.get_run(run_id) if run_id else None
    except (MlflowException, ValueError):
        return ModelSource(slug, metric, model_name=name, model_version=version)
    if run is None:
        return ModelSource(slug, metric, model_name=name, model_version=version)
    metrics, tags = run.data.metrics, run.data.tags
    experiment = client.get_experiment(run.info.experiment_id).name
    return ModelSource(competition=slug, metric=metric, cv_mean=metrics.get(f"{metric}_mean"),
                       cv_std=metrics.get(f"{metric}_std"), experiment=experiment,
                       cv_run_id=tags.get(CV_RUN_ID_TAG) or None, train_run_id=run_id, model_name=name,
                       model_version=version, commit=tags.get(COMMIT_TAG), dvc_exp=tags.get(DVC_EXPERIMENT_TAG))
