"""A tracking server that lets in only the team: MLflow's basic-auth app on 127.0.0.1, for real
(the session's `team_server`). Everyone needs a user; a read-only user reads but cannot log a
run or register a model version; the team's user can; a stage with wrong credentials keeps its
results and says, in one warning, which variables to set; a password written into the URL is
never printed.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from conftest import ROOT, kpipe
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.common import tracking
from pipeline.common.paths import ProjectPaths
from pipeline.common.tracking import RunRecord, log_record

if TYPE_CHECKING:
    from pipeline.team.services import MlflowServer

pytest_plugins = ["services"]
pytestmark = pytest.mark.e2e


def as_user(monkeypatch: pytest.MonkeyPatch, server: MlflowServer, user: str) -> None:
    for name, value in server.env(user).items():
        monkeypatch.setenv(name, value)


def test_each_user_may_do_only_what_it_was_given(team_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> None:
    search = f"{team_server.url}/api/2.0/mlflow/experiments/search"
    assert requests.post(search, json={"max_results": 1}, timeout=30).status_code == 401  # no user
    assert requests.get(f"{team_server.url}/health", timeout=30).status_code == 200  # what probes ask

    as_user(monkeypatch, team_server, "team")
    team = MlflowClient(team_server.url)
    experiment = team.create_experiment("house-prices-auth")
    run = team.create_run(experiment)
    team.log_metric(run.info.run_id, "log_rmse_mean", 0.12)
    team.create_registered_model("house-prices-auth")
    version = team.create_model_version("house-prices-auth", f"runs:/{run.info.run_id}/model", run.info.run_id)
    assert version.version == "1"

    as_user(monkeypatch, team_server, "reader")
    reader = MlflowClient(team_server.url)
    (seen,) = reader.search_runs([experiment])
    assert seen.data.metrics["log_rmse_mean"] == 0.12
    for forbidden in (lambda: reader.create_run(experiment),
                      lambda: reader.create_model_version("house-prices-auth", f"runs:/{run.info.run_id}/model",
                                                          run.info.run_id)):
        with pytest.raises(MlflowException, match="error code 403"):
            forbidden()
    assert len(team.search_model_versions("name = 'house-prices-auth'")) == 1  # nobody poisoned it


def test_a_stage_with_wrong_credentials_keeps_its_results_and_says_what_to_set(
        team_server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team_server.url)
    monkeypatch.setattr(tracking, "_disabled", {})  # this process's earlier failures are not this test's
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "team")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password-0123")
    with caplog.at_level(logging.WARNING, logger="pipeline.common.tracking"):
        assert log_record(ProjectPaths(tmp_path), "house-prices-auth", RunRecord("cv", metrics={"x": 1.0})) is None
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "pipeline.common.tracking"]
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in warning
    assert "not-the-password-0123" not in warning and team_server.passwords["team"] not in warning


def kpipe_runs(repo: Path, tracking_uri: str) -> subprocess.CompletedProcess:
    """`kpipe runs` with MLFLOW_TRACKING_URI as given and no other MLflow variable."""
    return kpipe(repo, "runs", env={"MLFLOW_TRACKING_URI": tracking_uri}, timeout=120)


def test_a_password_written_into_the_tracking_url_is_never_printed(team_server: MlflowServer, tmp_path: Path) -> None:
    password = team_server.passwords["team"]
    host = team_server.url.removeprefix("http://")
    for name in ("params.yaml", "dvc.yaml"):  # a project folder, as kpipe requires
        (tmp_path / name).write_text((ROOT / name).read_text())

    wrong = kpipe_runs(tmp_path, f"http://team:wrong-{password}@{host}")
    assert wrong.returncode == 1
    (line,) = wrong.stderr.strip().splitlines()
    assert line.startswith("error: cannot read the runs: the tracking server wants a user"), line
    assert password not in wrong.stdout + wrong.stderr

    right = kpipe_runs(tmp_path, f"http://team:{password}@{host}")
    assert right.returncode == 0, right.stderr
    # The session's team server may hold test_team's runs already: either answer is the listing.
    assert "no CV runs yet" in right.stdout or right.stdout.split()[:2] == ["run", "date"], right.stdout
    assert password not in right.stdout + right.stderr
