"""MLflow behind one small adapter.

Two ways in. `open_run` opens a run when a stage starts and keeps it open while the stage
computes: per-epoch metrics arrive as they happen (buffered, sent in batches every few
seconds), child runs (one per fold) open beside it, and the run's duration is the stage's.
`log_record` logs a finished `RunRecord` in one go, for stages too short to watch.

Every run carries where it came from (`run_tags`: the git commit, the DVC experiment), and
experiments are created as model-training experiments, so MLflow 3's UI opens them on their
runs rather than on its GenAI overview. A tracking failure (store locked, server down, disk
full) is logged as one warning and never fails or undoes a stage: DVC's files are the source of
truth, MLflow is the place to compare runs.

A tracking failure must also be cheap. MLflow's HTTP client retries for minutes by default,
so the adapter bounds its retries and timeouts (unless the user set MLflow's own variables),
checks that a tracking server answers before the first call, and stops tracking to that URI
for the rest of the process after the first failure. MLflow's own error logs (SQLAlchemy
tracebacks) are silenced during the adapter's calls: the one warning says what failed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.common.paths import ProjectPaths
from pipeline.common.provenance import dvc_baseline, dvc_experiment, git_commit
from pipeline.common.redact import redact

log = logging.getLogger(__name__)

HOUSE_PRICES_EXPERIMENT = "house-prices"
FASHION_EXPERIMENT = "fashion-mnist"
STUDIES_EXPERIMENT = "d2l-studies"  # the chapter studies: their own runs, not Fashion-MNIST's
# The experiment tag MLflow 3's UI reads to choose an experiment's landing page (its
# ExperimentKind enum); "custom_model_development" is the kind for model training.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
# Run tags: where a run came from.
COMMIT_TAG = "git.commit"
DVC_EXPERIMENT_TAG = "dvc.exp.name"
DVC_BASELINE_TAG = "dvc.exp.baseline_rev"
DATA_SHA1_TAG = "data.sha1"
# Per-epoch metrics go out in one batch per this many seconds (and when the run closes).
FLUSH_SECONDS = 2.0
# MLflow stores a dataset digest in at most 36 characters: a SHA-1 (40 hex digits) is cut to
# its first 12, like a short git hash; the full SHA-1 is the run's DATA_SHA1_TAG.
DIGEST_CHARS = 12


# MLflow's HTTP client settings (read on every request): a dead or hung server costs seconds.
CLIENT_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
PROBE_TIMEOUT_S = 3.0
_disabled: dict[str, str] = {}  # tracking URI -> why tracking to it is off in this process


def _bound_client() -> None:
    for name, value in CLIENT_LIMITS.items():
        os.environ.setdefault(name, value)


# What a tracking server with authentication (MLflow's basic-auth app) answers, and what to do.
ACCESS_HINTS = {
    "error code 401": "the tracking server wants a user: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
                      "(or put them in ~/.mlflow/credentials)",
    "error code 403": "the tracking server's user may not do this (403 Permission denied): ask its admin for EDIT "
                      "on the experiment or the registered model",
}


def explain(exc: BaseException | str) -> str:
    """A tracking failure in one line: what to do about a 401 or 403, else the error's first line;
    secrets masked."""
    text = str(exc).strip()
    reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
    return redact(next((hint for code, hint in ACCESS_HINTS.items() if code in reason), reason))


def _disable(uri: str | None, exc: BaseException | str) -> None:
    """Warn once and turn tracking to `uri` off for the rest of this process."""
    reason = explain(exc)
    key = uri or ""
    if key not in _disabled:
        log.warning("MLflow tracking failed (%s); the computation and its outputs are unaffected, "
                    "and nothing more is tracked to %s in this run.", reason, redact(uri) if uri else "MLflow")
    _disabled[key] = reason


@contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's, SQLAlchemy's and urllib3's loggers above CRITICAL while the adapter calls into MLflow
    (urllib3 logs each retry of a request, with the URL)."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic", "sqlalchemy", "urllib3")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextmanager
def command_calls() -> Iterator[None]:
    """For a command whose whole job is a call to MLflow (`kpipe runs`, `promote`, `team-init`), which
    fails rather than warns: the adapter's bounded retries, and MLflow's own logging quiet, so the
    command's one error line (`explain`) is all a failure prints."""
    _bound_client()
    with _quiet():
        yield


def on_server(uri: str) -> bool:
    """True for a tracking server (a team's: HTTP, users, permissions), False for a local store."""
    return uri.startswith(("http://", "https://"))


def _usable(uri: str) -> bool:
    """False (after the one warning) when tracking to `uri` is off, or an HTTP tracking server
    does not answer its health check within `PROBE_TIMEOUT_S`."""
    if uri in _disabled:
        return False
    if on_server(uri):
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
    # a metric's values at steps 1, 2, ... (a sequence) or at the steps given (step -> value)
    curves: Mapping[str, Sequence[float] | Mapping[int, float]] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    artifacts: Sequence[Path] = ()
    children: Sequence[RunRecord] = ()


