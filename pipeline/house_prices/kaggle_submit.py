"""House Prices' submission file checked against the validated test ids, and Kaggle's list of
past submissions as a table. The submit workflow itself (allowance, log, scores into MLflow)
is every competition's: `pipeline.submissions.workflow`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.kaggle_api import KaggleSubmission
from pipeline.house_prices.schemas import ID
from pipeline.house_prices.submission import InvalidSubmission, check_submission, read_submission


def default_message(paths: ProjectPaths) -> str:
    """`kaggle-pipeline <commit> CV log-RMSE <mean> ± <std>`: the leaderboard entry points back to the code."""
    from pipeline.projects import HousePricesProject, default_message

    return default_message(HousePricesProject(paths))


def validate_submission_file(paths: ProjectPaths, path: Path, max_bytes: int) -> pd.DataFrame:
    """The file as Kaggle will read it, checked against the validated test ids."""
    if not paths.clean_test.exists():
        raise InvalidSubmission(f"{paths.clean_test} not found: the submission is checked against the "
                                "validated test ids, so run `dvc repro validate` first")
    test_ids = pd.read_parquet(paths.clean_test, columns=[ID])[ID].to_numpy()
    return check_submission(read_submission(path, max_bytes), test_ids)


def submissions_table(listed: list[KaggleSubmission]) -> pd.DataFrame:
    """Submissions as Kaggle lists them, newest first: ref, date (UTC), status, scores and message."""
    rows = [{"ref": s.ref, "date (UTC)": s.date.strftime("%Y-%m-%d %H:%M") if s.date else "",
             "status": s.status, "public": _score(s.public_score), "private": _score(s.private_score),
             "file": s.file_name, "message": s.description + (f" [error: {s.error}]" if s.error else "")}
            for s in listed]
    return pd.DataFrame(rows)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.5f}"
