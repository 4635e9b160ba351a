"""`kpipe submit`: check the submission file against the test ids, then send it to Kaggle.

Without credentials the file is still checked, and the equivalent `kaggle` command is printed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd

from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.kaggle_api import KaggleUnavailable, submit_command, submit_file
from pipeline.house_prices.schemas import ID
from pipeline.house_prices.submission import InvalidSubmission, check_submission, read_submission


def default_message(paths: ProjectPaths) -> str:
    """`<commit> CV log-RMSE <mean> ± <std>`, so the leaderboard entry points back to the code."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=paths.root,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=paths.root,
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += "-dirty" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown-commit"
    score = ""
    if paths.cv_metrics.exists():
        cv = json.loads(paths.cv_metrics.read_text())
        score = f" CV log-RMSE {cv['log_rmse_mean']:.4f} ± {cv['log_rmse_std']:.4f}"
    return f"kaggle-pipeline {commit}{score}"


def validate_submission_file(paths: ProjectPaths, path: Path, max_bytes: int) -> pd.DataFrame:
    """The file as Kaggle will read it, checked against the validated test ids."""
    if not paths.clean_test.exists():
        raise InvalidSubmission(f"{paths.clean_test} not found: the submission is checked against the "
                                "validated test ids, so run `dvc repro validate` first")
    test_ids = pd.read_parquet(paths.clean_test, columns=[ID])[ID].to_numpy()
    return check_submission(read_submission(path, max_bytes), test_ids)


def submit(paths: ProjectPaths, path: Path, message: str | None, max_bytes: int) -> tuple[bool, str]:
    """(sent, text): Kaggle's answer, or how to submit by hand when credentials are missing."""
    validate_submission_file(paths, path, max_bytes)
    message = message or default_message(paths)
    try:
        return True, submit_file(path, message)
    except KaggleUnavailable as exc:
        return False, f"{exc}\nThe file is valid; to submit it by hand:\n  {submit_command(path, message)}"
