"""Stage `validate`: pandera checks of the raw tables; typed copies for the next stages."""

from __future__ import annotations

import json
import logging

import pandas as pd

from pipeline.paths import ProjectPaths
from pipeline.stages import run_stage
from pipeline.validation import ValidationFailed, validate_raw

log = logging.getLogger(__name__)


def main() -> None:
    paths = ProjectPaths.here()
    train, test = pd.read_csv(paths.raw_train), pd.read_csv(paths.raw_test)
    paths.reports_dir.mkdir(parents=True, exist_ok=True)
    try:
        clean_train, clean_test, report = validate_raw(train, test)
    except ValidationFailed as exc:
        # The report is written before failing, so every problem can be read at once.
        paths.validation_report.write_text(json.dumps(exc.report.to_dict(), indent=2))
        log.error("full report: %s", paths.validation_report)
        raise
    paths.validation_report.write_text(json.dumps(report.to_dict(), indent=2))
    paths.interim_dir.mkdir(parents=True, exist_ok=True)
    clean_train.to_parquet(paths.clean_train, index=False)
    clean_test.to_parquet(paths.clean_test, index=False)
    log.info(report.summary())


if __name__ == "__main__":
    run_stage(main)