_INDEX = re.compile(r"\[(\d+)\]")  # `[1]` in a dotted key


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"train": {"lr": 0.1}}` -> `{"train.lr": 0.1}`: MLflow params are flat, and their names
    may not hold brackets, so a member's key `model.members[1].lr` is logged as `model.members.1.lr`."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = _INDEX.sub(r".\1", f"{prefix}{key}")
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = ",".join(map(str, value))
        else:
            flat[name] = value
    return flat


def run_tags(root: Path) -> dict[str, str]:
    """Where a run came from: the commit (`1a2b3c4-dirty` when tracked files differ from it,
    and the full SHA in MLflow's own source tag, which its UI shows), and, under
    `dvc exp run`, the experiment's name and baseline commit."""
    tags: dict[str, str] = {}
    commit = git_commit(root)
    if commit is not None:
        tags[COMMIT_TAG] = commit.short
        tags["mlflow.source.git.commit"] = commit.sha
    if (name := dvc_experiment()) is not None:
        tags[DVC_EXPERIMENT_TAG] = name
    if (baseline := dvc_baseline()) is not None:
        tags[DVC_BASELINE_TAG] = baseline
    return tags


def log_record(paths: ProjectPaths, experiment: str, record: RunRecord) -> str | None:
    """Log `record` (and its children as nested runs); return the run id, or None on failure."""
    uri = tracking_uri(paths)
    if not _usable(uri):
        return None
    try:
        with _quiet():
            import mlflow
            from mlflow.tracking import MlflowClient

            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment(experiment_id=ensure_experiment(MlflowClient(uri), experiment, uri))
            record = dataclasses.replace(record, tags={**run_tags(paths.root), **record.tags})
            return _log(mlflow, record, nested=False)
    except Exception as exc:  # noqa: BLE001 - tracking must never break a finished stage
        _disable(uri, exc)
        return None


def _log(mlflow: Any, record: RunRecord, nested: bool) -> str:
    with mlflow.start_run(run_name=record.name, nested=nested) as run:
        _log_data(mlflow.tracking.MlflowClient(), run.info.run_id, record)
        for child in record.children:
            _log(mlflow, child, nested=True)
        return run.info.run_id


def _log_data(client: Any, run_id: str, record: RunRecord) -> None:
    """The params, tags, metrics, curves and artifacts of `record`, through the client (no
    fluent state)."""
    from mlflow.entities import Metric, Param, RunTag

    now = _millis()
    params = [Param(k, redact(str(v))[:6000]) for k, v in flatten(record.params).items()]
    tags = [RunTag(k, redact(str(v))) for k, v in record.tags.items()]
    metrics = [Metric(k, float(v), now, 0) for k, v in record.metrics.items()]
    for key, values in record.curves.items():
        steps = values.items() if isinstance(values, Mapping) else enumerate(values, 1)
        metrics.extend(Metric(key, float(v), now, int(step)) for step, v in steps)
    # MLflow caps one log_batch call at 100 params and 1000 metrics: send in slices.
    client.log_batch(run_id, tags=tags)
    for start in range(0, len(params), 100):
        client.log_batch(run_id, params=params[start:start + 100])
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start:start + 1000])
    for artifact in record.artifacts:
        if artifact.is_dir():
            client.log_artifacts(run_id, str(artifact), artifact.name)
        elif artifact.exists():
            client.log_artifact(run_id, str(artifact))


class OpenRun:
    """A run that stays open while a stage (or a tuning study) computes.

    Uses `MlflowClient` only, never mlflow's fluent active-run stack (which is per thread), so
    children can be logged from Optuna's worker threads. Every method only warns on failure;
    a run that could not be created turns every later call into a no-op, and after a failed
    metrics batch the run stops sending them (a dead server would cost a timeout per epoch).
    """

    def __init__(self, client: Any | None, experiment_id: str | None, run_id: str | None,
                 uri: str | None = None) -> None:
        self._client, self._experiment_id, self.run_id, self._uri = client, experiment_id, run_id, uri
        self._children: list[OpenRun] = []
        self._pending: list[Any] = []  # mlflow.entities.Metric, waiting for the next batch
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self._client is not None and (self._uri or "") not in _disabled

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

    def open_child(self, record: RunRecord) -> OpenRun:
        """A nested run, open until this run closes (or `close()` is called on it)."""
        if not self.active:
            return OpenRun(None, None, None)
        try:
            with _quiet():
                created = self._client.create_run(self._experiment_id, run_name=record.name,
                                                  tags={**record.tags, "mlflow.parentRunId": self.run_id})
                child = OpenRun(self._client, self._experiment_id, created.info.run_id, self._uri)
                _log_data(self._client, child.run_id, dataclasses.replace(record, tags={}))
        except Exception as exc:  # noqa: BLE001
            _disable(self._uri, exc)
            return OpenRun(None, None, None)
        self._children.append(child)
        return child

    def log(self, record: RunRecord) -> None:
        """Add `record`'s params, metrics, curves, tags and artifacts to this run."""
        if not self.active:
            return
        try:
            with _quiet():
                _log_data(self._client, self.run_id, record)
        except Exception as exc:  # noqa: BLE001
            _disable(self._uri, exc)

    def log_step(self, metrics: Mapping[str, float], step: int) -> None:
        """Metrics of one step (an epoch), timestamped now; sent with the next batch, which
        leaves with the first step FLUSH_SECONDS or more after the previous batch (or when the
        run closes)."""
        if not self.active:
            return
        from mlflow.entities import Metric

        now = _millis()
        with self._lock:
            self._pending.extend(Metric(k, float(v), now, step) for k, v in metrics.items())
            due = time.monotonic() - self._last_flush >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        """Send the waiting metrics now."""
        with self._lock:
            pending, self._pending = self._pending, []
            self._last_flush = time.monotonic()
        if not self.active or not pending:
            return
        try:
            with _quiet():
                for start in range(0, len(pending), 1000):  # MLflow's cap per log_batch call
                    self._client.log_batch(self.run_id, metrics=pending[start:start + 1000])
        except Exception as exc:  # noqa: BLE001
            _disable(self._uri, exc)
            self._client = None

    def log_dataset(self, frame: Any, name: str, source: Path, sha1: str, context: str = "training") -> None:
        """What `mlflow.log_input` does, for this run: `frame` (its schema and size) as a dataset
        read from `source`, whose digest is the file's SHA-1 (cut to DIGEST_CHARS)."""
        if not self.active:
            return
        try:
            import mlflow.data
            from mlflow.entities import DatasetInput, InputTag
            from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

            with warnings.catch_warnings():
                # A local path matches two of MLflow's equivalent local source types (it says
                # so and picks one), and integer columns get its hint about gaps.
                warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
                warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
                dataset = mlflow.data.from_pandas(frame, source=source.resolve().as_uri(), name=name,
                                                  digest=sha1[:DIGEST_CHARS])._to_mlflow_entity()
            self._client.log_inputs(self.run_id, datasets=[
                DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, context)])])
            self._client.set_tag(self.run_id, DATA_SHA1_TAG, sha1)
        except Exception as exc:  # noqa: BLE001
            _disable(self._uri, exc)

    def log_model(self, log_model: Callable[[], Any]) -> Any | None:
        """Call `log_model` (an `mlflow.<flavor>.log_model(...)`) with this run as mlflow's
        active run, so the model is logged into it; its result, or None when tracking failed."""
        if not self.active:
            return None
        self.flush()
        try:
            import mlflow

            mlflow.set_tracking_uri(self._uri)
            # Resuming the run makes it the fluent API's active run; leaving the block marks it
            # FINISHED, which `close()` then confirms (or corrects) with the stage's outcome.
            with _quiet(), mlflow.start_run(run_id=self.run_id):
                return log_model()
        except Exception as exc:  # noqa: BLE001
            # The model failed (an artifact store full, a flavor error), not the tracking
            # store: warn, and keep the run for `close()` to end with the stage's outcome.
            log.warning("MLflow could not log the model (%s: %s); the stage's outputs are unaffected.",
                        type(exc).__name__, redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else "")
            return None

    def close(self, status: str = "FINISHED") -> None:
        """Send what is waiting, close the open children, then this run, with `status`."""
        for child in self._children:
            child.close(status)
        self._children = []
        self.flush()
        if self.active:
            try:
                with _quiet():
                    self._client.set_terminated(self.run_id, status)
            except Exception as exc:  # noqa: BLE001
                _disable(self._uri, exc)
            self._client = None


@contextmanager
def open_run(paths: ProjectPaths, experiment: str, record: RunRecord) -> Iterator[OpenRun]:
    """A run named and tagged after `record` (plus `run_tags`), open for the block: FINISHED
    after it, FAILED (KILLED on Ctrl-C) if it raises."""
    run = OpenRun(None, None, None)
    uri = tracking_uri(paths)
    if _usable(uri):
        try:
            with _quiet():
                from mlflow.tracking import MlflowClient

                client = MlflowClient(uri)
                experiment_id = ensure_experiment(client, experiment, uri)
                created = client.create_run(experiment_id, run_name=record.name,
                                            tags={**run_tags(paths.root), **record.tags})
            run = OpenRun(client, experiment_id, created.info.run_id, uri)
            run.log(dataclasses.replace(record, tags={}))
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
        run.close(status)


def artifact_location(uri: str) -> str | None:
    """For a local SQLite store, `mlruns/` beside the database file; else the server's choice.

    MLflow's own default is `./mlruns` under the working directory of whichever process
    creates the experiment, which for a queued `dvc exp run` is a temporary copy.
    """
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlruns").as_uri()


def ensure_experiment(client: Any, name: str, uri: str) -> str:
    """Get or create `name` as a model-training experiment (an older one gets the kind tag too);
    several processes may race to create it, so re-read on failure."""
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location(uri),
                                            tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})
        except Exception:  # created meanwhile by another worker: re-read, else raise
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if EXPERIMENT_KIND_TAG not in found.tags:
        client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    return found.experiment_id


def _millis() -> int:
    return int(time.time() * 1000)


def _exists(uri: str) -> bool:
    """False for a local SQLite store not created yet: a lookup in it finds nothing, and must not
    create it (MLflow would, running its migrations)."""
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists()


def _amend(paths: ProjectPaths, change: Callable[[Any], None]) -> bool:
    """`change(client)` on the project's existing store; False (after the one warning, which turns
    tracking to it off) when there is no store, tracking is off or the change failed."""
    uri = tracking_uri(paths)
    if not _exists(uri) or not _usable(uri):
        return False
    try:
        with _quiet():
            from mlflow.tracking import MlflowClient

            change(MlflowClient(uri))
        return True
    except Exception as exc:  # noqa: BLE001 - what could not be tracked is still in the project's files
        _disable(uri, exc)
        return False


def annotate_run(paths: ProjectPaths, run_id: str, metrics: Mapping[str, float], tags: Mapping[str, str],
                 timestamp_ms: int | None = None) -> bool:
    """Add metrics (at `timestamp_ms`, so a metric's history orders by when the value was true)
    and tags to an existing, finished run; False (after the one warning) when it could not be done."""
    when = timestamp_ms if timestamp_ms is not None else _millis()

    def change(client: Any) -> None:
        from mlflow.entities import Metric, RunTag

        client.log_batch(run_id, metrics=[Metric(k, float(v), when, 0) for k, v in metrics.items()],
                         tags=[RunTag(k, str(v)) for k, v in tags.items()])

    return _amend(paths, change)


def tag_model_version(paths: ProjectPaths, name: str, version: str, tags: Mapping[str, str]) -> bool:
    """Tags on a registered model version; False (after the one warning) when it could not be done."""
    def change(client: Any) -> None:
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, str(value))

    return _amend(paths, change)


def _lookup(paths: ProjectPaths, query: Callable[[Any], Any]) -> Any | None:
    """`query(client)` on the project's store; None when there is no store, tracking is off or the
    query fails (a lookup that fails finds nothing, and turns nothing off)."""
    uri = tracking_uri(paths)
    if not _exists(uri) or not _usable(uri):
        return None
    try:
        with _quiet():
            from mlflow.tracking import MlflowClient

            return query(MlflowClient(uri))
    except Exception:  # noqa: BLE001
        return None


def newest_run(paths: ProjectPaths, experiment: str, tags: Mapping[str, str]) -> Any | None:
    """The newest run of `experiment` carrying every tag of `tags`, or None."""
    def query(client: Any) -> Any | None:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return None
        where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        runs = client.search_runs([found.experiment_id], filter_string=where,
                                  order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0] if runs else None

    return _lookup(paths, query)


def run_model_version(paths: ProjectPaths, run_id: str) -> tuple[str, str] | None:
    """(registered model, version) of the model logged by run `run_id`, the newest if several."""
    def query(client: Any) -> tuple[str, str] | None:
        versions = client.search_model_versions(f"run_id = '{run_id}'")
        if not versions:
            return None
        newest = max(versions, key=lambda v: int(v.version))
        return newest.name, str(newest.version)

    return _lookup(paths, query)


def model_uri_run(paths: ProjectPaths, uri: str) -> str | None:
    """The run that logged the MLflow model at `uri` (`models:/name/3`, `models:/name@alias`,
    `models:/name/latest`, `runs:/<id>/model`), or None when MLflow cannot tell."""
    if uri.startswith("runs:/"):
        return uri.removeprefix("runs:/").split("/")[0] or None
    if not uri.startswith("models:/"):
        return None
    name, _, rest = uri.removeprefix("models:/").partition("/")

    def query(client: Any) -> str:
        if "@" in name:
            model, alias = name.split("@", 1)
            return client.get_model_version_by_alias(model, alias).run_id
        if rest in ("", "latest"):
            return max(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version)).run_id
        return client.get_model_version(name, rest).run_id

    return _lookup(paths, query)
