"""The submission file: checked before it is written or sent. Kaggle rejects late, we reject early."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_path
from pipeline.common.readers import read_csv_table
from pipeline.house_prices.schemas import ID, Submission, fractional_ids


class InvalidSubmission(PipelineError, ValueError):
    """The file would be rejected (or scored wrongly) by Kaggle."""


def check_submission(frame: pd.DataFrame, test_ids: np.ndarray) -> pd.DataFrame:
    """Validate columns, prices and that the ids are exactly the test ids, each once."""
    if ID in frame.columns and (fractional := fractional_ids(frame[ID])):
        raise InvalidSubmission(f"submission ids must be whole numbers, got {fractional[:5]}")
    try:
        checked = Submission.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases[["column", "check", "failure_case"]].head(10).to_string(index=False)
        raise InvalidSubmission(f"submission fails its schema:\n{cases}") from exc
    expected, got = set(np.asarray(test_ids).tolist()), set(checked[ID].tolist())
    if expected != got:
        missing, extra = sorted(expected - got), sorted(got - expected)
        raise InvalidSubmission(f"submission ids differ from the test ids: {len(missing)} missing "
                                f"(e.g. {missing[:5]}), {len(extra)} unexpected (e.g. {extra[:5]})")
    return checked


def read_submission(path: Path, max_bytes: int) -> pd.DataFrame:
    """A submission file as Kaggle will read it (a CSV with rows), or a clear error."""
    return read_csv_table(path, max_bytes=max_bytes, hint="run `dvc repro` (or `kpipe predict`) first")


def write_submission(frame: pd.DataFrame, test_ids: np.ndarray, path: Path) -> Path:
    """Check, then write `Id,SalePrice` (atomically: a rejected frame leaves no file)."""
    checked = check_submission(frame, test_ids)
    with atomic_path(path) as tmp:
        checked.to_csv(tmp, index=False)
    return path
