"""MLflow behind one small adapter.

Stages compute and write their outputs first, then hand a `RunRecord` to `log_record`.
A tracking failure (store locked, server down, disk full) is logged as a warning and never
undoes or fails a stage whose outputs already exist: DVC's files are the source of truth,
MLflow is the place to compare runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.common.paths import ProjectPaths

log = logging.getLogger(__name__)

HOUSE_PRICES_EXPERIMENT = "house-prices"
FASHION_EXPERIMENT = "fashion-mnist"


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
    log_model: Callable[[], None] | None = None


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
    try:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri(paths))
        mlflow.set_experiment(experiment)
        return _log(mlflow, record, nested=False)
    except Exception as exc:  # noqa: BLE001 - tracking must never break a finished stage
        log.warning("MLflow tracking failed (%s: %s); the stage's outputs are unaffected.",
                    type(exc).__name__, exc)
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

    def __init__(self, client: Any | None, experiment_id: str | None, run_id: str | None) -> None:
        self._client, self._experiment_id, self.run_id = client, experiment_id, run_id

    def log_child(self, record: RunRecord, status: str = "FINISHED") -> str | None:
        """Log `record` as a finished nested run (`status`: FINISHED, FAILED or KILLED)."""
        if self._client is None:
            return None
        try:
            child = self._client.create_run(self._experiment_id, run_name=record.name,
                                            tags={"mlflow.parentRunId": self.run_id})
            _log_data(self._client, child.info.run_id, record)
            self._client.set_terminated(child.info.run_id, status)
            return child.info.run_id
        except Exception as exc:  # noqa: BLE001 - tracking must never break the computation
            _warn(exc)
            return None

    def log(self, record: RunRecord) -> None:
        """Add `record`'s params, metrics, curves and tags to this (parent) run."""
        if self._client is None:
            return
        try:
            _log_data(self._client, self.run_id, record)
        except Exception as exc:  # noqa: BLE001
            _warn(exc)


@contextmanager
def open_run(paths: ProjectPaths, experiment: str, record: RunRecord) -> Iterator[OpenRun]:
    """A parent run, open for the block: FINISHED after it, FAILED (KILLED on Ctrl-C) if it raises."""
    run = OpenRun(None, None, None)
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri(paths))
        experiment_id = _experiment_id(client, experiment)
        created = client.create_run(experiment_id, run_name=record.name)
        run = OpenRun(client, experiment_id, created.info.run_id)
        run.log(record)
    except Exception as exc:  # noqa: BLE001
        _warn(exc)
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
        if run._client is not None:
            try:
                run._client.set_terminated(run.run_id, status)
            except Exception as exc:  # noqa: BLE001
                _warn(exc)


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


def _warn(exc: Exception) -> None:
    log.warning("MLflow tracking failed (%s: %s); the computation is unaffected.", type(exc).__name__, exc)


def _millis() -> int:
    import time

    return int(time.time() * 1000)
