"""A competition project's submission check for `kpipe submit` (pipeline.projects): the file as
Kaggle will read it, against the sample submission's layout and the validated test ids."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.submission import InvalidSubmission, read_submission
from pipeline.tabular.competition import read_competition
from pipeline.tabular.submission import check_submission


def validate_submission_file(paths: ProjectPaths, path: Path, max_bytes: int) -> pd.DataFrame:
    competition = read_competition(paths.competition_file)
    if not paths.clean_test.exists():
        raise InvalidSubmission(f"{paths.clean_test} not found: the submission is checked against the "
                                "validated test ids, so run `dvc repro validate` first")
    ids = pd.read_parquet(paths.clean_test, columns=[competition.id_column])[competition.id_column].to_numpy()
    return check_submission(read_submission(path, max_bytes), competition, ids)
