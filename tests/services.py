"""Session fixtures for the real team services (pipeline/team/services.py): a PostgreSQL
cluster and `mlflow server` on 127.0.0.1, started once per session and stopped after: a plain
one (`mlflow_server`), and the team's, with MLflow's basic-auth app and the users `admin`,
`team` (logs runs, registers versions) and `reader` (`team_server`).

A test module gets them with `pytest_plugins = ["services"]` (the plugin is registered once for
the whole session, so every module that names it shares the same servers). Where PostgreSQL
cannot run here, the fixtures skip with what to install.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.team.services import (
    MlflowServer,
    PostgresServer,
    ServiceUnavailable,
    check_postgres,
    running_mlflow,
    running_postgres,
)

STARTUP_SECONDS: dict[str, float] = {}  # what each fixture took to start, for reports


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster for the whole session; `.create_database(name)` gives a URL."""
    try:
        check_postgres()
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    with running_postgres() as server:
        STARTUP_SECONDS["postgres"] = server.startup_s
        yield server


@pytest.fixture(scope="session")
def mlflow_service(postgres_server: PostgresServer) -> Iterator[MlflowServer]:
    with running_mlflow(postgres_server) as server:
        STARTUP_SECONDS["mlflow"] = server.startup_s
        yield server


@pytest.fixture(scope="session")
def mlflow_server(mlflow_service: MlflowServer) -> str:
    """The tracking server's URL, http://127.0.0.1:PORT."""
    return mlflow_service.url


TEAM_USERS = ("team", "reader")


@pytest.fixture(scope="session")
def team_server(postgres_server: PostgresServer) -> Iterator[MlflowServer]:
    """The team's tracking server: basic-auth, every request needs a user; `.env(user)` gives a
    client's variables. Nothing is granted yet: tests run `kpipe team-init` as the admin."""
    with running_mlflow(postgres_server, database="mlflow_team", auth=True) as server:
        for user in TEAM_USERS:
            server.add_user(user)
        yield server
