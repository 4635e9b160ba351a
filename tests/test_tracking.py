"""MLflow: nested runs with per-epoch steps, a runs table, and failures that never break a stage."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.common.paths import ProjectPaths
from pipeline.common.tracking import RunRecord, flatten, log_record, tracking_uri
from pipeline.house_prices.runs import cv_runs, runs_table


def _cv_record(lr: float, score: float) -> RunRecord:
    folds = [RunRecord(f"fold{i}", metrics={"log_rmse": score}, curves={"valid_log_rmse": [0.3, 0.2, score]},
                       tags={"stage": "cv-fold"}) for i in (1, 2)]
    return RunRecord("cv", params={"train": {"lr": lr, "epochs": 3}, "model": {"hidden": [8, 4]}},
                     metrics={"log_rmse_mean": score, "log_rmse_std": 0.01}, tags={"stage": "cv"}, children=folds)


def test_tracking_uri_defaults_to_sqlite_at_the_project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(ProjectPaths(tmp_path)) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(ProjectPaths(tmp_path)) == "http://127.0.0.1:5000"


def test_flatten_turns_sections_into_dotted_params() -> None:
    assert flatten({"train": {"lr": 0.1}, "model": {"hidden": [8, 4]}}) == {"train.lr": 0.1, "model.hidden": "8,4"}


def test_nested_runs_carry_steps_and_the_runs_table_sorts_by_score(tmp_path: Path, mlflow_uri: str) -> None:
    paths = ProjectPaths(tmp_path)
    worse = log_record(paths, "house-prices", _cv_record(0.1, 0.15))
    better = log_record(paths, "house-prices", _cv_record(0.01, 0.12))
    assert worse and better
    mlflow.set_tracking_uri(mlflow_uri)
    children = mlflow.search_runs(experiment_names=["house-prices"],
                                  filter_string=f"tags.mlflow.parentRunId = '{better}'")
    assert len(children) == 2
    steps = mlflow.tracking.MlflowClient().get_metric_history(children["run_id"].iloc[0], "valid_log_rmse")
    assert [(m.step, m.value) for m in steps] == [(1, 0.3), (2, 0.2), (3, 0.12)]

    table = runs_table(cv_runs(paths))
    assert list(table["cv_mean"]) == [0.12, 0.15]
    assert "train.lr" in table.columns and "train.epochs" not in table.columns  # only what differs
    result = CliRunner().invoke(app, ["runs"])
    assert result.exit_code == 0 and "0.12" in result.output


def test_a_broken_tracking_store_only_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/sub/mlflow.db")
    with caplog.at_level(logging.WARNING):
        assert log_record(ProjectPaths(tmp_path), "house-prices", _cv_record(0.1, 0.2)) is None
    assert "MLflow tracking failed" in caplog.text
