"""MLflow: nested runs with per-epoch steps, a runs table, and failures that never break a stage."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import BUNDLED_ZIP, ROOT, SHIPPED_PARAMS
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.common import tracking
from pipeline.common.paths import ProjectPaths
from pipeline.common.provenance import Commit
from pipeline.common.tracking import RunRecord, flatten, log_record, open_run, tracking_uri
from pipeline.house_prices.dataset import HOUSE_PRICES
from pipeline.house_prices.experiment import parse_experiment
from pipeline.house_prices.runs import CVRun, log_training_data, run_name
from pipeline.house_prices.training import History
from pipeline.tabular.runs import cv_runs, runs_table


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


def test_every_shipped_param_is_a_legal_mlflow_param(tmp_path: Path, mlflow_uri: str, caplog) -> None:
    """The tuning space names ensemble members as `model.members[1].<key>`; MLflow refuses
    brackets in a param name, which would switch tracking off for a whole study."""
    caplog.set_level(logging.WARNING)
    flat = flatten(SHIPPED_PARAMS)
    assert "tune.space.model.members.1.model.dropout.low" in flat
    run_id = log_record(ProjectPaths(tmp_path), "house-prices", RunRecord("tune", params=SHIPPED_PARAMS))
    assert run_id is not None and "tracking failed" not in caplog.text
    logged = MlflowClient(mlflow_uri).get_run(run_id).data.params
    assert set(logged) == set(flat)


def test_a_records_files_and_folders_arrive_as_artifacts_by_either_way_in(tmp_path: Path, mlflow_uri: str) -> None:
    picture = tmp_path / "curves.png"
    picture.write_bytes(b"png")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w")
    record = RunRecord("files", artifacts=[picture, folder, tmp_path / "missing.csv"])
    finished = log_record(ProjectPaths(tmp_path), "house-prices", record)
    with open_run(ProjectPaths(tmp_path), "house-prices", RunRecord("open")) as run:
        run.log(record)
    client = MlflowClient(mlflow_uri)
    for run_id in (finished, run.run_id):
        assert sorted(f.path for f in client.list_artifacts(run_id)) == ["curves.png", "model"]
        assert [f.path for f in client.list_artifacts(run_id, "model")] == ["model/weights.bin"]


def test_nested_runs_carry_steps_and_the_runs_table_sorts_by_score(tmp_path: Path, mlflow_uri: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    paths = ProjectPaths(tmp_path)
    sha = _git_checkout(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    worse = log_record(paths, "house-prices", _cv_record(0.1, 0.15))
    monkeypatch.setenv("DVC_EXP_NAME", "smaller-lr")
    better = log_record(paths, "house-prices", _cv_record(0.01, 0.12))
    assert worse and better
    mlflow.set_tracking_uri(mlflow_uri)
    children = mlflow.search_runs(experiment_names=["house-prices"],
                                  filter_string=f"tags.mlflow.parentRunId = '{better}'")
    assert len(children) == 2
    steps = mlflow.tracking.MlflowClient().get_metric_history(children["run_id"].iloc[0], "valid_log_rmse")
    assert [(m.step, m.value) for m in steps] == [(1, 0.3), (2, 0.2), (3, 0.12)]

    score, spread = "metrics.log_rmse_mean", "metrics.log_rmse_std"
    table = runs_table(cv_runs(paths, "house-prices", score, ascending=True), 20, score, spread, ascending=True)
    assert list(table["cv_mean"]) == [0.12, 0.15]
    assert list(table["commit"]) == [sha[:7]] * 2 and list(table["dvc_exp"]) == ["smaller-lr", "-"]
    assert "train.lr" in table.columns and "train.epochs" not in table.columns  # only what differs
    result = CliRunner().invoke(app, ["runs"])
    assert result.exit_code == 0 and "0.12" in result.output
    assert result.output.splitlines()[0].split()[:6] == ["run", "date", "commit", "dvc_exp", "cv_mean", "cv_std"]
    assert "smaller-lr" in result.output.splitlines()[1]



def test_kpipe_runs_lists_runs_without_importing_torch_or_model_code(tmp_path: Path, mlflow_uri: str) -> None:
    """Listing runs is a look at MLflow: it must start in the time MLflow takes, not torch's."""
    shutil.copy(ROOT / "params.yaml", tmp_path)
    shutil.copy(ROOT / "dvc.yaml", tmp_path)
    log_record(ProjectPaths(tmp_path), "house-prices", _cv_record(0.1, 0.15))
    probe = ("import sys\nfrom pipeline.cli import app\ntry:\n    app(['runs'], standalone_mode=False)\n"
             "finally:\n    print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'"
             " or m.startswith(('pipeline.house_prices.experiment', 'pipeline.tabular.modeling'))))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "0.15" in done.stdout
    assert done.stdout.splitlines()[-1] == "[]"


def test_a_broken_tracking_store_only_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/sub/mlflow.db")
    with caplog.at_level(logging.WARNING):
        assert log_record(ProjectPaths(tmp_path), "house-prices", _cv_record(0.1, 0.2)) is None
    assert "MLflow tracking failed" in caplog.text


# -- runs open while a stage computes ------------------------------------------------------------


def _git_checkout(folder: Path) -> str:
    """`folder` as a git checkout with one commit of params.yaml; the commit's SHA."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text("base: {seed: 1}\n")
    for args in (["init", "-q"], ["add", "params.yaml"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one"]):
        subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_a_run_names_its_commit_and_dvc_experiment(tmp_path: Path, mlflow_uri: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sha = _git_checkout(tmp_path)
    paths = ProjectPaths(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    with open_run(paths, "house-prices", RunRecord("clean")) as clean:
        pass
    (tmp_path / "params.yaml").write_text("base: {seed: 2}\n")  # what `dvc exp run -S` does
    monkeypatch.setenv("DVC_EXP_NAME", "lucky-seed")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", sha)
    with open_run(paths, "house-prices", RunRecord("exp")) as exp:
        pass
    client = MlflowClient(mlflow_uri)
    tags = client.get_run(clean.run_id).data.tags
    assert (tags["git.commit"], tags["mlflow.source.git.commit"]) == (sha[:7], sha)
    assert "dvc.exp.name" not in tags
    tags = client.get_run(exp.run_id).data.tags
    assert tags["git.commit"] == f"{sha[:7]}-dirty"
    assert (tags["dvc.exp.name"], tags["dvc.exp.baseline_rev"]) == ("lucky-seed", sha)


def test_experiments_open_on_their_runs_and_keep_artifacts_beside_the_store(tmp_path: Path, mlflow_uri: str) -> None:
    client = MlflowClient(mlflow_uri)
    older = client.create_experiment("fashion-mnist")  # as an earlier version created it
    for name in ("house-prices", "fashion-mnist"):
        with open_run(ProjectPaths(tmp_path), name, RunRecord("r")):
            pass
    created, existing = client.get_experiment_by_name("house-prices"), client.get_experiment(older)
    assert created.tags["mlflow.experimentKind"] == existing.tags["mlflow.experimentKind"] == "custom_model_development"
    db = Path(mlflow_uri.removeprefix("sqlite:///"))
    assert created.artifact_location == (db.parent / "mlruns").as_uri()


def test_epoch_metrics_arrive_in_batches_while_the_run_is_open(tmp_path: Path, mlflow_uri: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    client = MlflowClient(mlflow_uri)
    monkeypatch.setattr(tracking, "FLUSH_SECONDS", 3600.0)
    with open_run(ProjectPaths(tmp_path), "house-prices", RunRecord("live")) as run:
        fold = run.open_child(RunRecord("fold1", params={"fold": 1}, tags={"stage": "cv-fold"}))
        fold.log_step({"valid_log_rmse": 0.3}, 1)
        assert client.get_metric_history(fold.run_id, "valid_log_rmse") == []  # waiting for its batch
        monkeypatch.setattr(tracking, "FLUSH_SECONDS", 0.0)
        fold.log_step({"valid_log_rmse": 0.2}, 2)  # due: this batch carries both epochs
        assert [(m.step, m.value) for m in client.get_metric_history(fold.run_id, "valid_log_rmse")] == [
            (1, 0.3), (2, 0.2)]
        assert client.get_run(run.run_id).info.status == client.get_run(fold.run_id).info.status == "RUNNING"
        assert client.get_run(fold.run_id).data.tags["mlflow.parentRunId"] == run.run_id
        monkeypatch.setattr(tracking, "FLUSH_SECONDS", 3600.0)
        fold.log_step({"valid_log_rmse": 0.1}, 3)
    steps = [m.step for m in client.get_metric_history(fold.run_id, "valid_log_rmse")]
    assert steps == [1, 2, 3]  # closing the run sent the rest
    assert client.get_run(fold.run_id).info.status == "FINISHED"


def test_a_failed_stage_leaves_its_runs_failed(tmp_path: Path, mlflow_uri: str) -> None:
    client = MlflowClient(mlflow_uri)
    with pytest.raises(RuntimeError), open_run(ProjectPaths(tmp_path), "house-prices", RunRecord("cv")) as run:
        fold = run.open_child(RunRecord("fold1"))
        raise RuntimeError("out of memory")
    assert client.get_run(run.run_id).info.status == client.get_run(fold.run_id).info.status == "FAILED"


def test_the_training_data_is_a_dataset_whose_digest_is_the_files_sha1(tmp_path: Path, mlflow_uri: str,
                                                                       clean_frames) -> None:
    train, _ = clean_frames
    paths = ProjectPaths(tmp_path)
    paths.raw_dir.mkdir(parents=True)
    shutil.copy(BUNDLED_ZIP, tmp_path / "archive.zip")
    with zipfile.ZipFile(tmp_path / "archive.zip") as archive:
        paths.raw_train.write_bytes(archive.read("train.csv"))
    with open_run(paths, "house-prices", RunRecord("train")) as run:
        log_training_data(run, paths, train)
    logged = MlflowClient(mlflow_uri).get_run(run.run_id)
    (data,) = logged.inputs.dataset_inputs
    sha1 = HOUSE_PRICES["train"].sha1  # the published hash of train.csv
    assert (data.dataset.name, data.dataset.digest) == ("house-prices-train", sha1[:12])
    assert json.loads(data.dataset.source) == {"uri": paths.raw_train.as_uri()}
    assert json.loads(data.dataset.profile)["num_rows"] == len(train) == 1460
    assert [(t.key, t.value) for t in data.tags] == [("mlflow.data.context", "training")]
    assert logged.data.tags["data.sha1"] == sha1


def test_logging_a_model_that_fails_only_warns(tmp_path: Path, mlflow_uri: str, caplog) -> None:
    def broken() -> None:
        raise OSError("disk full")

    with caplog.at_level(logging.WARNING), open_run(ProjectPaths(tmp_path), "house-prices", RunRecord("t")) as run:
        assert run.log_model(broken) is None
    assert "MLflow could not log the model (OSError: disk full)" in caplog.text
    assert MlflowClient(mlflow_uri).get_run(run.run_id).info.status == "FINISHED"


def test_an_ensembles_mean_curves_have_the_names_of_its_live_fold_metrics(tmp_path: Path, mlflow_uri: str) -> None:
    """Even when only one member (of two) trains epoch by epoch: `member0-mlp/...` both ways."""
    names = ["member0-mlp", "member1-sklearn"]
    history = History(np.array([[0.4, 0.6], [0.2, 0.4]]), np.array([[0.5, 0.7], [0.3, np.nan]]))
    with open_run(ProjectPaths(tmp_path), "house-prices", RunRecord("cv")) as run:
        tracked = CVRun(run, [run.open_child(RunRecord("fold1"))], names)
        tracked.member_epochs(0)(0, np.array([0.4]), np.array([0.5]))
        curves = tracked.mean_curves({"member0-mlp": history})
        fold_id = tracked.folds[0].run_id
    assert list(curves) == ["member0-mlp/train_log_rmse", "member0-mlp/valid_log_rmse"]
    assert curves["member0-mlp/train_log_rmse"].tolist() == pytest.approx([0.5, 0.3])
    assert curves["member0-mlp/valid_log_rmse"].tolist() == pytest.approx([0.6, 0.3])
    assert set(MlflowClient(mlflow_uri).get_run(fold_id).data.metrics) == set(curves)
    single = CVRun(run, [], ["mlp"])
    assert list(single.mean_curves({"mlp": history})) == ["train_log_rmse", "valid_log_rmse"]


def test_run_names_say_what_ran_on_which_code() -> None:
    shipped = parse_experiment(SHIPPED_PARAMS)
    commit = Commit("1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b", dirty=True)
    assert run_name("cv", shipped, commit) == (
        f"cv ensemble({len(shipped.members)}) lr={shipped.train.lr:g} @ 1a2b3c4-dirty")
    single = parse_experiment({**SHIPPED_PARAMS, "model": {**SHIPPED_PARAMS["model"], "kind": "linear"}})
    assert run_name("train", single, None) == f"train linear lr={single.train.lr:g} @ no git"


def test_a_broken_store_turns_an_open_run_into_a_no_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       clean_frames, caplog) -> None:
    """What a stage does with it (children, live metrics, dataset, model) only warns, once."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/sub/mlflow.db")
    train, _ = clean_frames
    with caplog.at_level(logging.WARNING), open_run(ProjectPaths(tmp_path), "house-prices", RunRecord("cv")) as run:
        fold = run.open_child(RunRecord("fold1"))
        fold.log_step({"valid_log_rmse": 0.2}, 1)
        run.log_dataset(train, "house-prices-train", blocker, "0" * 40)
        assert run.log_model(lambda: "logged") is None
        run.log(RunRecord("cv", metrics={"log_rmse_mean": 0.1}))
    assert not run.active and not fold.active
    assert caplog.text.count("MLflow tracking failed") == 1


def test_a_stage_deleting_its_own_committed_outputs_leaves_the_commit_clean(tmp_path: Path) -> None:
    """DVC deletes a stage's outputs before running it: the committed metrics and curves, and the
    lock it rewrites, are results, not inputs; a change to anything else is what `-dirty` says."""
    from pipeline.common.provenance import git_commit

    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  cv:\n    cmd: python -m x\n    metrics:\n      - metrics/cv.json:\n          cache: false\n"
        "  train:\n    matrix: {m: [a, b]}\n    cmd: python -m y\n    plots:\n      - plots/${item.m}.csv:\n"
        "          cache: false\n")
    for name in ("metrics/cv.json", "plots/a.csv", "dvc.lock", "model.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("committed\n")
    sha = _git_checkout(tmp_path)
    for args in (["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--amend", "--no-edit"]):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, check=True, capture_output=True,
                         text=True).stdout.strip()
    for name in ("metrics/cv.json", "plots/a.csv"):
        (tmp_path / name).unlink()
    (tmp_path / "dvc.lock").write_text("rewritten\n")
    assert git_commit(tmp_path) == Commit(sha, dirty=False)
    (tmp_path / "model.py").write_text("edited\n")
    assert git_commit(tmp_path) == Commit(sha, dirty=True)
