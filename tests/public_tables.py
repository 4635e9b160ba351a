"""Real public tables laid out as Kaggle lays out a competition, with the held-out truth kept.

Both tables install offline with the test dependencies: the Auto MPG cars of `vega_datasets`
(regression: miles per gallon from engine and origin, with a car-name text column and missing
horsepower values) and the Palmer penguins of `palmerpenguins` (the raw LTER table, multiclass:
the species, with free-text comments, individual ids, dates and missing measurements). Each
becomes train.csv, test.csv (without the target) and sample_submission.csv; the test rows'
truth stays outside the folder, for scoring the submission.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class KaggleLayout:
    folder: Path
    truth: pd.DataFrame  # id and target of the test rows


def _layout(frame: pd.DataFrame, id_column: str, target: str, sample: pd.DataFrame, folder: Path,
            test_share: float, seed: int) -> KaggleLayout:
    rng = np.random.default_rng(seed)
    is_test = rng.random(len(frame)) < test_share
    train, test = frame[~is_test], frame[is_test]
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.drop(columns=[target]).to_csv(folder / "test.csv", index=False)
    sample.loc[is_test].to_csv(folder / "sample_submission.csv", index=False)
    return KaggleLayout(folder, test[[id_column, target]].reset_index(drop=True))


def cars(folder: Path, seed: int = 0) -> KaggleLayout:
    """Auto MPG: `id`, the target `Miles_per_Gallon` (rows without it left out, as Kaggle would)."""
    import json
    from importlib.resources import files

    with (files("vega_datasets") / "_data" / "cars.json").open() as fh:  # the package's own copy, offline
        frame = pd.DataFrame(json.load(fh))
    frame = frame.dropna(subset=["Miles_per_Gallon"]).reset_index(drop=True)
    frame["Year"] = frame["Year"].str[:4].astype(int)
    frame.insert(0, "id", np.arange(1, len(frame) + 1))
    sample = pd.DataFrame({"id": frame["id"], "Miles_per_Gallon": float(frame["Miles_per_Gallon"].mean())})
    return _layout(frame, "id", "Miles_per_Gallon", sample, folder, 0.25, seed)


def penguins(folder: Path, seed: int = 0) -> KaggleLayout:
    """Palmer penguins (raw): `id`, the target `Species`; the sample asks for one probability
    column per species, as Kaggle's multiclass log-loss competitions do."""
    import palmerpenguins

    frame = palmerpenguins.load_penguins_raw().reset_index(drop=True)
    frame.insert(0, "id", np.arange(1000, 1000 + len(frame)))
    species = sorted(frame["Species"].unique())
    sample = pd.DataFrame({"id": frame["id"], **{s: 1 / len(species) for s in species}})
    return _layout(frame, "id", "Species", sample, folder, 0.25, seed)
