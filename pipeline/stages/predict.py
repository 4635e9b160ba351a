"""Stage `predict`: submissions/submission.csv from the saved model, checked before writing."""

from __future__ import annotations

import logging

import pandas as pd

from pipeline.common.params import StageParams
from pipeline.common.paths import ProjectPaths
from pipeline.common.tracking import HOUSE_PRICES_EXPERIMENT
from pipeline.house_prices.artifacts import load_members
from pipeline.house_prices.final import predict_blend
from pipeline.house_prices.schemas import ID
from pipeline.house_prices.submission import write_submission
from pipeline.stages import run_stage
from pipeline.submissions.source import link_submission

log = logging.getLogger(__name__)


def load_params(params: StageParams) -> None:
    """Prediction has no params: the saved model carries everything it needs."""


def main() -> None:
    paths = ProjectPaths.here()
    test = pd.read_parquet(paths.clean_test)
    submission = predict_blend(load_members(paths.model_dir), test)
    write_submission(submission, test[ID].to_numpy(), paths.submission)
    # Which training run made these bytes, for `kpipe submit` to log beside Kaggle's score.
    link_submission(paths, HOUSE_PRICES_EXPERIMENT, paths.model_dir, paths.submission)
    log.info("wrote %s: %d rows, median price %.0f", paths.submission, len(submission),
             submission["SalePrice"].median())


if __name__ == "__main__":
    run_stage(main)
