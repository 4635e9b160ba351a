"""MLflow behind one small adapter.

Stages compute and write their outputs first, then hand a `RunRecord` to `log_record`.
A tracking failure (store locked, server down, disk full) is logged as one warning and never
undoes or fails a stage whose outputs already exist: DVC's files are the source of truth,
MLflow is the place to compare runs.

A tracking failure must also be cheap. MLflow's HTTP client retries for minutes by default,
so the adapter bounds its retries and timeouts (unless the user set MLflow's own variables),
checks that a tracking server answers before the first call, and stops tracking for the rest
of the process after the first failure. MLflow's own error logs (SQLAlchemy tracebacks) are
silenced during the adapter's calls: the one warning says what failed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.common.paths import ProjectPaths

log = logging.getLogger(__name__)

HOUSE_PRICES_EXPERIMENT = "house-prices"
FASHION_EXPERIMENT = "fashion-mnist"


# MLflow's HTTP client settings (read on every request): a dead or hung server costs seconds.
CLIENT_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
PROBE_TIMEOUT_S = 3.0
_disabled: dict[str, str] = {}  # tracking URI -> why tracking to it is off in this process


def _bound_client() -> None:
    for name, value in CLIENT_LIMITS.items():
        os.environ.setdefault(name, value)


def _disable(uri: str, exc: BaseException | str) -> None:
    """Warn once and turn tracking to `uri` off for the rest of this process."""
    reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    if uri not in _disabled:
        log.warning("MLflow tracking failed (%s); the computation and its outputs are unaffected, "
                    "and nothing more is tracked to %s in this run.", reason, uri)
    _disabled[uri] = reason


@contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's and SQLAlchemy's loggers above CRITICAL while the adapter calls into MLflow."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic", "sqlalchemy")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _usable(uri: str) -> bool:
    """False (after the one warning) when tracking is off or an HTTP tracking server does not
    answer its health check within `PROBE_TIMEOUT_S`."""
    if uri in _disabled:
        return False
    if uri.startswith(("http://", "https://")):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S).raise_for_status()
        except requests.RequestException as exc:
            _disable(uri, f"no tracking server answers at {uri}: {type(exc).__name__}")
            return False
    _bound_client()
    return True


def tracking_uri(paths: ProjectPaths) -> str:
    """`MLFLOW_TRACKING_URI` if set, else an SQLite store at the project root.

    The path is absolute so that DVC's queued experiments (run in a temporary copy) still
    log to the project's store.
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{paths.mlflow_db.resolve()}"


@dataclass
class RunRecord:
    """Everything one MLflow run should hold, collected while the stage computes."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    curves: Mapping[str, Sequence[float]] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    artifacts: Sequence[Path] = ()
    children: Sequence[RunRecord] = ()


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"train": {"lr": 0.1}}` -> `{"train.lr": 0.1}`: MLflow params are flat."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = ",".join(map(str, value))
        else:
            flat[name] = value
    return flat


def log_record(paths: ProjectPaths, experiment: str, record: RunRecord) -> str | None:
    """Log `record` (and its children as nested runs); return the run id, or None on failure."""
    uri = tracking_uri(paths)
    if not _usable(uri):
        return None
    try:
        with _quiet():
            import mlflow

            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment(experiment)
            return _log(mlflow, record, nested=False)
    except Exception as exc:  # noqa: BLE001 - tracking must never break a finished stage
        _disable(uri, exc)
        return None


def _log(mlflow: Any, record: RunRecord, nested: bool) -> str:
    with mlflow.start_run(run_name=record.name, nested=nested) as run:
        _log_data(mlflow.tracking.MlflowClient(), run.info.run_id, record)
        for artifact in record.artifacts:
            if artifact.is_dir():
                mlflow.log_artifacts(str(artifact), artifact.name)
            elif artifact.exists():
                mlflow.log_artifact(str(artifact))
        for child in record.children:
            _log(mlflow, child, nested=True)
        return run.info.run_id


def _log_data(client: Any, run_id: str, record: RunRecord) -> None:
    """The params, tags, metrics and curves of `record`, through the client (no fluent state)."""
    from mlflow.entities import Metric, Param, RunTag

    now = _millis()
    params = [Param(k, str(v)[:6000]) for k, v in flatten(record.params).items()]
    tags = [RunTag(k, str(v)) for k, v in record.tags.items()]
    metrics = [Metric(k, float(v), now, 0) for k, v in record.metrics.items()]
    for key, values in record.curves.items():
        metrics.extend(Metric(key, float(v), now, step) for step, v in enumerate(values, 1))
    # MLflow caps one log_batch call at 100 params and 1000 metrics: send in slices.
    client.log_batch(run_id, tags=tags)
    for start in range(0, len(params), 100):
        client.log_batch(run_id, params=params[start:start + 100])
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start:start + 1000])


class OpenRun:
    """A parent run that stays open while children are logged into it, e.g. one per tuning trial.

    Uses `MlflowClient` only, never mlflow's fluent active-run stack (which is per thread), so
    children can be logged from Optuna's worker threads. Every method only warns on failure;
    a run that could not be created turns every later call into a no-op.
    """

    def __init__(self, client: Any | None, experiment_id: str | None, run_id: str | None, uri: str = "") -> None:
        self._client, self._experiment_id, self.run_id, self._uri = client, experiment_id, run_id, uri

    @property
    def active(self) -> bool:
        return self._client is not None and self._uri not in _disabled

    def log_child(self, record: RunRecord, status: str = "FINISHED") -> str | None:
        """Log `record` as a finished nested run (`status`: FINISHED, FAILED or KILLED)."""
        if not self.active:
            return None
        try:
            with _quiet():
                child = self._client.create_run(self._experiment_id, run_name=record.name,
                                                tags={"mlflow.parentRunId": self.run_id})
                _log_data(self._client, child.info.run_id, record)
                self._client.set_terminated(child.info.run_id, status)
            return child.info.run_id
        except Exception as exc:  # noqa: BLE001 - tracking must never break the computation
            _disable(self._uri, exc)
            return None

    def log(self, record: RunRecord) -> None:
        """Add `record`'s params, metrics, curves and tags to this (parent) run."""
        if not self.active:
            return
        try:
            with _quiet():
                _log_data(self._client, self.run_id, record)
        except Exception as exc:  # noqa: BLE001
            _disable(self._uri, exc)


@contextmanager
def open_run(paths: ProjectPaths, experiment: str, record: RunRecord) -> Iterator[OpenRun]:
    """A parent run, open for the block: FINISHED after it, FAILED (KILLED on Ctrl-C) if it raises."""
    run = OpenRun(None, None, None)
    uri = tracking_uri(paths)
    if _usable(uri):
        try:
            with _quiet():
                from mlflow.tracking import MlflowClient

                client = MlflowClient(uri)
                experiment_id = _experiment_id(client, experiment)
                created = client.create_run(experiment_id, run_name=record.name)
            run = OpenRun(client, experiment_id, created.info.run_id, uri)
            run.log(record)
        except Exception as exc:  # noqa: BLE001
            _disable(uri, exc)
    status = "FINISHED"
    try:
        yield run
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        if run.active:
            try:
                with _quiet():
                    run._client.set_terminated(run.run_id, status)
            except Exception as exc:  # noqa: BLE001
                _disable(uri, exc)


def _experiment_id(client: Any, name: str) -> str:
    """Get or create `name`; several processes may race to create it, so re-read on failure."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # noqa: BLE001 - created meanwhile by another worker
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _millis() -> int:
    import time

    return int(time.time() * 1000)
