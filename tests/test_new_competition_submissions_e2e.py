"""A competition the package has never met, from Kaggle's folder to submissions whose scores come
back: `kpipe new` on the real Auto MPG table (tests/public_tables.py, regression scored by MAE),
`dvc repro`, a submission that beats the trivial baseline on the held-out rows, then two
submissions to (a stand-in of) Kaggle whose scores land in the submission log, on the MLflow runs
and model versions, in `kpipe runs`, `kpipe leaderboard` and `dvc plots show`.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from competition_projects import TOKEN, USER, commit, kpipe, migrated_store, own_store, quicken, repro
from conftest import run_dvc
from kaggle_standin import KaggleStandIn, write_credentials
from public_tables import cars
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.common.paths import ProjectPaths
from pipeline.submissions.log import SubmissionLog
from pipeline.tabular.competition import read_competition
from pipeline.tabular.metrics import get_metric
from pipeline.tabular.submission import check_submission

pytestmark = pytest.mark.e2e


def test_a_regression_from_a_kaggle_folder_to_submissions_whose_scores_come_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_template: Path) -> None:
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
    migrated_store(project, mlflow_template)  # ignored by the project's .gitignore, like the store a stage makes
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
    assert 0 < residuals["worst_rows_share"] < 1 and "Origin" in [t["by"] for t in residuals["top_shares"]]
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
