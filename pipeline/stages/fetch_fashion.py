"""Stage `fetch-fashion`: the four Fashion-MNIST files, verified, and one `.npz` of arrays."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.common.params import StageParams
from pipeline.common.paths import ProjectPaths
from pipeline.common.readers import MB
from pipeline.fashion.arrays import save_arrays
from pipeline.fashion.fetch import fetch_all, read_arrays
from pipeline.fashion.params import FashionDataParams
from pipeline.stages import run_stage

log = logging.getLogger(__name__)


def load_params(params: StageParams) -> FashionDataParams:
    return params.section("fashion_data", FashionDataParams)


def main(paths: ProjectPaths | None = None) -> None:
    paths = paths or ProjectPaths.here()
    data_params = load_params(StageParams(paths.params))
    max_bytes = int(data_params.max_file_mb * MB)
    files = fetch_all(data_params.source, Path(data_params.local_dir), data_params.url, paths.fashion_raw_dir,
                      max_bytes)
    data = read_arrays(files, max_bytes)
    save_arrays(data, paths.fashion_arrays)
    log.info("wrote %s: %s train and %s test images", paths.fashion_arrays,
             len(data.train_images), len(data.test_images))


if __name__ == "__main__":
    run_stage(main)
