"""House Prices in MLflow: what the stages' runs are called and log live (`kpipe runs` reads
them through the core's table, `pipeline.tabular.runs`).

A run's name says what ran and on which code (`cv ensemble(5) lr=0.0044 @ 1a2b3c4`); its tags
(`tracking.run_tags`) carry the commit and the DVC experiment, which `kpipe runs` shows too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.common.download import sha1_of
from pipeline.common.paths import ProjectPaths
from pipeline.common.provenance import Commit, git_commit
from pipeline.common.tracking import (
    HOUSE_PRICES_EXPERIMENT,
    OpenRun,
    RunRecord,
    open_run,
)
from pipeline.house_prices.cv import fold_names
from pipeline.house_prices.experiment import model_names

if TYPE_CHECKING:
    from pipeline.house_prices.cv import CVResult
    from pipeline.house_prices.experiment import ExperimentParams
    from pipeline.house_prices.training import EpochCallback, History

TRAINING_DATA = "house-prices-train"  # the dataset's name in MLflow


def run_name(stage: str, params: ExperimentParams, commit: Commit | None) -> str:
    """`cv ensemble(5) lr=0.0044 @ 1a2b3c4-dirty`: the stage, the model, its learning rate, the code."""
    model = f"ensemble({len(params.members)})" if len(params.members) > 1 else params.members[0].model.kind
    return f"{stage} {model} lr={params.train.lr:g} @ {commit.short if commit else 'no git'}"


def member_prefix(member: int, names: Sequence[str]) -> str:
    """Metric names of an ensemble's members are grouped under each member's name, as in the
    curve files (`member0-mlp/valid_log_rmse`); a single model's have no prefix."""
    return f"{names[member]}/" if len(names) > 1 else ""


def epoch_logger(runs: Sequence[OpenRun], prefix: str = "") -> EpochCallback:
    """An `on_epoch` that logs, as each epoch ends, model i's train (and valid, when there are
    valid rows) log-RMSE to `runs[i]` at step epoch + 1: one run per fold, or the final fit's."""
    def on_epoch(epoch: int, train: np.ndarray, valid: np.ndarray) -> None:
        for i, run in enumerate(runs):
            metrics = {f"{prefix}train_log_rmse": float(train[i])}
            if not np.isnan(valid[i]):
                metrics[f"{prefix}valid_log_rmse"] = float(valid[i])
            run.log_step(metrics, epoch + 1)

    return on_epoch


def log_training_data(run: OpenRun, paths: ProjectPaths, frame: pd.DataFrame) -> None:
    """The rows trained on, as an MLflow dataset read from data/raw/train.csv, whose SHA-1
    (the published one, unless `data.verify` is off) is its digest and the run's `data.sha1`."""
    if paths.raw_train.exists():
        run.log_dataset(frame, TRAINING_DATA, paths.raw_train, sha1_of(paths.raw_train))


class CVRun:
    """The `cv` stage's MLflow runs: the parent, open from the start, and one child per fold."""

    def __init__(self, run: OpenRun, folds: list[OpenRun], names: Sequence[str]) -> None:
        self.run, self.folds, self.names = run, folds, list(names)

    def member_epochs(self, member: int) -> EpochCallback:
        """Member `member`'s per-epoch scores, to each fold's run as they happen."""
        return epoch_logger(self.folds, member_prefix(member, self.names))

    def finish(self, result: CVResult, metrics: dict[str, Any], histories: Mapping[str, History],
               picture: Path) -> None:
        """Fold scores (an ensemble's: of the blend, which has no curve per epoch), the CV
        metrics, each model's curves averaged over the folds, and the curve picture."""
        for fold, score in zip(self.folds, result.fold_scores, strict=True):
            fold.log(RunRecord("fold", metrics={"log_rmse": float(score)}))
        flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        members = {f"{m['member']}_log_rmse_mean": m["log_rmse"] for m in metrics.get("members", [])}
        weights = {f"weight_{m['member']}": m["weight"] for m in metrics.get("members", [])}
        blends = {f"blend_{b['method']}_log_rmse_mean": b["log_rmse"] for b in metrics.get("blends", [])}
        self.run.log(RunRecord("cv", metrics={**flat, **members, **weights, **blends},
                               curves=self.mean_curves(histories), artifacts=[picture]))

    def mean_curves(self, histories: Mapping[str, History]) -> dict[str, np.ndarray]:
        """Each trained model's train and valid log-RMSE per epoch, averaged over the folds,
        under the same names as the folds' live metrics (`member0-mlp/valid_log_rmse`)."""
        curves: dict[str, np.ndarray] = {}
        for name, history in histories.items():
            prefix = member_prefix(self.names.index(name), self.names)
            for split, curve in (("train", history.train), ("valid", history.valid)):
                if not np.isnan(curve).all():
                    curves[f"{prefix}{split}_log_rmse"] = np.nanmean(curve, axis=1)
        return curves


@contextmanager
def _stage_run(stage: str, paths: ProjectPaths, params: ExperimentParams, raw: dict[str, Any],
               frame: pd.DataFrame) -> Iterator[OpenRun]:
    """A stage's run, open for the block: named by `run_name`, tagged with the stage and the
    model kind, every param logged and the training data attached."""
    record = RunRecord(run_name(stage, params, git_commit(paths.root)), params=raw,
                       tags={"stage": stage, "model.kind": params.model.kind})
    with open_run(paths, HOUSE_PRICES_EXPERIMENT, record) as run:
        log_training_data(run, paths, frame)
        yield run


@contextmanager
def cv_run(paths: ProjectPaths, params: ExperimentParams, raw: dict[str, Any],
           frame: pd.DataFrame) -> Iterator[CVRun]:
    """The `cv` stage's runs: its own and one child per fold."""
    with _stage_run("cv", paths, params, raw, frame) as run:
        folds = [run.open_child(RunRecord(name, params={"fold": i + 1}, tags={"stage": "cv-fold"}))
                 for i, name in enumerate(fold_names(params.cv.folds, params.cv.repeats))]
        yield CVRun(run, folds, model_names(params))


@contextmanager
def train_run(paths: ProjectPaths, params: ExperimentParams, raw: dict[str, Any],
              frame: pd.DataFrame) -> Iterator[TrainRun]:
    """The `train` stage's run."""
    with _stage_run("train", paths, params, raw, frame) as run:
        yield TrainRun(run, model_names(params))


class TrainRun:
    """The `train` stage's MLflow run: per-epoch train log-RMSE of every member, live."""

    def __init__(self, run: OpenRun, names: Sequence[str]) -> None:
        self.run, self.names = run, list(names)

    def member_epochs(self, member: int) -> EpochCallback:
        return epoch_logger([self.run], member_prefix(member, self.names))
