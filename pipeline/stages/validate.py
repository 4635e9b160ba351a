"""Stage `validate`: pandera checks of the raw tables; typed copies for the next stages."""

from __future__ import annotations

import logging

import pandas as pd

from pipeline.outputs import write_json
from pipeline.paths import ProjectPaths
from pipeline.stages import run_stage
from pipeline.validation import ValidationFailed, validate_raw

log = logging.getLogger(__name__)


def main() -> None:
    paths = ProjectPaths.here()
    train, test = pd.read_csv(paths.raw_train), pd.read_csv(paths.raw_test)
    try:
        clean_train, clean_test, report = validate_raw(train, test)
    except ValidationFailed as exc:
        # The report is written before failing, so every problem can be read at once.
        write_json(exc.report.to_dict(), paths.validation_report)
        log.error("full report: %s", paths.validation_report)
        raise
    write_json(report.to_dict(), paths.validation_report)
    paths.interim_dir.mkdir(parents=True, exist_ok=True)
    clean_train.to_parquet(paths.clean_train, index=False)
    clean_test.to_parquet(paths.clean_test, index=False)
    log.info(report.summary())


if __name__ == "__main__":
    run_stage(main)
