"""The trained house-prices model on disk: weights, feature transformer and config together.

Torch weights are safetensors (no code runs at load), scikit-learn estimators and the
transformer are skops (likewise), LightGBM boosters are LightGBM's text model format, the
config is JSON. Together they are self-describing: `load_final` rebuilds the exact model
and transform without reading params.yaml. A trained experiment is one or more such models
(`member0/`, `member1/`, ... for an ensemble) under one folder with a top-level config, which
also holds the blend weights `predict_blend` applies.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.io import atomic_dir
from pipeline.house_prices.families import load_predictor, model_file
from pipeline.house_prices.features import load_transformer, save_transformer
from pipeline.house_prices.final import FinalModel
from pipeline.house_prices.training import History

TRANSFORMER = "transformer.skops"
CONFIG = "config.json"


def save_final(final: FinalModel, directory: Path, extra: dict[str, Any]) -> None:
    """Write the files of a model; `extra` (params, CV score) goes into the config."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = final.model.save(directory)
    save_transformer(final.transformer, directory / TRANSFORMER)
    config = {"model": spec, "target": final.target, "feature_names": final.feature_names,
              "price_cap": final.price_cap, **extra}
    (directory / CONFIG).write_text(json.dumps(config, indent=2))


def load_final(directory: Path) -> FinalModel:
    """Rebuild a model saved by `save_final`, by the family its config names."""
    if not (directory / CONFIG).exists():
        raise FileNotFoundError(f"{directory} lacks {CONFIG}: run `dvc repro train` first")
    config = json.loads((directory / CONFIG).read_text())
    spec = config["model"]
    missing = [n for n in (model_file(spec), TRANSFORMER) if not (directory / n).exists()]
    if missing:
        raise FileNotFoundError(f"{directory} lacks {', '.join(missing)}: run `dvc repro train` first")
    empty = History(np.empty((0, 1)), np.empty((0, 1)))
    return FinalModel(load_transformer(directory / TRANSFORMER), load_predictor(directory, spec), empty,
                      config["target"], config["feature_names"], price_cap=config.get("price_cap"))


def save_members(members: list[FinalModel], directory: Path, extra: dict[str, Any]) -> None:
    """Every member in its own folder, and a config naming them (plus `extra`).

    Written to a temporary folder and swapped in whole: a failure (full disk, read-only
    folder) leaves the previous model or none, never a mix of old and new members.
    """
    names = [f"member{i}" for i in range(len(members))]
    with atomic_dir(directory) as tmp:
        for name, member in zip(names, members, strict=True):
            save_final(member, tmp / name, {})
        config = {"members": names, "weights": [m.weight for m in members], **extra}
        (tmp / CONFIG).write_text(json.dumps(config, indent=2))


def load_members(directory: Path) -> list[FinalModel]:
    """The members saved by `save_members`, in order, each with its blend weight."""
    if not (directory / CONFIG).exists():
        raise FileNotFoundError(f"{directory / CONFIG} not found: run `dvc repro train` first")
    config = json.loads((directory / CONFIG).read_text())
    names = config["members"]
    weights = config.get("weights", [1.0 / len(names)] * len(names))  # models saved before learned weights
    return [dataclasses.replace(load_final(directory / name), weight=float(w))
            for name, w in zip(names, weights, strict=True)]
