"""Stage `predict`: submissions/submission.csv from the saved model, checked before writing."""

from __future__ import annotations

import logging

import pandas as pd

from pipeline.artifacts import load_members
from pipeline.cv import predict_blend
from pipeline.paths import ProjectPaths
from pipeline.schemas import ID
from pipeline.stages import run_stage
from pipeline.submission import write_submission

log = logging.getLogger(__name__)


def main() -> None:
    paths = ProjectPaths.here()
    test = pd.read_parquet(paths.clean_test)
    submission = predict_blend(load_members(paths.model_dir), test)
    write_submission(submission, test[ID].to_numpy(), paths.submission)
    log.info("wrote %s: %d rows, median price %.0f", paths.submission, len(submission),
             submission["SalePrice"].median())


if __name__ == "__main__":
    run_stage(main)
