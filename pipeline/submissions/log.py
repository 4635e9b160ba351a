"""The submission log: `submissions/log.csv`, one row per Kaggle submission, committed with the code.

Each row joins what Kaggle knows (ref, date, message, status, scores) to what made the file
(its SHA-1, the CV of the model, the commit, the DVC experiment, the MLflow runs and the
registered model version; `source.ModelSource`). A CSV because it is small, reads in any tool,
diffs in git and is a `dvc plots` source as it is (`dvc plots show submissions/log.csv`).

The file is a contract with the user, who may edit it: it is validated on every read by a
pandera schema (`LOG_SCHEMA`, the one place its columns are defined), and a log that does not
pass is one `SubmissionLogError` naming the rows and columns at fault. Nothing ever rewrites
a log it could not read, so a hand edit gone wrong is never lost; `kpipe submit` reads the log
before uploading, so a broken log also never costs a submission.

Every change is a read-modify-write under a file lock (`filelock`: two `kpipe` processes on the
same log wait for each other) and an atomic replace (`io.atomic_path`): the file is always
either the old log or the new one, never half a row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_path
from pipeline.submissions.source import ModelSource

PENDING, COMPLETE, ERROR = "PENDING", "COMPLETE", "ERROR"
KPIPE, KAGGLE = "kpipe", "kaggle"  # origin: sent by `kpipe submit`, or found in Kaggle's list
MAX_REPORTED = 8  # failure cases named in one error


class SubmissionLogError(PipelineError, ValueError):
    """The log on disk is not one kpipe can read; it is left exactly as it is."""


@dataclass
class LogRow:
    """One submission. Text fields are "" when unknown; numbers are None."""

    ref: int
    date: str  # ISO 8601, UTC, seconds
    competition: str
    status: str
    origin: str = KPIPE
    file: str = ""
    file_sha1: str = ""
    message: str = ""
    public_score: float | None = None
    private_score: float | None = None
    error: str = ""
    metric: str = ""
    cv_mean: float | None = None
    cv_std: float | None = None
    commit: str = ""
    dvc_exp: str = ""
    cv_run_id: str = ""
    mlflow_run_id: str = ""  # the run that trained the submitted model
    model_name: str = ""
    model_version: str = ""
    rank: int | None = None  # on the public leaderboard, when the submission was scored
    teams: int | None = None  # how many teams that leaderboard held (with this one)
    percentile: float | None = None  # 100 * rank / teams: "top 12%"

    @classmethod
    def submitted(cls, ref: int, date: str, competition: str, file: Path, sha1: str, message: str,
                  source: ModelSource | None, metric: str) -> LogRow:
        """The row of a submission just made, still PENDING: everything but Kaggle's answer."""
        row = cls(ref=ref, date=date, competition=competition, status=PENDING, file=str(file), file_sha1=sha1,
                  message=message, metric=metric)
        if source is not None:
            row.cv_mean, row.cv_std = source.cv_mean, source.cv_std
            row.commit, row.dvc_exp = source.commit or "", source.dvc_exp or ""
            row.cv_run_id, row.mlflow_run_id = source.cv_run_id or "", source.train_run_id or ""
            row.model_name, row.model_version = source.model_name or "", source.model_version or ""
        return row

    @property
    def scored(self) -> bool:
        return self.status != PENDING


COLUMNS = tuple(f.name for f in fields(LogRow))
_FLOATS = ("public_score", "private_score", "cv_mean", "cv_std", "percentile")
_INTS = ("ref", "rank", "teams")


def _schema() -> Any:
    """The log's columns and what each may hold (pandera; imported when a log is read)."""
    import pandera.pandas as pa

    text = {name: pa.Column(str) for name in COLUMNS if name not in _FLOATS + _INTS}
    return pa.DataFrameSchema(
        {**text,
         "ref": pa.Column("Int64", pa.Check.gt(0), unique=True, nullable=False),
         "date": pa.Column(str, pa.Check(lambda s: pd.to_datetime(s, errors="coerce", utc=True).notna(),
                                         error="an ISO 8601 date")),
         "status": pa.Column(str, pa.Check.isin([PENDING, COMPLETE, ERROR])),
         "origin": pa.Column(str, pa.Check.isin([KPIPE, KAGGLE])),
         "file_sha1": pa.Column(str, pa.Check.str_matches(r"^([0-9a-f]{40})?$"), nullable=False),
         **{name: pa.Column(float, nullable=True) for name in _FLOATS},
         "percentile": pa.Column(float, pa.Check.in_range(0, 100), nullable=True),
         "rank": pa.Column("Int64", pa.Check.gt(0), nullable=True),
         "teams": pa.Column("Int64", pa.Check.gt(0), nullable=True)},
        strict=True, coerce=True)


