"""A tracking server that lets in only the team: MLflow's basic-auth app on 127.0.0.1, for real
(`running_mlflow(auth=True)` on the session's PostgreSQL). Everyone needs a user; a read-only
user reads but cannot log a run or register a model version; the team's user can; a stage with
wrong credentials keeps its results and says, in one warning, which variables to set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.common import tracking
from pipeline.common.paths import ProjectPaths
from pipeline.common.tracking import RunRecord, log_record

if TYPE_CHECKING:
    from pipeline.team.services import MlflowServer, PostgresServer

pytest_plugins = ["services"]
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def auth_server(postgres_server: PostgresServer) -> Iterator[MlflowServer]:
    from pipeline.team.services import running_mlflow

    with running_mlflow(postgres_server, database="mlflow_auth", auth=True) as server:
        yield server


@pytest.fixture(scope="module")
def users(auth_server: MlflowServer) -> dict[str, str]:
    return {name: auth_server.add_user(name) for name in ("team", "reader")}


def as_user(monkeypatch: pytest.MonkeyPatch, user: str, password: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


def test_each_user_may_do_only_what_it_was_given(auth_server: MlflowServer, users: dict[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    search = f"{auth_server.url}/api/2.0/mlflow/experiments/search"
    assert requests.post(search, json={"max_results": 1}, timeout=30).status_code == 401  # no user
    assert requests.get(f"{auth_server.url}/health", timeout=30).status_code == 200  # what probes ask

    as_user(monkeypatch, "team", users["team"])
    team = MlflowClient(auth_server.url)
    experiment = team.create_experiment("house-prices-auth")
    run = team.create_run(experiment)
    team.log_metric(run.info.run_id, "log_rmse_mean", 0.12)
    team.create_registered_model("house-prices-auth")
    version = team.create_model_version("house-prices-auth", f"runs:/{run.info.run_id}/model", run.info.run_id)
    assert version.version == "1"

    as_user(monkeypatch, "reader", users["reader"])
    reader = MlflowClient(auth_server.url)
    (seen,) = reader.search_runs([experiment])
    assert seen.data.metrics["log_rmse_mean"] == 0.12
    for forbidden in (lambda: reader.create_run(experiment),
                      lambda: reader.create_model_version("house-prices-auth", f"runs:/{run.info.run_id}/model",
                                                          run.info.run_id)):
        with pytest.raises(MlflowException, match="error code 403"):
            forbidden()
    assert len(team.search_model_versions("name = 'house-prices-auth'")) == 1  # nobody poisoned it


def test_a_stage_with_wrong_credentials_keeps_its_results_and_says_what_to_set(
        auth_server: MlflowServer, users: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", auth_server.url)
    monkeypatch.setattr(tracking, "_disabled", {})  # this process's earlier failures are not this test's
    as_user(monkeypatch, "team", "not-the-password-0123")
    with caplog.at_level(logging.WARNING, logger="pipeline.common.tracking"):
        assert log_record(ProjectPaths(tmp_path), "house-prices-auth", RunRecord("cv", metrics={"x": 1.0})) is None
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "pipeline.common.tracking"]
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in warning
    assert "not-the-password-0123" not in warning and users["team"] not in warning
