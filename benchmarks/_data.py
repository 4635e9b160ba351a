"""The competition frames every House Prices benchmark reads, validated like the `validate` stage.

By default they come from Kaggle's archive bundled with the project, so a benchmark runs on a
fresh clone with no network; `--data DIR` takes a folder holding the zip or the two CSVs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.dataset import fetch_house_prices
from pipeline.house_prices.validation import validate_raw

ROOT = Path(__file__).resolve().parents[1]


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help="a folder holding Kaggle's zip or the two CSVs "
                             "(default: the archive bundled in data/external/)")


def load_clean_frames(data: Path | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validated train and test frames, hash-verified on the way in."""
    with tempfile.TemporaryDirectory() as tmp:
        targets = {"train": Path(tmp) / "train.csv", "test": Path(tmp) / "test.csv"}
        fetch_house_prices("local" if data else "bundled", targets, base_url="", local_dir=data,
                           verify=True, bundled=ProjectPaths(ROOT).bundled_archive, max_bytes=50 << 20)
        train, test, _ = validate_raw(pd.read_csv(targets["train"]), pd.read_csv(targets["test"]))
    return train, test
