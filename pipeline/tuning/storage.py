"""Where a study lives: an Optuna storage from its spec, opened the same way by every worker.

A spec is "" (the project's default journal file), a path (a journal file there) or an SQLAlchemy
URL (`sqlite:///...`, `postgresql://...`). This module needs Optuna and SQLAlchemy only, not the
pipeline being tuned: `kpipe tune --status`, and the check that a database's host resolves,
answer before any model code is imported.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.trial import FrozenTrial

from pipeline.common.errors import PipelineError
from pipeline.common.hosts import unresolved
from pipeline.common.paths import ProjectPaths
from pipeline.common.redact import redact

log = logging.getLogger(__name__)

# An RDB storage (several processes or machines) gets this long to wait for a locked SQLite file.
SQLITE_TIMEOUT_S = 60
# A dead worker's params are queued again this many times: a worker lost to a preempted machine
# gets its trial rerun, a trial that kills every worker it lands on (out of memory) is given up.
STALE_TRIAL_RETRIES = 2
# The user attribute naming the worker (host:pid) that ran a trial.
WORKER_ATTR = "worker"


class TuningError(PipelineError):
    """The study could not run or produced no usable trial."""


class StorageUnreachable(TuningError):
    """A database storage whose host name does not resolve: no retry can reach it."""


def open_storage(spec: str, paths: ProjectPaths, heartbeat_s: int = 0) -> optuna.storages.BaseStorage:
    """A storage from its URL: "" = the default journal file, a path = a journal file there,
    `sqlite:///...`, `postgresql://...` (any SQLAlchemy URL) = a database.

    Journal files work for several processes on one machine (file locks); a database server
    lets workers on several machines share one study. SQLite waits for its lock instead of
    failing at once, since several local workers write to it together. `heartbeat_s` applies to
    database storages only: Optuna's journal storage has no heartbeat.
    """
    if "://" in spec:
        check_storage_host(spec)
        kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if spec.startswith("sqlite") else {}
        return retrying(lambda: _rdb_storage(database_url(spec), kwargs, heartbeat_s))
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = journal_path(spec, paths)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def database_url(url: str) -> str:
    """`postgresql://...` with the driver the `team` extra installs (psycopg 3): SQLAlchemy's
    default for a bare `postgresql://` is psycopg2, which this project does not install. An
    explicit driver (`postgresql+psycopg2://`) is kept."""
    prefix = "postgresql://"
    return "postgresql+psycopg://" + url.removeprefix(prefix) if url.startswith(prefix) else url


def check_storage_host(spec: str) -> None:
    """A database URL's host name resolves, or a `StorageUnreachable` naming the storage at once.

    A name that does not resolve (a typo, a network that cannot see the server, a placeholder such
    as `db.example`) is not a busy server: the retries kept for workers racing to create a study
    would only delay the same error. A URL without a host name (SQLite, a Unix socket, an address
    given as `hostaddr`), or one SQLAlchemy cannot parse or has no dialect for, is left to the
    driver, which says what is wrong; of several hosts (`h1,h2`, libpq's failover), one that
    resolves is enough.
    """
    import sqlalchemy.engine
    import sqlalchemy.exc

    try:
        url = sqlalchemy.engine.make_url(database_url(spec))
        url.get_dialect()
    except (sqlalchemy.exc.ArgumentError, ValueError):  # NoSuchModuleError (no dialect) is an ArgumentError
        return
    if not url.host or {"host", "hostaddr"} & set(url.query):
        return
    hosts = [host for host in url.host.split(",") if host and not host.startswith("/")]
    if (reason := unresolved(hosts)) is not None:
        raise StorageUnreachable(f"cannot open the Optuna storage {redact(spec)}: the host {', '.join(hosts)} does "
                                 f"not resolve ({reason}); check the host name in --storage or tune.storage")


def describe_storage(spec: str, paths: ProjectPaths) -> str:
    """The storage as it may be printed: a URL without its password, or the journal file."""
    return redact(spec) if "://" in spec else str(journal_path(spec, paths))


def journal_path(spec: str, paths: ProjectPaths) -> Path:
    """The journal file of a storage spec that is not a URL ("" = the default one)."""
    path = Path(spec) if spec else paths.optuna_journal
    return path if path.is_absolute() else paths.root / path


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], heartbeat_s: int) -> optuna.storages.RDBStorage:
    """A database storage, with Optuna's heartbeat unless `heartbeat_s` is 0.

    A running trial records a heartbeat every `heartbeat_s` seconds. A worker that starts a trial
    fails every RUNNING trial whose last heartbeat is older than the grace period (Optuna's
    default, twice the interval), and the retry callback queues that trial's params as a WAITING
    trial, which the next `ask()` of any worker picks up. Optuna marks the heartbeat and the
    callback experimental; they are the mechanism this project relies on, so the warning is not
    shown on every start.
    """
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    if heartbeat_s <= 0:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_s,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=STALE_TRIAL_RETRIES))


def retried_from(trial: FrozenTrial) -> int | None:
    """The number of the dead worker's trial that `trial` reruns, if it is such a retry (the
    latest of a chain of retries: a retry's worker may die too)."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        history = RetryHeartbeatStaleTrialCallback.retry_history(trial)
    return history[-1] if history else None


def worker_id() -> str:
    """This process as the team sees it: `host:pid` (threads of `--n-jobs` share it)."""
    return f"{socket.gethostname()}:{os.getpid()}"


T = TypeVar("T")
# What a database server says when it will never let this worker in: no retry changes that.
REFUSALS = ("password authentication failed", "no password supplied", "Connection refused",
            "could not translate host name", "failed to resolve host")


def _refused(exc: Exception) -> bool:
    return any(text in str(exc) for text in REFUSALS)


def one_line(exc: Exception) -> str:
    """A database error as one line: libpq's lines joined, SQLAlchemy's "Background" link dropped."""
    lines = [line.strip() for line in str(exc).splitlines()
             if line.strip() and not line.strip().startswith("(Background on this error")]
    return "; ".join(lines)


def retrying(make: Callable[[], T], attempts: int = 6) -> T:
    """Workers started together race to create the schema and the study in a fresh database:
    the loser sees "table already exists" or a unique-key conflict. Both mean "it exists now";
    trying again joins it."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return make()
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as exc:
            if attempt == attempts - 1 or _refused(exc):
                raise
            log.info("storage busy (%s); retrying", type(exc).__name__)
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")
