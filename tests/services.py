"""Session fixtures for the real team services (pipeline/team/services.py): a PostgreSQL
cluster and `mlflow server` on 127.0.0.1, started once per session and stopped after.

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
