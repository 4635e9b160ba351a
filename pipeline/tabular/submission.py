"""Every competition's submission: laid out as its sample submission, checked before it is
written or sent (Kaggle rejects late, we reject early). A competition module may check more on
top of this (House Prices: whole-number ids, positive prices, by its pandera schema)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_path
from pipeline.common.readers import read_csv_table
from pipeline.tabular.competition import Competition
from pipeline.tabular.members import Task


class InvalidSubmission(PipelineError, ValueError):
    """The file would be rejected (or scored wrongly) by Kaggle."""


def read_submission(path: Path, max_bytes: int) -> pd.DataFrame:
    """A submission file as Kaggle will read it (a CSV with rows), or a clear error."""
    return read_csv_table(path, max_bytes=max_bytes, hint="run `dvc repro` (or `kpipe predict`) first")


def submission_frame(competition: Competition, ids: np.ndarray, link: np.ndarray, threshold: float) -> pd.DataFrame:
    """The rows Kaggle asks for, from the blend's link-space test predictions."""
    fmt, task = competition.submission, Task(competition.task, len(competition.classes))
    id_column, rest = fmt.columns[0], list(fmt.columns[1:])
    if fmt.layout == "values":
        values = np.expm1(link) if competition.scorer.fits_log else link
        return pd.DataFrame({id_column: ids, rest[0]: values})
    if fmt.layout == "class_probabilities":
        return pd.DataFrame({id_column: ids, **dict(zip(rest, task.probabilities(link).T, strict=True))})
    if task.kind == "binary":
        p_positive = task.probabilities(link)
        positive = competition.classes.index(fmt.positive)
        if fmt.layout == "probability":
            return pd.DataFrame({id_column: ids, rest[0]: p_positive if positive == 1 else 1 - p_positive})
        labels = np.where(p_positive >= threshold, 1, 0)
    else:
        labels = np.argmax(link, axis=1)
    classes = np.asarray(competition.classes, dtype=object)
    return pd.DataFrame({id_column: ids, rest[0]: classes[labels]})


def check_submission(frame: pd.DataFrame, competition: Competition, test_ids: np.ndarray) -> pd.DataFrame:
    """Columns as the sample's, ids exactly the test ids once each, values the layout allows."""
    fmt = competition.submission
    if list(frame.columns) != list(fmt.columns):
        raise InvalidSubmission(f"submission columns {list(frame.columns)} differ from the sample submission's "
                                f"{list(fmt.columns)}")
    ids = frame[fmt.columns[0]]
    if ids.duplicated().any():
        raise InvalidSubmission(f"submission repeats ids, e.g. {ids[ids.duplicated()].head(5).tolist()}")
    expected, got = set(map(str, test_ids)), set(map(str, ids))
    if expected != got:
        missing, extra = sorted(expected - got), sorted(got - expected)
        raise InvalidSubmission(f"submission ids differ from the test ids: {len(missing)} missing "
                                f"(e.g. {missing[:5]}), {len(extra)} unexpected (e.g. {extra[:5]})")
    values = frame[list(fmt.columns[1:])]
    if fmt.layout == "labels":
        allowed = set(map(str, competition.classes))
        bad = values.iloc[:, 0][~values.iloc[:, 0].astype(str).isin(allowed)]
        if len(bad):
            raise InvalidSubmission(f"submission labels outside the classes {sorted(allowed)}: "
                                    f"{bad.head(5).tolist()}")
        return frame
    numbers = values.apply(pd.to_numeric, errors="coerce")
    if numbers.isna().any().any() or not np.isfinite(numbers.to_numpy(dtype=np.float64)).all():
        raise InvalidSubmission("submission holds missing, non-numeric or infinite values")
    if fmt.layout in ("probability", "class_probabilities") and not numbers.stack().between(0, 1).all():
        raise InvalidSubmission("submission probabilities outside [0, 1]")
    if fmt.layout == "class_probabilities" and not np.allclose(numbers.sum(axis=1), 1, atol=1e-4):
        raise InvalidSubmission("submission class probabilities do not sum to 1 in every row")
    return frame


def write_submission(frame: pd.DataFrame, competition: Competition, test_ids: np.ndarray, path: Path) -> Path:
    """Check, then write atomically (a rejected frame leaves no file)."""
    return write_checked(check_submission(frame, competition, test_ids), path)


def write_checked(checked: pd.DataFrame, path: Path) -> Path:
    """A submission that passed its competition's check, written atomically."""
    with atomic_path(path) as tmp:
        checked.to_csv(tmp, index=False)
    return path