def _failures(exc: Any) -> list[str]:
    """pandera's failure cases as `line 4, public_score: 'abc' (float64)` (line 1 is the header)."""
    cases = exc.failure_cases.astype({"failure_case": str})
    cases = cases.drop_duplicates(["index", "column", "failure_case"])  # a bad number fails coercion and dtype
    out = []
    for _, case in cases.head(MAX_REPORTED).iterrows():
        where = f"line {int(case['index']) + 2}, " if pd.notna(case["index"]) else ""
        out.append(f"{where}{case['column']}: {case['failure_case']!r} fails {case['check']}")
    if len(cases) > MAX_REPORTED:
        out.append(f"... and {len(cases) - MAX_REPORTED} more")
    return out


def _read(path: Path) -> list[LogRow]:
    import pandera.errors

    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise _broken(path, [f"not a CSV file: {str(exc).strip().splitlines()[0]}"]) from exc
    missing, extra = [c for c in COLUMNS if c not in raw.columns], [c for c in raw.columns if c not in COLUMNS]
    if missing or extra:
        raise _broken(path, [f"the header lacks {', '.join(missing) or 'nothing'} and has unknown "
                             f"{', '.join(extra) or 'nothing'}"])
    for name in _FLOATS + _INTS:
        raw[name] = raw[name].str.strip().replace("", None)
    try:
        frame = _schema().validate(raw[list(COLUMNS)], lazy=True)
    except pandera.errors.SchemaErrors as exc:
        raise _broken(path, _failures(exc)) from exc
    return [LogRow(**{name: _python(value) for name, value in record.items()})
            for record in frame.to_dict("records")]


def _python(value: Any) -> Any:
    """pandas' NA and numpy scalars as the dataclass's None, int and float."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _broken(path: Path, problems: list[str]) -> SubmissionLogError:
    return SubmissionLogError(
        f"{path} is not a submission log kpipe can read: {'; '.join(problems)}. It was left as it is: fix the "
        f"lines named (or `git checkout {path.name}` to the last committed log) and run the command again")


def _frame(rows: list[LogRow]) -> pd.DataFrame:
    frame = pd.DataFrame([asdict(r) for r in rows], columns=list(COLUMNS))
    return frame.astype({**dict.fromkeys(_FLOATS, "float64"), **dict.fromkeys(_INTS, "Int64")})


def _write(path: Path, rows: list[LogRow]) -> None:
    frame = _frame(rows)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g")


class SubmissionLog:
    """The rows of one log file, newest last, read and validated from disk."""

    def __init__(self, path: Path, rows: list[LogRow]) -> None:
        self.path, self.rows = path, rows

    @classmethod
    def read(cls, path: Path) -> SubmissionLog:
        """The log at `path` (empty when there is none yet); `SubmissionLogError` when unreadable."""
        return cls(path, _read(path) if path.exists() else [])

    def by_ref(self, ref: int) -> LogRow | None:
        return next((r for r in self.rows if r.ref == ref), None)

    def with_sha1(self, sha1: str) -> list[LogRow]:
        return [r for r in self.rows if r.file_sha1 == sha1]

    def pending(self) -> list[LogRow]:
        return [r for r in self.rows if not r.scored]

    def best_cv(self, greater_is_better: bool) -> LogRow | None:
        """The logged submission with the best CV, or None (no row has a CV)."""
        rows = [r for r in self.rows if r.cv_mean is not None]
        if not rows:
            return None
        pick = max if greater_is_better else min
        return pick(rows, key=lambda r: r.cv_mean)

    def frame(self) -> pd.DataFrame:
        """The rows as a table: scores as floats (NaN when unknown), ref, rank and teams as Int64."""
        return _frame(self.rows)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(f".{path.name}.lock")), timeout=60):
        yield


def read_log(path: Path) -> SubmissionLog:
    with _locked(path):
        return SubmissionLog.read(path)


def change_log(path: Path, change: Callable[[SubmissionLog], None]) -> SubmissionLog:
    """Read the log, apply `change` to it and write it back, all under the lock (so a row written
    by another process meanwhile is kept); the log as written."""
    with _locked(path):
        log = SubmissionLog.read(path)
        change(log)
        _write(path, log.rows)
        return log


def update_row(row: LogRow, changes: Mapping[str, Any]) -> None:
    """Set the fields `changes` names on `row`."""
    for name, value in changes.items():
        setattr(row, name, value)
