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
from kaggle_standin import COMPETITION, KaggleStandIn

from pipeline.common.download import sha1_of
from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.dataset import HOUSE_PRICES as HOUSE_PRICES_FILES
from pipeline.house_prices.submission import check_submission
from pipeline.submissions.source import folder_digest, submission_source

pytestmark = pytest.mark.e2e
# The default model (a stacked ensemble of torch, scikit-learn and LightGBM members) made quick;
# one thread: the same float sums in every run.
FAST = {"train__epochs": 3, "lightgbm__num_boost_round": 50, "cv__folds": 3, "runtime__threads": 1}
# The House Prices pipeline: `predict` and every stage upstream of it (the Fashion-MNIST
# stages have their own end-to-end test).
HOUSE_PRICES = "predict"


def _assert_pipeline_outputs(repo: Path, raw_test: pd.DataFrame, mlflow_uri: str, folds: int,
                             dvc_exp: str | None = None) -> None:
    submission = pd.read_csv(repo / "submissions" / "submission.csv")
    check_submission(submission, raw_test["Id"].to_numpy())
    paths = ProjectPaths(repo)
    cv = json.loads(paths.cv_metrics.read_text())
    assert set(cv) >= {"log_rmse_mean", "log_rmse_std", "folds"} and len(cv["folds"]) == folds
    assert 0 < cv["log_rmse_mean"] < 1.0
    names = [f"member{i}-{m['model.kind']}" for i, m in enumerate(  # the members trained epoch by epoch
        yaml.safe_load((repo / "params.yaml").read_text())["model"]["members"]) if m["model.kind"] in ("linear", "mlp")]
    assert sorted(p.stem for p in paths.cv_curves_dir.iterdir()) == sorted(names)  # one file per torch member
    for name in names:
        assert list(pd.read_csv(paths.cv_curves(name))["epoch"]) == [1, 2, 3]
    assert paths.cv_curves_png.exists() and paths.train_curves_png.exists()
    model_dir = repo / "models" / "house_prices"
    members = json.loads((model_dir / "config.json").read_text())["members"]
    shipped = yaml.safe_load((repo / "params.yaml").read_text())["model"]["members"]
    assert len(members) == len(cv["members"]) == len(shipped) > 1  # params.yaml's default ensemble
    for m in members:  # each member's own file: torch weights, a skops estimator or a LightGBM text model
        spec = json.loads((model_dir / m / "config.json").read_text())["model"]
        assert (model_dir / m / spec.get("file", "weights.safetensors")).exists()
    # The blend weights learned in cv are the ones saved with the model.
    weights = json.loads((model_dir / "config.json").read_text())["weights"]
    assert weights == pytest.approx([m["weight"] for m in cv["members"]]) and sum(weights) == pytest.approx(1.0)

    mlflow.set_tracking_uri(mlflow_uri)
    client = mlflow.tracking.MlflowClient()
    runs = mlflow.search_runs(experiment_names=["house-prices"], output_format="pandas")
    parents = runs[runs["tags.stage"] == "cv"]
    assert len(parents) == 1
    children = runs[runs["tags.mlflow.parentRunId"] == parents["run_id"].iloc[0]]
    assert len(children) == folds
    assert children["metrics.log_rmse"].notna().all()
    fold = children["run_id"].iloc[0]
    assert [m.step for m in client.get_metric_history(fold, f"{names[0]}/valid_log_rmse")] == [1, 2, 3]
    # Each member's epochs were logged as they happened: the first member's last epoch before
    # the last member's first, all within the run's lifetime.
    first = client.get_metric_history(fold, f"{names[0]}/valid_log_rmse")
    last = client.get_metric_history(fold, f"{names[-1]}/valid_log_rmse")
    start, end = (int(parents[c].iloc[0].timestamp() * 1000) for c in ("start_time", "end_time"))
    assert start <= first[-1].timestamp < last[0].timestamp <= end

    # Runs say what ran, on which code and data (the clone's params were edited: -dirty).
    commit = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=repo, capture_output=True, text=True,
                            check=True).stdout.strip()
    (train,) = runs[runs["tags.stage"] == "train"].itertuples()
    tags = client.get_run(train.run_id).data.tags
    lr = yaml.safe_load((repo / "params.yaml").read_text())["train"]["lr"]
    assert tags["mlflow.runName"] == f"train ensemble({len(shipped)}) lr={lr:g} @ {commit}-dirty"
    assert parents["tags.mlflow.runName"].iloc[0].startswith(f"cv ensemble({len(shipped)}) lr=")
    assert tags["git.commit"] == f"{commit}-dirty" and tags.get("dvc.exp.name") == dvc_exp
    (data,) = client.get_run(train.run_id).inputs.dataset_inputs
    assert tags["data.sha1"].startswith(data.dataset.digest) and len(data.dataset.digest) == 12

    # The registered model: the version this train run logged, predicting the submission.
    (version,) = client.search_model_versions("name = 'house-prices'")
    assert version.run_id == train.run_id
    # The content addresses `kpipe submit` follows from the file back to these runs.
    paths = ProjectPaths(repo)
    assert tags["model.digest"] == folder_digest(paths.model_dir) and tags["cv.run_id"] == parents["run_id"].iloc[0]
    assert tags["submission.sha1"] == sha1_of(paths.submission)
    source = submission_source(paths, "house-prices", sha1_of(paths.submission), COMPETITION, "log_rmse")
    assert (source.train_run_id, source.model_version, source.cv_mean) == (train.run_id, "1", cv["log_rmse_mean"])
    predicted = mlflow.pyfunc.load_model("models:/house-prices/latest").predict(raw_test)
    assert (predicted["Id"] == submission["Id"]).all()
    assert (predicted["SalePrice"] / submission["SalePrice"] - 1).abs().max() < 1e-6


