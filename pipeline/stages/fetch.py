"""Stage `fetch`: the competition CSVs into data/raw, hash-verified."""

from __future__ import annotations

import logging

from pipeline.common.params import StageParams
from pipeline.common.paths import ProjectPaths
from pipeline.common.readers import MB
from pipeline.house_prices.dataset import fetch_house_prices
from pipeline.house_prices.params import DataParams
from pipeline.stages import run_stage

log = logging.getLogger(__name__)


def load_params(params: StageParams) -> DataParams:
    return params.section("data", DataParams)


def main() -> None:
    paths = ProjectPaths.here()
    data = load_params(StageParams(paths.params))
    actions = fetch_house_prices(
        data.source, {"train": paths.raw_train, "test": paths.raw_test},
        base_url=data.base_url, local_dir=paths.root / data.local_dir if data.local_dir else None,
        verify=data.verify, bundled=paths.bundled_archive, max_bytes=int(data.max_file_mb * MB))
    for name, action in actions.items():
        log.info("%s: %s", name, action)


if __name__ == "__main__":
    run_stage(main)
