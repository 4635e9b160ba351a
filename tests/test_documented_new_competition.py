"""A competition the package has never met, from Kaggle's archive to submissions whose scores
come back: the new-competition commands of the README and docs/new-competition.md run as
written, then two submissions to (a stand-in of) Kaggle from the same project.

The pages call the competition `titanic` and its archive `~/Downloads/titanic.zip`; Titanic
itself does not install offline, so the archive holds a real public table laid out as Kaggle
lays out a competition (the Auto MPG cars of `vega_datasets`, a regression: train.csv, test.csv,
sample_submission.csv), under the pages' names. The project is quickened after `kpipe new`
(fewer epochs and boosting rounds, a short tuning budget), as a competitor edits params.yaml.
The held-out truth of the test rows scores the submission and stands in for Kaggle's scorer;
the scores land in the submission log, on the MLflow runs and model versions, in `kpipe runs`,
`kpipe leaderboard` and `dvc plots show`. One project serves both halves: `kpipe new` and a
pipeline run cost a minute each, and the second half needs a trained project anyway.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from competition_projects import TOKEN, USER, kpipe, own_store
from conftest import run_dvc
from documented import NEW, Shell, for_place
from kaggle_standin import KaggleStandIn, write_credentials
from public_tables import KaggleLayout, cars
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.common.paths import ProjectPaths
from pipeline.submissions.log import SubmissionLog
from pipeline.tabular.competition import read_competition
from pipeline.tabular.metrics import get_metric
from pipeline.tabular.submission import check_submission

pytestmark = pytest.mark.e2e
QUICK = {"train": {"epochs": 10}, "lightgbm": {"num_boost_round": 100}, "cv": {"folds": 3},
         "tune": {"timeout_s": 5}}


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> KaggleLayout:
    """Kaggle's folder of the cars, and the held-out truth of its test rows."""
    return cars(tmp_path_factory.mktemp("new-competition-files"))


@pytest.fixture(scope="module")
def sh(tmp_path_factory: pytest.TempPathFactory, layout: KaggleLayout) -> Shell:
    """A home with Kaggle's archive in ~/Downloads, and a folder to work in with the project's
    environment as its `.venv` (what `source .venv/bin/activate` finds)."""
    base = tmp_path_factory.mktemp("new-competition")
    home, work = base / "home", base / "work"
    (home / "Downloads").mkdir(parents=True)
    work.mkdir()
    with zipfile.ZipFile(home / "Downloads" / "titanic.zip", "w") as archive:
        for name in ("train.csv", "test.csv", "sample_submission.csv"):
            archive.write(layout.folder / name, name)
    (work / ".venv").symlink_to(sys.prefix)
    return Shell(work, home, for_place(NEW), venv=work / ".venv")


def test_a_competition_from_kaggles_zip_to_a_tuned_submission(sh: Shell, layout: KaggleLayout) -> None:
    out = sh.ok("kpipe new titanic --from ~/Downloads/titanic.zip")
    assert "created titanic: regression on Miles_per_Gallon" in out
    project = sh.cwd / "titanic"
    sh.fails("kpipe new titanic --competition titanic", says="already exists")
    sh.ok("cd titanic && git add . && git commit -m kpipe new")

    params = yaml.safe_load((project / "params.yaml").read_text())
    for section, values in QUICK.items():
        params[section].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh.ok("cd titanic && dvc repro", timeout=900)
    for stage in ("fetch", "validate", "cv", "train", "predict"):
        assert f"Running stage '{stage}'" in out
    # A submission Kaggle would take, better than the mean by far on the held-out rows, and the
    # stages' own evidence of it: CV against the baseline, the residuals by column.
    paths, competition = ProjectPaths(project), read_competition(project / "competition.yaml")
    submission = pd.read_csv(paths.submission)
    assert list(submission.columns) == ["id", "Miles_per_Gallon"]
    check_submission(submission, competition, layout.truth["id"].to_numpy())
    truth = layout.truth.set_index("id")["Miles_per_Gallon"].loc[submission["id"]].to_numpy()
    rmse = get_metric("rmse")
    mean = pd.read_csv(layout.folder / "train.csv")["Miles_per_Gallon"].mean()
    model, trivial = rmse.score(truth, submission["Miles_per_Gallon"]), rmse.score(truth, np.full(len(truth), mean))
    assert model < 0.5 * trivial, (model, trivial)
    cv = yaml.safe_load(paths.competition_cv_metrics.read_text())
    assert cv["rmse_mean"] < 0.5 * cv["baseline_rmse_mean"]
    assert paths.competition_cv_png.stat().st_size > 10_000
    residuals = yaml.safe_load(paths.competition_residuals_metrics.read_text())
    assert 0 < residuals["worst_rows_share"] < 1 and "Origin" in [t["by"] for t in residuals["top_shares"]]
    assert (paths.competition_residuals_dir / "by_Origin.csv").exists()

    assert "Data and pipelines are up to date" in sh.ok("dvc repro", cwd=project)
    runs = sh.ok("kpipe runs", cwd=project)
    assert "cv_mean" in runs and len(runs.strip().splitlines()) == 2  # the header and the one CV run
    sh.fails("kpipe submit", cwd=project, says="Kaggle credentials not found", code=2)
    assert "no submissions logged" in sh.ok("kpipe leaderboard", cwd=project)

    sh.ok("kpipe tune --n-trials 30", cwd=project, timeout=600)
    assert (project / "params.tuned.yaml").exists()
    status = sh.ok("kpipe tune --status", cwd=project)
    assert "study 'titanic' in " in status and "best: trial " in status and "CV rmse " in status, status
    sh.ok("cp params.tuned.yaml params.yaml && dvc repro", cwd=project, timeout=900)
    assert (project / "submissions" / "submission.csv").exists()


