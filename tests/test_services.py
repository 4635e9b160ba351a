"""The team services for real: Optuna's RDBStorage on PostgreSQL shared by two worker processes,
and an MLflow client talking to `mlflow server` (PostgreSQL backend, artifacts proxied)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pipeline.team.services import MlflowServer, PostgresServer

# tests/services.py as a plugin: its session fixtures postgres_server, mlflow_service and
# mlflow_server (imported by pytest, with assert rewriting, not by a plain import here).
# Real PostgreSQL and `mlflow server` processes: end-to-end, out of the edit-test loop.
pytestmark = pytest.mark.e2e
pytest_plugins = ["services"]

WORKER = textwrap.dedent("""
    import sys
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, worker = sys.argv[1], sys.argv[2]
    study = optuna.load_study(study_name="shared", storage=url)

    def objective(trial):
        trial.set_user_attr("worker", worker)
        x = trial.suggest_float("x", -10, 10)
        return (x - 2) ** 2

    study.optimize(objective, n_trials=3)
""")


def test_postgres_takes_only_the_password_from_pgpassfile(postgres_server: PostgresServer, tmp_path: Path) -> None:
    import psycopg

    where = {"host": postgres_server.host, "port": postgres_server.port, "user": postgres_server.user,
             "dbname": "postgres", "connect_timeout": 5}
    with psycopg.connect(**where, passfile=str(postgres_server.pgpass)) as conn:
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)
    assert os.environ["PGPASSFILE"] == str(postgres_server.pgpass)  # what child processes inherit
    assert oct(postgres_server.pgpass.stat().st_mode & 0o777) == "0o600"
    wrong = tmp_path / "pgpass"
    wrong.write_text(f"127.0.0.1:*:*:{postgres_server.user}:not-the-password\n")
    wrong.chmod(0o600)
    for refused in ({"passfile": str(wrong)}, {"passfile": os.devnull}):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(**where, **refused)


def test_postgres_databases_are_separate(postgres_server: PostgresServer) -> None:
    import sqlalchemy as sa

    first, second = postgres_server.create_database("first_db"), postgres_server.create_database("second_db")
    # No password in the URL: libpq reads it from PGPASSFILE (the cluster wants scram-sha-256).
    assert first.startswith(f"postgresql+psycopg://{postgres_server.user}@127.0.0.1:")
    assert postgres_server.password not in first
    engine = sa.create_engine(first)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (v int)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1), (2)"))
            assert conn.execute(sa.text("SELECT sum(v) FROM t")).scalar() == 3
    finally:
        engine.dispose()
    engine = sa.create_engine(second)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT to_regclass('t')")).scalar() is None
    finally:
        engine.dispose()


def test_optuna_rdb_storage_shared_by_two_processes(postgres_server: PostgresServer, tmp_path: Path) -> None:
    import optuna

    url = postgres_server.create_database("optuna_shared")
    storage = optuna.storages.RDBStorage(url)
    optuna.create_study(study_name="shared", storage=storage, direction="minimize",
                        sampler=optuna.samplers.RandomSampler(seed=0))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [subprocess.Popen([sys.executable, str(script), url, name], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for name in ("a", "b")]
    for proc in workers:
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out

    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 6
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sorted(t.number for t in trials) == list(range(6))
    assert sorted(t.user_attrs["worker"] for t in trials) == ["a", "a", "a", "b", "b", "b"]
    assert study.best_value == min(t.value for t in trials)
    storage.remove_session()
    storage.engine.dispose()


def use_tracking_uri(monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    """MLFLOW_TRACKING_URI=uri for this test, as a user sets it. An earlier test's
    mlflow.set_tracking_uri() would win over the variable (and it sets the variable too), so
    that global goes back to unset first; monkeypatch then leaves the variable unset after."""
    import mlflow

    mlflow.set_tracking_uri(None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert mlflow.get_tracking_uri() == uri


def test_mlflow_client_through_tracking_server(mlflow_service: MlflowServer, mlflow_server: str,
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    use_tracking_uri(monkeypatch, mlflow_server)
    client = MlflowClient()
    # No mlflow.set_experiment: it would leave its id active for the rest of the session's tests.
    experiment_id = client.create_experiment("services-smoke")
    note = tmp_path / "note.txt"
    note.write_text("proxied through the tracking server\n")

    with mlflow.start_run(experiment_id=experiment_id, run_name="parent") as parent:
        mlflow.log_params({"lr": 0.01, "layers": 3})
        for step, loss in enumerate([1.0, 0.5, 0.25]):
            mlflow.log_metric("loss", loss, step=step)
        # A nested run takes experiment_id too: without it (and without set_experiment) it lands in
        # the Default experiment, parent tag and all.
        with mlflow.start_run(experiment_id=experiment_id, run_name="fold-0", nested=True) as child:
            mlflow.log_metric("rmse", 0.14)
        mlflow.log_artifact(str(note), artifact_path="notes")

    run = client.get_run(parent.info.run_id)
    assert run.data.params == {"lr": "0.01", "layers": "3"}
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(0, 1.0), (1, 0.5), (2, 0.25)]
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # served by the server, not a local path

    children = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert [c.info.run_id for c in children] == [child.info.run_id]
    assert children[0].data.metrics == {"rmse": 0.14}

    assert [f.path for f in client.list_artifacts(run.info.run_id, "notes")] == ["notes/note.txt"]
    local = client.download_artifacts(run.info.run_id, "notes/note.txt", str(tmp_path / "download"))
    assert Path(local).read_text() == note.read_text()
    # ...and the server wrote it under its --artifacts-destination.
    stored = list(mlflow_service.artifacts_dir.rglob("note.txt"))
    assert len(stored) == 1 and stored[0].read_text() == note.read_text()


def listening_addresses(port: int) -> set[str]:
    """The addresses a socket of this machine listens on at `port` (/proc/net/tcp and tcp6)."""
    import ipaddress

    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # the kernel writes each 32-bit word in host (little-endian) order
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def test_every_service_listens_on_loopback_only(postgres_server: PostgresServer, mlflow_service: MlflowServer) -> None:
    from services import STARTUP_SECONDS

    mlflow_port = int(mlflow_service.url.rsplit(":", 1)[1])
    assert listening_addresses(postgres_server.port) == {"127.0.0.1"}
    assert listening_addresses(mlflow_port) == {"127.0.0.1"}
    print(f"services start-up: postgres {STARTUP_SECONDS['postgres']:.2f} s, "  # shown with -s or on failure
          f"mlflow server {STARTUP_SECONDS['mlflow']:.2f} s")


HEARTBEAT_WORKER = textwrap.dedent("""
    import pathlib, sys, time, warnings
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    warnings.simplefilter("ignore")  # heartbeat and the retry callback are experimental
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, mode, marker = sys.argv[1:]
    storage = RDBStorage(url, heartbeat_interval=1, grace_period=2,
                         heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
    study = optuna.load_study(study_name="heartbeat", storage=storage)

    def objective(trial):
        x = trial.suggest_float("x", -10, 10)
        if mode == "hang":
            pathlib.Path(marker).write_text(str(x))
            time.sleep(600)  # SIGKILLed here
        time.sleep(0.5)
        return (x - 2) ** 2

    def stop_after_retry(study, trial):
        if RetryHeartbeatStaleTrialCallback.retried_trial_number(trial) is not None:
            study.stop()

    study.optimize(objective, n_trials=1 if mode == "hang" else 60, timeout=60, callbacks=[stop_after_retry])
""")


def test_optuna_heartbeat_fails_and_retries_a_killed_workers_trial(postgres_server: PostgresServer,
                                                                   tmp_path: Path) -> None:
    """A worker SIGKILLed mid-trial leaves it RUNNING; another worker's optimize() (each of its
    trials starts with fail_stale_trials) marks it FAIL once the grace period has passed since
    its last heartbeat, and RetryHeartbeatStaleTrialCallback re-queues its params as a new trial."""
    import optuna

    url = postgres_server.create_database("optuna_heartbeat")
    optuna.create_study(study_name="heartbeat", storage=url)
    script, marker = tmp_path / "worker.py", tmp_path / "started"
    script.write_text(HEARTBEAT_WORKER)
    hang = subprocess.Popen([sys.executable, str(script), url, "hang", str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert hang.poll() is None and time.monotonic() < deadline, "the worker never started its trial"
            time.sleep(0.05)
        time.sleep(1.5)  # a heartbeat or two
    finally:
        hang.kill()
        hang.wait()
    study = optuna.load_study(study_name="heartbeat", storage=url)
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.RUNNING]

    subprocess.run([sys.executable, str(script), url, "run", str(marker)], check=True, timeout=120)

    trials = optuna.load_study(study_name="heartbeat", storage=url).get_trials()
    killed, retry = trials[0], trials[-1]
    assert killed.state == optuna.trial.TrialState.FAIL and killed.params["x"] == float(marker.read_text())
    assert retry.number > 0 and retry.state == optuna.trial.TrialState.COMPLETE
    assert retry.params == killed.params
    assert retry.system_attrs == {"failed_trial": 0, "retry_history": [0]}
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials[1:])


# What bounds a client's time on a dead tracking server (MLflow 3.17): one REST call makes
# 1 + MAX_RETRIES attempts, each up to TIMEOUT s (connect and read), with a sleep of
# BACKOFF_FACTOR * 2**(n-1) (+ up to JITTER s) before the n-th retry after the first. The
# defaults (7 retries, factor 2, jitter 1, 120 s) keep start_run() on a closed port for ~4 min.
FAIL_FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "1",
             "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0"}


def test_mlflow_client_fails_fast_on_a_hung_server(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    with socket.socket() as hung:  # completes TCP handshakes (backlog), never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        use_tracking_uri(monkeypatch, url)
        for name, value in FAIL_FAST.items():
            monkeypatch.setenv(name, value)
        start = time.monotonic()
        with pytest.raises(MlflowException, match=f"API request to {url}/"):
            mlflow.start_run()
        elapsed = time.monotonic() - start
    assert mlflow.active_run() is None
    assert 1.5 < elapsed < 10, elapsed  # two attempts of 1 s each
