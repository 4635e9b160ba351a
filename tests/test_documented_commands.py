"""The README's `make`, on a fresh clone of the committed HEAD, as a new user types it, and the
check that every command the pages show has a place (tests/documented.py).

`make` with the shipped params must reproduce the committed results byte for byte: `git status`
stays empty and no run is named `-dirty`. The thread count is a runtime setting, so the pipeline
forced at another one gives the same bytes again; a second `make` has nothing to do. The other
House Prices commands run on a small project in tests/test_documented_house_prices.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from conftest import BIN, ROOT
from documented import MAKE, PLACES, Elsewhere, Shell, documented, fresh_clone
from kaggle_standin import COMPETITION, KaggleStandIn

from pipeline.common.download import sha1_of
from pipeline.common.paths import ProjectPaths
from pipeline.common.runtime import THREADS_TAG
from pipeline.house_prices.submission import check_submission
from pipeline.submissions.source import folder_digest, submission_source

pytestmark = pytest.mark.e2e


def test_every_documented_command_has_a_place() -> None:
    found = documented()
    assert len(found) > 60
    unplaced = [(page, command) for page, command in found if command not in PLACES.get(page, {})]
    assert not unplaced, f"documented commands no test runs yet (add them to tests/documented.py): {unplaced}"
    stale = [(page, command) for page, commands in PLACES.items() for command in commands
             if (page, command) not in found]
    assert not stale, f"tests/documented.py names commands the pages no longer show: {stale}"
    for place in (p for commands in PLACES.values() for p in commands.values() if isinstance(p, Elsewhere)):
        path, name = place.test.split("::")
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), place.test


@pytest.fixture(scope="module")
def sh(tmp_path_factory: pytest.TempPathFactory) -> Shell:
    """The clone; `make -o .venv/bin/kpipe` below: the suite's venv is not rebuilt."""
    return fresh_clone(tmp_path_factory.mktemp("documented-make"), MAKE)


def _make(sh: Shell) -> subprocess.CompletedProcess[str]:
    """`make` as the README says, before any `source`: the Makefile finds its own interpreter."""
    done = subprocess.run(["make", "-o", str(sh.cwd / ".venv" / "bin" / "kpipe")], cwd=sh.cwd, env=sh.env(),
                          capture_output=True, text=True, timeout=900)
    sh.text("make")
    return done


def _runs(sh: Shell) -> pd.DataFrame:
    mlflow.set_tracking_uri(f"sqlite:///{sh.cwd / 'mlflow.db'}")
    try:
        return mlflow.search_runs(experiment_names=["house-prices"], output_format="pandas")
    finally:
        mlflow.set_tracking_uri(None)


def _cv_threads(sh: Shell) -> list[int]:
    """The torch thread count each CV run of the clone used."""
    runs = _runs(sh)
    return [int(n) for n in runs.loc[runs["tags.stage"] == "cv", f"tags.{THREADS_TAG}"]]


def _assert_pipeline_outputs(repo: Path, raw_test: pd.DataFrame, mlflow_uri: str) -> None:
    """What `make` leaves, checked from the files back to the MLflow runs and the registered model."""
    shipped_params = yaml.safe_load((repo / "params.yaml").read_text())
    folds, epochs = shipped_params["cv"]["folds"], shipped_params["train"]["epochs"]
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
        assert list(pd.read_csv(paths.cv_curves(name))["epoch"]) == list(range(1, epochs + 1))
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
    assert [m.step for m in client.get_metric_history(fold, f"{names[0]}/valid_log_rmse")] == \
        list(range(1, epochs + 1))
    # Each member's epochs were logged as they happened: the first member's last epoch before
    # the last member's first, all within the run's lifetime.
    first = client.get_metric_history(fold, f"{names[0]}/valid_log_rmse")
    last = client.get_metric_history(fold, f"{names[-1]}/valid_log_rmse")
    start, end = (int(parents[c].iloc[0].timestamp() * 1000) for c in ("start_time", "end_time"))
    assert start <= first[-1].timestamp < last[0].timestamp <= end

    # Runs say what ran, on which code and data (the clone is as committed: not -dirty).
    commit = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=repo, capture_output=True, text=True,
                            check=True).stdout.strip()
    (train,) = runs[runs["tags.stage"] == "train"].itertuples()
    tags = client.get_run(train.run_id).data.tags
    lr = yaml.safe_load((repo / "params.yaml").read_text())["train"]["lr"]
    assert tags["mlflow.runName"] == f"train ensemble({len(shipped)}) lr={lr:g} @ {commit}"
    assert parents["tags.mlflow.runName"].iloc[0].startswith(f"cv ensemble({len(shipped)}) lr=")
    assert tags["git.commit"] == commit and tags.get("dvc.exp.name") is None
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


def test_make_reproduces_the_committed_results_at_any_thread_count(sh: Shell, raw_test: pd.DataFrame) -> None:
    first = _make(sh)
    log = first.stdout + first.stderr
    assert first.returncode == 0, log[-5000:]
    for stage in ("fetch", "validate", "cv", "train", "predict"):
        assert f"Running stage '{stage}'" in first.stdout
    assert "extracted from the bundled house-prices-advanced-regression-techniques.zip" in first.stderr
    assert re.search(r"make: done in \d+ s \(set-up included\)", first.stdout)
    # Redirected to a file, the log is a line per step: no progress bar redraws, one line per member.
    members = yaml.safe_load((sh.cwd / "params.yaml").read_text())["model"]["members"]
    assert "\r" not in log and len(log.splitlines()) <= 200, log
    assert log.count("): CV log-RMSE ") == len(members) and log.count("final fit of member ") == len(members), log
    # The shipped params on the bundled data give the committed metrics, curves and lock, bit for bit.
    assert sh.changed() == []
    commit = sh.git("rev-parse", "--short=7", "HEAD").strip()
    assert set(_runs(sh)["tags.git.commit"].dropna()) == {commit}  # not "-dirty" (fold runs have no tag)
    _assert_pipeline_outputs(sh.cwd, raw_test, f"sqlite:///{sh.cwd / 'mlflow.db'}")
    _kaggle_cli_takes(sh.cwd / "submissions" / "submission.csv", sh.home / "kaggle-cli")

    second = _make(sh)
    assert second.returncode == 0 and "Running stage" not in second.stdout, second.stdout

    # Another thread count is a runtime setting: it reruns nothing and, forced, gives the same bytes.
    # `threads: 0` took the cores that were free; the forced run takes the other count of two. The
    # CV stage trains every member on every fold and writes each torch member's curve at full
    # precision, so its bytes show any rounding the count brings; the final fit is the same trainer.
    (used,) = _cv_threads(sh)
    other = 2 if used == 1 else 1
    sh.set_params("the other thread count", {"runtime": {"threads": other}})
    sh.script("dvc repro -f cv", timeout=900)
    assert sh.changed() == []
    assert sorted(_cv_threads(sh)) == sorted([used, other])
    # The inspection stages, outside make's chain, run on demand (their lock entries are not committed).
    sh.script("dvc repro features residuals")
    assert json.loads(ProjectPaths(sh.cwd).features_metrics.read_text())["n_features"] > 200
    assert len(pd.read_csv(ProjectPaths(sh.cwd).worst_houses)) == 25
    # Metrics are committed: `dvc metrics diff` compares this run with HEAD.
    assert "metrics/house_prices/cv.json" in sh.script("dvc metrics diff HEAD --all").stdout


def test_every_make_command_ran(sh: Shell) -> None:
    assert sh.ran == set(sh.commands), sorted(set(sh.commands) - sh.ran)