def test_two_submissions_whose_scores_come_back(sh: Shell, layout: KaggleLayout, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The tuned project, committed, sends two submissions: one scored while kpipe waits, one
    from a `dvc exp run` experiment, pending until `kpipe submissions`. Their scores land in the
    submission log, on the MLflow runs and model versions, in `kpipe runs` and `kpipe leaderboard`."""
    from mlflow.tracking import MlflowClient

    project = sh.cwd / "titanic"
    paths = ProjectPaths(project)
    sh.script(f"cd {project} && git add --all && git commit --quiet -m tuned")
    truth = layout.truth.set_index("id")["Miles_per_Gallon"]
    rmse = get_metric("rmse")

    def scorer(content: bytes) -> tuple[str | None, str | None]:  # the stand-in's RMSE on the held-out truth
        frame = pd.read_csv(io.BytesIO(content)).set_index("id")
        return f"{rmse.score(truth.loc[frame.index].to_numpy(), frame['Miles_per_Gallon'].to_numpy()):.5f}", None

    home = tmp_path / "home"
    home.mkdir()
    write_credentials(home, token=TOKEN)
    others = [("team-a", 1.5), ("team-b", 2.5), ("team-c", 3.0), ("team-d", 5.0), ("team-e", 8.0)]
    with KaggleStandIn(tokens={TOKEN: USER}, competition="titanic", scorer=scorer, leaderboard=others,
                       pending_reads=1) as standin:
        env = {"HOME": str(home), **standin.client_env()}
        first = kpipe(project, "submit", "-m", "three members", "--poll-interval", "0.1", env=env)
        sent, sent_cv = paths.submission.read_bytes(), yaml.safe_load(paths.competition_cv_metrics.read_text())
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
    # The tuned model was trained before its commit, the experiment's on it: each row names the
    # commit its model was trained on, `-dirty` as its params.yaml was.
    tuned, head = subprocess.run(["git", "rev-parse", "HEAD~1", "HEAD"], cwd=project, capture_output=True,
                                 text=True).stdout.split()
    client = MlflowClient(own_store(project)["MLFLOW_TRACKING_URI"])
    one, two = SubmissionLog.read(paths.submission_log).rows
    # The tuned run registered the second model version; the experiment's, the third.
    for row, ref, version, exp_name, commit in ((one, refs[0], "2", "", tuned),
                                                (two, refs[1], "3", "slower-mlp", head)):
        assert (row.ref, row.status, row.origin, row.competition, row.metric) == (ref, "COMPLETE", "kpipe",
                                                                                  "titanic", "rmse")
        assert row.file == "submissions/submission.csv" and len(row.file_sha1) == 40
        assert (row.model_name, row.model_version, row.dvc_exp) == ("titanic", version, exp_name)
        assert row.commit.startswith(commit[:7]) and row.commit.endswith("-dirty")
        train = client.get_run(row.mlflow_run_id)
        assert train.data.tags["stage"] == "train" and train.data.tags["cv.run_id"] == row.cv_run_id
        assert (row.cv_mean, row.cv_std) == pytest.approx((train.data.metrics["rmse_mean"],
                                                           train.data.metrics["rmse_std"]))
        # The score, on the training run, the CV run and the registered model version.
        for run_id in (row.mlflow_run_id, row.cv_run_id):
            assert client.get_run(run_id).data.metrics["public_score"] == pytest.approx(row.public_score)
        assert train.data.tags["kaggle.submission_ref"] == str(ref)
        tags = client.get_model_version("titanic", version).tags
        assert tags["kaggle.submission_ref"] == str(ref)
        assert float(tags["kaggle.public_score"]) == pytest.approx(row.public_score, abs=1e-5)
        # Its place among the other teams of the stand-in's leaderboard.
        better = sum(score < row.public_score for _, score in others)
        assert (row.rank, row.teams) == (better + 1, len(others) + 1)
    assert one.public_score == pytest.approx(float(scorer(sent)[0])) and one.cv_mean == pytest.approx(
        sent_cv["rmse_mean"])
    assert two.public_score == pytest.approx(float(scorer(paths.submission.read_bytes())[0]))
    assert f"submission {refs[1]} scored: public score {two.public_score:.5f}" in synced.stdout

    header, *lines = runs.output.splitlines()
    assert header.split()[:7] == ["run", "date", "commit", "dvc_exp", "cv_mean", "cv_std", "public_score"]
    scored = sorted(round(float(line.split()[7]), 4) for line in lines if line.split()[7] != "-")
    assert scored == sorted(round(r.public_score, 4) for r in (one, two))
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


def test_every_new_competition_command_ran(sh: Shell) -> None:
    assert sh.ran == set(sh.commands), sorted(set(sh.commands) - sh.ran)

