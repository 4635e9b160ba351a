"""`dvc repro` of the whole House Prices pipeline in a copy of the repo, on the real files."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from conftest import edit_params, run_dvc
from pipeline.submission import check_submission

pytestmark = pytest.mark.e2e
FAST = {"train__epochs": 3}  # the default model: an ensemble of linear and MLP members
# The House Prices pipeline: `predict` and every stage upstream of it (the Fashion-MNIST
# stages have their own end-to-end test).
HOUSE_PRICES = "predict"


def _assert_pipeline_outputs(repo: Path, raw_test: pd.DataFrame, mlflow_uri: str, folds: int) -> None:
    submission = pd.read_csv(repo / "submissions" / "submission.csv")
    check_submission(submission, raw_test["Id"].to_numpy())
    cv = json.loads((repo / "metrics" / "cv.json").read_text())
    assert set(cv) >= {"log_rmse_mean", "log_rmse_std", "folds"} and len(cv["folds"]) == folds
    assert 0 < cv["log_rmse_mean"] < 1.0
    curves = pd.read_csv(repo / "plots" / "cv_curves.csv")
    assert list(curves["epoch"]) == [1, 2, 3]
    model_dir = repo / "models" / "house_prices"
    members = json.loads((model_dir / "config.json").read_text())["members"]
    shipped = yaml.safe_load((repo / "params.yaml").read_text())["model"]["members"]
    assert len(members) == len(cv["members"]) == len(shipped) > 1  # params.yaml's default ensemble
    assert all((model_dir / m / "weights.safetensors").exists() for m in members)

    mlflow.set_tracking_uri(mlflow_uri)
    runs = mlflow.search_runs(experiment_names=["house-prices"], output_format="pandas")
    parents = runs[runs["tags.stage"] == "cv"]
    assert len(parents) == 1
    children = runs[runs["tags.mlflow.parentRunId"] == parents["run_id"].iloc[0]]
    assert len(children) == folds
    assert children["metrics.log_rmse"].notna().all()
    history = mlflow.tracking.MlflowClient().get_metric_history(children["run_id"].iloc[0], "valid_log_rmse")
    assert [m.step for m in history] == [1, 2, 3]
    assert (runs["tags.stage"] == "train").sum() == 1


def test_repro_from_local_files_then_nothing_to_do(repo_copy: Path, house_prices_dir: Path,
                                                   raw_test: pd.DataFrame, mlflow_uri: str) -> None:
    edit_params(repo_copy, data__source="local", data__local_dir=str(house_prices_dir), **FAST)
    first = run_dvc(repo_copy, "repro", HOUSE_PRICES)
    assert first.returncode == 0, first.stdout + first.stderr
    _assert_pipeline_outputs(repo_copy, raw_test, mlflow_uri, folds=5)

    second = run_dvc(repo_copy, "repro", HOUSE_PRICES)
    assert second.returncode == 0, second.stderr
    assert "Running stage" not in second.stdout, second.stdout


def test_repro_from_the_d2l_mirror_over_http(repo_copy: Path, http_server: str, raw_test: pd.DataFrame,
                                             mlflow_uri: str) -> None:
    edit_params(repo_copy, data__source="d2l", data__base_url=http_server, cv__folds=3, **FAST)
    result = run_dvc(repo_copy, "repro", HOUSE_PRICES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "downloaded http://127.0.0.1" in result.stderr
    _assert_pipeline_outputs(repo_copy, raw_test, mlflow_uri, folds=3)
