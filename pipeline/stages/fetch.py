"""Stage `fetch`: the competition CSVs into data/raw, hash-verified."""

from __future__ import annotations

import logging

from pipeline.fetch import fetch_house_prices
from pipeline.params import DataParams, load_section
from pipeline.paths import ProjectPaths
from pipeline.stages import run_stage

log = logging.getLogger(__name__)


def main() -> None:
    paths = ProjectPaths.here()
    params = load_section(paths.params, "data", DataParams)
    actions = fetch_house_prices(
        params.source, {"train": paths.raw_train, "test": paths.raw_test},
        base_url=params.base_url, local_dir=paths.root / params.local_dir if params.local_dir else None,
        verify=params.verify, bundled=paths.bundled_archive)
    for name, action in actions.items():
        log.info("%s: %s", name, action)


if __name__ == "__main__":
    run_stage(main)
