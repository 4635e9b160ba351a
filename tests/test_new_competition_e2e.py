"""End to end on competitions the package has never met, as a competitor runs them: `kpipe new`
from Kaggle's files, `dvc repro`, a checked submission that beats the trivial baseline on the
held-out rows, the runs in MLflow, and `kpipe submit` to (a stand-in of) Kaggle.

Real public tables laid out as Kaggle lays them out (tests/public_tables.py): Auto MPG
(regression, scored by MAE, from a folder) and the raw Palmer penguins (multiclass log-loss,
downloaded through the unmodified Kaggle client from the loopback stand-in).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import time
import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import yaml
from conftest import BIN, run_dvc
from kaggle_standin import KaggleStandIn, write_credentials
from public_tables import cars, penguins
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.common.paths import ProjectPaths
from pipeline.submissions.log import SubmissionLog
from pipeline.tabular.competition import read_competition
from pipeline.tabular.metrics import get_metric
from pipeline.tabular.submission import check_submission

pytestmark = pytest.mark.e2e
TOKEN, USER = "KGAT_new_competition_0123456789", "alice"
# Smaller than the defaults, same members: the point is the chain, not the last decimal.
QUICK = {"train": {"epochs": 15}, "lightgbm": {"num_boost_round": 150}, "cv": {"folds": 3}}


def own_store(project: Path) -> dict[str, str]:
    """The project's own MLflow store, whatever an earlier test left in this process's environment."""
    return {"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}


def kpipe(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "TQDM_DISABLE": "1",
            **own_store(cwd), **(env or {})}
    return subprocess.run([str(BIN / "kpipe"), *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=300)


def quicken(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    for section, values in QUICK.items():
        params[section].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def commit(project: Path) -> None:
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@localhost"}
    for command in (["git", "add", "."], ["git", "commit", "-q", "-m", "kpipe new"]):
        subprocess.run(command, cwd=project, check=True, env={**os.environ, **identity})


def repro(project: Path, env: dict[str, str] | None = None) -> None:
    done = run_dvc(project, "repro", env={**own_store(project), **(env or {})}, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_a_regression_from_a_kaggle_folder_to_submissions_whose_scores_come_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From Kaggle's folder to a submission that beats the mean; then two submissions (one scored
    while kpipe waits, one from a `dvc exp run` experiment, pending until `kpipe submissions`)
    whose scores land in the submission log, on the MLflow runs and model versions, in
    `kpipe runs` and in `kpipe leaderboard`."""
    from mlflow.tracking import MlflowClient

    layout = cars(tmp_path / "download")
    made = kpipe(tmp_path, "new", "auto-mpg", "--from", str(layout.folder), "--metric", "mae")
    assert made.returncode == 0, made.stderr
    project = tmp_path / "auto-mpg"
    quicken(project)
    commit(project)  # as the next line `kpipe new` prints says: `dvc exp run` needs a commit
    repro(project)

    paths, competition = ProjectPaths(project), read_competition(project / "competition.yaml")
    submission = pd.read_csv(paths.submission)
    check_submission(submission, competition, layout.truth["id"].to_numpy())
    truth = layout.truth.set_index("id")["Miles_per_Gallon"]
    mae = get_metric("mae")
    model, trivial = mae.score(truth.loc[submission["id"]].to_numpy(), submission["Miles_per_Gallon"]), mae.score(
        truth.loc[submission["id"]].to_numpy(),
        np.full(len(submission), pd.read_csv(layout.folder / "train.csv")["Miles_per_Gallon"].mean()))
    assert model < 0.5 * trivial, (model, trivial)
    cv = yaml.safe_load(paths.competition_cv_metrics.read_text())
    assert cv["mae_mean"] < 0.5 * cv["baseline_mae_mean"]
    assert paths.competition_cv_png.stat().st_size > 10_000
    residuals = yaml.safe_load(paths.competition_residuals_metrics.read_text())
    assert 0 < residuals["worst_rows_share"] < 1 and "Origin_top_share" in residuals
    assert (paths.competition_residuals_dir / "by_Origin.csv").exists()

    def scorer(content: bytes) -> tuple[str | None, str | None]:  # the stand-in's MAE on the held-out truth
        frame = pd.read_csv(io.BytesIO(content)).set_index("id")
        return f"{mae.score(truth.loc[frame.index].to_numpy(), frame['Miles_per_Gallon'].to_numpy()):.5f}", None

    home = tmp_path / "home"
    home.mkdir()
    write_credentials(home, token=TOKEN)
    others = [("team-a", 1.2), ("team-b", 1.9), ("team-c", 2.4), ("team-d", 4.0), ("team-e", 6.5)]
    with KaggleStandIn(tokens={TOKEN: USER}, competition="auto-mpg", scorer=scorer, leaderboard=others,
                       pending_reads=1) as standin:
        env = {"HOME": str(home), **standin.client_env()}
        first = kpipe(project, "submit", "-m", "three members", "--poll-interval", "0.1", env=env)
        # `dvc exp run` as the project's README shows it: the OOF library reads the members a
        # changed torch key leaves alone, and the experiment's model is submitted too.
        exp = run_dvc(project, "exp", "run", "predict", "-n", "slower-mlp", "-S", "train.lr=0.02",
                      env=own_store(project))
        assert exp.returncode == 0, exp.stdout[-2000:] + exp.stderr[-2000:]
        assert "2 of 3 member(s) read from the OOF library" in exp.stdout + exp.stderr
        second = kpipe(project, "submit", "-m", "mlp lr 0.02", "--wait", "0", env=env)
        pending = SubmissionLog.read(paths.submission_log)
        standin.pending_reads = 0  # Kaggle scores it meanwhile
        synced = kpipe(project, "submissions", env=env)
        refs = [s.ref for s in standin.submissions]
    for done in (first, second, synced):
        assert done.returncode == 0, done.stdout + done.stderr
    # The two commands that need no Kaggle, in this process (a kpipe process takes seconds to start).
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", own_store(project)["MLFLOW_TRACKING_URI"])
    mlflow.set_tracking_uri(None)
    runs, board = CliRunner().invoke(app, ["runs"]), CliRunner().invoke(app, ["leaderboard"])
    mlflow.set_tracking_uri(None)
    assert runs.exit_code == 0 and board.exit_code == 0, runs.output + board.output

    assert "Kaggle: 5 submissions remaining today (0 made today, 0 in all)" in first.stdout
    assert "Kaggle: 4 submissions remaining today (1 made today, 1 in all)" in second.stdout
    assert f"submission {refs[1]} is still PENDING on Kaggle" in second.stdout
    assert [r.status for r in pending.rows] == ["COMPLETE", "PENDING"]  # logged at once, whole
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout
    client = MlflowClient(own_store(project)["MLFLOW_TRACKING_URI"])
    one, two = SubmissionLog.read(paths.submission_log).rows
    for row, ref, version, exp_name in ((one, refs[0], "1", ""), (two, refs[1], "2", "slower-mlp")):
        assert (row.ref, row.status, row.origin, row.competition, row.metric) == (ref, "COMPLETE", "kpipe",
                                                                                  "auto-mpg", "mae")
        assert row.file == "submissions/submission.csv" and len(row.file_sha1) == 40
        assert (row.model_name, row.model_version, row.dvc_exp) == ("auto-mpg", version, exp_name)
        assert row.commit.startswith(head[:7])  # `-dirty` once `dvc exp run -S` changed params.yaml
        train = client.get_run(row.mlflow_run_id)
        assert train.data.tags["stage"] == "train" and train.data.tags["cv.run_id"] == row.cv_run_id
        assert (row.cv_mean, row.cv_std) == pytest.approx((train.data.metrics["mae_mean"],
                                                           train.data.metrics["mae_std"]))
        # The score, on the training run, the CV run and the registered model version.
        for run_id in (row.mlflow_run_id, row.cv_run_id):
            assert client.get_run(run_id).data.metrics["public_score"] == pytest.approx(row.public_score)
        assert train.data.tags["kaggle.submission_ref"] == str(ref)
        tags = client.get_model_version("auto-mpg", version).tags
        assert tags["kaggle.submission_ref"] == str(ref)
        assert float(tags["kaggle.public_score"]) == pytest.approx(row.public_score, abs=1e-5)
        # Its place among the other teams of the stand-in's leaderboard.
        better = sum(score < row.public_score for _, score in others)
        assert (row.rank, row.teams) == (better + 1, len(others) + 1)
    assert one.public_score == pytest.approx(model, abs=1e-5) and one.cv_mean == pytest.approx(cv["mae_mean"])
    assert two.public_score == pytest.approx(float(scorer(paths.submission.read_bytes())[0]))
    assert f"submission {refs[1]} scored: public score {two.public_score:.5f}" in synced.stdout

    header, *lines = runs.output.splitlines()
    assert header.split()[:7] == ["run", "date", "commit", "dvc_exp", "cv_mean", "cv_std", "public_score"]
    assert sorted(round(float(line.split()[7]), 4) for line in lines) == sorted(
        round(r.public_score, 4) for r in (one, two))
    assert board.output.splitlines()[0].split()[:2] == ["ref", "date"]
    assert "over 2 scored submissions: public = " in board.output
    assert paths.leaderboard_png.stat().st_size > 10_000
    # The same points as a DVC plot (the project's dvc.yaml declares the log as a scatter).
    plotted = run_dvc(project, "plots", "show", "--json", "submissions/log.csv")
    assert plotted.returncode == 0 and '"public_score"' in plotted.stdout, plotted.stdout[-2000:] + plotted.stderr
    # The log is the project's to commit; the picture is not.
    ignored = [subprocess.run(["git", "check-ignore", "-q", str(p)], cwd=project).returncode == 0
               for p in (paths.submission_log, paths.leaderboard_png)]
    assert ignored == [False, True]


