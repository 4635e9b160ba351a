"""`dvc repro` of the whole House Prices pipeline in a clone of the repo, on the real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from conftest import BIN, edit_params, run_dvc

from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.submission import check_submission

pytestmark = pytest.mark.e2e
# The default model: a stacked ensemble of torch, scikit-learn and LightGBM members, made quick.
FAST = {"train__epochs": 3, "lightgbm__num_boost_round": 50}
# The House Prices pipeline: `predict` and every stage upstream of it (the Fashion-MNIST
# stages have their own end-to-end test).
HOUSE_PRICES = "predict"


def _assert_pipeline_outputs(repo: Path, raw_test: pd.DataFrame, mlflow_uri: str, folds: int) -> None:
    submission = pd.read_csv(repo / "submissions" / "submission.csv")
    check_submission(submission, raw_test["Id"].to_numpy())
    paths = ProjectPaths(repo)
    cv = json.loads(paths.cv_metrics.read_text())
    assert set(cv) >= {"log_rmse_mean", "log_rmse_std", "folds"} and len(cv["folds"]) == folds
    assert 0 < cv["log_rmse_mean"] < 1.0
    curves = pd.read_csv(paths.cv_curves)
    assert list(curves["epoch"]) == [1, 2, 3]
    model_dir = repo / "models" / "house_prices"
    members = json.loads((model_dir / "config.json").read_text())["members"]
    shipped = yaml.safe_load((repo / "params.yaml").read_text())["model"]["members"]
    assert len(members) == len(cv["members"]) == len(shipped) > 1  # params.yaml's default ensemble
    for m in members:  # each member's own file: torch weights, a skops estimator or a LightGBM text model
        spec = json.loads((model_dir / m / "config.json").read_text())["model"]
        assert (model_dir / m / spec.get("file", "weights.safetensors")).exists()
    # The blend weights learned in cv are the ones saved with the model.
    weights = json.loads((model_dir / "config.json").read_text())["weights"]
    assert weights == pytest.approx(list(cv["weights"].values())) and sum(weights) == pytest.approx(1.0)

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


def _make(repo: Path, target: str, fake_bin: Path, mlflow_uri: str) -> subprocess.CompletedProcess:
    """`make <target>` as a user runs it: no venv activated, and a `python` on PATH that is not
    the project's. The already-built test venv stands in for `.venv` (`-o`: not rebuilt)."""
    venv = Path(sys.prefix)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PATH=f"{fake_bin}{os.pathsep}/usr/local/bin:/usr/bin:/bin", MLFLOW_TRACKING_URI=mlflow_uri,
               TQDM_DISABLE="1")
    return subprocess.run(["make", "-o", str(BIN / "kpipe"), target, f"VENV={venv}"], cwd=repo,
                          capture_output=True, text=True, env=env, timeout=900)


def test_make_runs_the_pipeline_from_the_bundled_archive_in_a_fresh_clone(
        repo_copy: Path, raw_test: pd.DataFrame, mlflow_uri: str, tmp_path: Path) -> None:
    """The README's first command on a git clone with nothing beside it: the bundled data, the
    project's interpreter for every stage, then nothing left to do."""
    assert not (repo_copy.parent / "shared").exists() and not (repo_copy / "data" / "raw").exists()
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    for name in ("python", "python3"):
        (fake_bin / name).write_text("#!/bin/sh\necho 'not the project python' >&2\nexit 3\n")
        (fake_bin / name).chmod(0o755)
    edit_params(repo_copy, **FAST)

    first = _make(repo_copy, "house-prices", fake_bin, mlflow_uri)
    assert first.returncode == 0, first.stdout + first.stderr
    for stage in ("fetch", "validate", "cv", "train", "predict"):
        assert f"Running stage '{stage}'" in first.stdout
    assert "extracted from the bundled house-prices-advanced-regression-techniques.zip" in first.stderr
    assert "make: done in" in first.stdout
    _assert_pipeline_outputs(repo_copy, raw_test, mlflow_uri, folds=5)

    second = _make(repo_copy, "house-prices", fake_bin, mlflow_uri)
    assert second.returncode == 0, second.stderr
    assert "Running stage" not in second.stdout, second.stdout
    # Runtime settings never change a result, so they rerun nothing.
    edit_params(repo_copy, runtime__threads=1, runtime__device="cpu")
    status = run_dvc(repo_copy, "status", "predict")
    assert "up to date" in status.stdout, status.stdout
    # Metrics are committed: `dvc metrics diff` compares this run with the clone's HEAD.
    diff = run_dvc(repo_copy, "metrics", "diff", "HEAD", "--all")
    assert diff.returncode == 0 and "metrics/house_prices/cv.json" in diff.stdout, diff.stdout + diff.stderr
    # The inspection stages, outside the main chain, run on demand.
    features = run_dvc(repo_copy, "repro", "features")
    assert features.returncode == 0, features.stderr
    assert json.loads(ProjectPaths(repo_copy).features_metrics.read_text())["n_features"] > 200
    residuals = run_dvc(repo_copy, "repro", "residuals")
    assert residuals.returncode == 0, residuals.stderr
    assert len(pd.read_csv(ProjectPaths(repo_copy).worst_houses)) == 25
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo_copy,
                             capture_output=True, text=True, check=True).stdout.splitlines()
    committed_outputs = ("params.yaml", "dvc.lock", "metrics/", "plots/house_prices/cv_curves.csv",
                         "plots/house_prices/train_curve.csv", "plots/house_prices/residuals/")
    assert [line for line in changed if not line[3:].startswith(committed_outputs)] == [], \
        "outputs are git-ignored (DVC-cached) or committed metrics and curves"


def test_repro_from_the_d2l_mirror_over_http(repo_copy: Path, http_server: str, raw_test: pd.DataFrame,
                                             mlflow_uri: str) -> None:
    edit_params(repo_copy, data__source="d2l", data__base_url=http_server, cv__folds=3, **FAST)
    result = run_dvc(repo_copy, "repro", HOUSE_PRICES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "downloaded http://127.0.0.1" in result.stderr
    _assert_pipeline_outputs(repo_copy, raw_test, mlflow_uri, folds=3)