def _kaggle_cli_takes(submission: Path, home: Path) -> None:
    """`kaggle competitions submit` (the CLI itself) uploads the pipeline's file to the Kaggle
    stand-in, which receives exactly its bytes."""
    home.mkdir()
    with KaggleStandIn(tokens={"KGAT_e2e": "alice"}) as kaggle:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}, **kaggle.client_env(),
               "HOME": str(home), "KAGGLE_API_TOKEN": "KGAT_e2e"}
        sent = subprocess.run([str(BIN / "kaggle"), "competitions", "submit", "-c", COMPETITION, "-f", str(submission),
                               "-m", "e2e"], env=env, capture_output=True, text=True, timeout=120)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "Successfully submitted" in sent.stdout
        (received,) = kaggle.submissions
    assert received.content == submission.read_bytes() and received.description == "e2e"


def _make(repo: Path, target: str, fake_bin: Path, mlflow_uri: str) -> subprocess.CompletedProcess:
    """`make <target>` as a user runs it: no venv activated, and a `python` on PATH that is not
    the project's. The already-built test venv stands in for `.venv` (`-o`: not rebuilt)."""
    venv = Path(sys.prefix)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env = {k: v for k, v in env.items() if k != "TQDM_DISABLE"}  # bars are off in a log by themselves
    env.update(PATH=f"{fake_bin}{os.pathsep}/usr/local/bin:/usr/bin:/bin", MLFLOW_TRACKING_URI=mlflow_uri)
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
    # Redirected to a file, the log is a line per step: no progress bar redraws, one line per member.
    log = first.stdout + first.stderr
    assert "\r" not in log and len(log.splitlines()) <= 200, log
    members = len(yaml.safe_load((repo_copy / "params.yaml").read_text())["model"]["members"])
    assert log.count("): CV log-RMSE ") == members and log.count("final fit of member ") == members, log
    _assert_pipeline_outputs(repo_copy, raw_test, mlflow_uri, folds=3)

    second = _make(repo_copy, "house-prices", fake_bin, mlflow_uri)
    assert second.returncode == 0, second.stderr
    assert "Running stage" not in second.stdout, second.stdout
    # A forced retrain of the same params writes the same bytes: dvc.lock does not change.
    lock = (repo_copy / "dvc.lock").read_text()
    forced = run_dvc(repo_copy, "repro", "-f", "train")
    assert forced.returncode == 0, forced.stderr
    assert (repo_copy / "dvc.lock").read_text() == lock
    # Runtime settings never change a result, so they rerun nothing.
    edit_params(repo_copy, runtime__threads=2, runtime__device="cpu")
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
    _kaggle_cli_takes(repo_copy / "submissions" / "submission.csv", tmp_path / "home")
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo_copy,
                             capture_output=True, text=True, check=True).stdout.splitlines()
    committed_outputs = ("params.yaml", "dvc.lock", "metrics/", "plots/house_prices/cv_curves/",
                         "plots/house_prices/train_curves/", "plots/house_prices/residuals/")
    assert [line for line in changed if not line[3:].startswith(committed_outputs)] == [], \
        "outputs are git-ignored (DVC-cached) or committed metrics and curves"


def test_an_experiment_from_the_d2l_mirror_over_http(repo_copy: Path, http_server: str, mlflow_uri: str) -> None:
    """The mirror as the source, under `dvc exp run`: the files arrive over HTTP, verified, and
    the runs carry the experiment's name (a quick single model: the full default runs above)."""
    edit_params(repo_copy, data__source="d2l", data__base_url=http_server, cv__folds=2, model__kind="linear",
                train__epochs=2, runtime__threads=1)
    result = run_dvc(repo_copy, "exp", "run", "cv", "--name", "from-the-mirror")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "downloaded http://127.0.0.1" in result.stdout + result.stderr
    paths = ProjectPaths(repo_copy)
    assert {k: sha1_of(p) for k, p in (("train", paths.raw_train), ("test", paths.raw_test))} == \
        {k: spec.sha1 for k, spec in HOUSE_PRICES_FILES.items()}

    mlflow.set_tracking_uri(mlflow_uri)
    (cv,) = mlflow.search_runs(experiment_names=["house-prices"], filter_string="tags.stage = 'cv'",
                               output_format="list")
    assert cv.data.tags["dvc.exp.name"] == "from-the-mirror" and cv.data.tags.get("dvc.exp.baseline_rev")
    assert cv.data.tags["mlflow.runName"].startswith("cv linear lr=")
    mlflow.set_tracking_uri(None)
