"""House Prices' submission check: its own schema first (whole-number ids, positive finite
prices), then the core's check every competition gets (the sample's columns, exactly the test
ids, once each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pipeline.house_prices.competition import HOUSE_PRICES
from pipeline.house_prices.schemas import ID, Submission, fractional_ids
from pipeline.tabular import submission as core
from pipeline.tabular.submission import InvalidSubmission


def check_submission(frame: pd.DataFrame, test_ids: np.ndarray) -> pd.DataFrame:
    """Validate the columns, the ids (whole numbers, exactly the test ids, each once) and the prices."""
    if ID in frame.columns and (fractional := fractional_ids(frame[ID])):
        raise InvalidSubmission(f"submission ids must be whole numbers, got {fractional[:5]}")
    try:
        checked = Submission.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases[["column", "check", "failure_case"]].head(10).to_string(index=False)
        raise InvalidSubmission(f"submission fails its schema:\n{cases}") from exc
    return core.check_submission(checked, HOUSE_PRICES, np.asarray(test_ids))


def write_submission(frame: pd.DataFrame, test_ids: np.ndarray, path: Path) -> Path:
    """Check, then write `Id,SalePrice` (atomically: a rejected frame leaves no file)."""
    return core.write_checked(check_submission(frame, test_ids), path)