def serve_and_check(project: Path, uri: str, rows: pd.DataFrame, expected: pd.DataFrame) -> None:
    """docs/new-competition.md's `mlflow models serve`, for real on a free loopback port: test
    rows in, the submission's rows out; a row the inferred schema refuses is a 400."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local", "--host", "127.0.0.1",
         "-p", str(port), "-w", "1"],
        env={**os.environ, **own_store(project), "PATH": f"{BIN}:{os.environ['PATH']}"},
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read()[-3000:]
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the server did not come up in 120 s"
            time.sleep(0.5)
        records = json.loads(rows.to_json(orient="records"))
        answer = requests.post(f"{url}/invocations", json={"dataframe_records": records}, timeout=60)
        assert answer.status_code == 200, answer.text
        served = pd.DataFrame(answer.json()["predictions"]).set_index("id")
        assert np.allclose(served.to_numpy(dtype=float), expected.loc[served.index, served.columns].to_numpy())
        refused = requests.post(f"{url}/invocations", timeout=60,
                                json={"dataframe_records": [{**records[0], "Island": "Atlantis"}]})
        assert refused.status_code == 400 and "Island" in refused.text, refused.text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _zip_of(folder: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for csv in sorted(folder.glob("*.csv")):
            zf.write(csv, csv.name)
    return path


def test_a_multiclass_competition_downloaded_with_the_kaggle_client_and_submitted(tmp_path: Path) -> None:
    layout = penguins(tmp_path / "kaggle-side")
    truth = layout.truth.set_index("id")["Species"]
    classes = sorted(truth.unique())
    logloss = get_metric("logloss")

    def score(content: bytes) -> tuple[str | None, str | None]:
        frame = pd.read_csv(io.BytesIO(content)).set_index("id").loc[truth.index]
        y = truth.map({c: i for i, c in enumerate(classes)}).to_numpy()
        return f"{logloss.score(y, frame[classes].to_numpy()):.5f}", None

    home = tmp_path / "home"
    home.mkdir()
    write_credentials(home, token=TOKEN)
    archive = _zip_of(layout.folder, tmp_path / "palmer-penguins.zip")
    with KaggleStandIn(tokens={TOKEN: USER}, archive=archive, competition="palmer-penguins", scorer=score,
                       pending_reads=0) as standin:
        env = {"HOME": str(home), **standin.client_env()}
        made = kpipe(tmp_path, "new", "penguins", "--competition", "palmer-penguins", env=env)
        assert made.returncode == 0, made.stdout + made.stderr
        project = tmp_path / "penguins"
        competition = read_competition(project / "competition.yaml")
        assert competition.task == "multiclass" and competition.submission.layout == "class_probabilities"
        assert yaml.safe_load((project / "params.yaml").read_text())["data"]["source"] == "kaggle"
        quicken(project)
        repro(project, env)

        paths = ProjectPaths(project)
        submission = pd.read_csv(paths.submission)
        check_submission(submission, competition, truth.index.to_numpy())
        public, _ = score(paths.submission.read_bytes())
        prior = pd.read_csv(layout.folder / "train.csv")["Species"].value_counts(normalize=True)[classes]
        trivial = logloss.score(truth.map({c: i for i, c in enumerate(classes)}).to_numpy(),
                                np.tile(prior.to_numpy(), (len(truth), 1)))
        assert float(public) < 0.3 * trivial, (public, trivial)

        serve_and_check(project, "models:/palmer-penguins/latest", pd.read_csv(layout.folder / "test.csv").head(4),
                        submission.set_index("id"))

        sent = kpipe(project, "submit", "-m", "first", "--poll-interval", "0.1", env=env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        (received,) = standin.submissions
        assert received.content == paths.submission.read_bytes()
        assert f"public score {public}" in sent.stdout
