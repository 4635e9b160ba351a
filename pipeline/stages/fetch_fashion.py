"""Stage `fetch-fashion`: the four Fashion-MNIST files, verified, and one `.npz` of arrays."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.fashion.data import fetch_all, read_arrays, save_arrays
from pipeline.params import FashionDataParams, load_section
from pipeline.paths import ProjectPaths
from pipeline.stages import run_stage

log = logging.getLogger(__name__)


def main(paths: ProjectPaths | None = None) -> None:
    paths = paths or ProjectPaths.here()
    params = load_section(paths.params, "fashion_data", FashionDataParams)
    files = fetch_all(params.source, Path(params.local_dir), params.url, paths.fashion_raw_dir)
    data = read_arrays(files)
    save_arrays(data, paths.fashion_arrays)
    log.info("wrote %s: %s train and %s test images", paths.fashion_arrays,
             len(data.train_images), len(data.test_images))


if __name__ == "__main__":
    run_stage(main)
