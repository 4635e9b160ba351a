"""Stage `validate`: pandera checks of the raw tables; typed copies for the next stages."""

from __future__ import annotations

import logging

from pipeline.common.io import write_frame, write_json
from pipeline.common.params import StageParams
from pipeline.common.paths import ProjectPaths
from pipeline.common.readers import MB, read_csv_table
from pipeline.house_prices.params import DataParams
from pipeline.house_prices.validation import validate_raw
from pipeline.stages import run_stage
from pipeline.tabular.validation import ValidationFailed

log = logging.getLogger(__name__)


def load_params(params: StageParams) -> int:
    """The size cap on each CSV, in bytes: the schemas are the rest of the contract."""
    return int(params.key("data", "max_file_mb", DataParams) * MB)


def main() -> None:
    paths = ProjectPaths.here()
    max_bytes = load_params(StageParams(paths.params))
    train, test = (read_csv_table(path, max_bytes=max_bytes, allow_empty=True,
                                  hint="run `dvc repro fetch` first") for path in (paths.raw_train, paths.raw_test))
    try:
        clean_train, clean_test, report = validate_raw(train, test)
    except ValidationFailed as exc:
        # The report is written before failing, so every problem can be read at once.
        write_json(exc.report.to_dict(), paths.validation_report)
        log.error("full report: %s", paths.validation_report)
        raise
    write_json(report.to_dict(), paths.validation_report)
    write_frame(clean_train, paths.clean_train)
    write_frame(clean_test, paths.clean_test)
    log.info(report.summary())


if __name__ == "__main__":
    run_stage(main)
