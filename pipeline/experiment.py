"""One experiment = the params sections that define a CV score, parsed and run together.

Stages, the benchmark and `kpipe tune` all go through here, so "the CV score of these
params" means the same computation everywhere. Overrides use DVC's dotted keys
(`train.lr`), like `dvc exp run -S train.lr=0.01`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline.cv import CVResult, cross_validate
from pipeline.params import (BaseParams, CVParams, FeatureParams, ModelParams, ParamsError, TrainParams,
                             parse_section)
from pipeline.training import EpochCallback

SECTIONS: dict[str, type] = {"base": BaseParams, "features": FeatureParams, "model": ModelParams,
                             "train": TrainParams, "cv": CVParams}


@dataclass(frozen=True)
class ExperimentParams:
    base: BaseParams
    features: FeatureParams
    model: ModelParams
    train: TrainParams
    cv: CVParams


def parse_experiment(raw: dict[str, Any]) -> ExperimentParams:
    """The experiment sections of a params mapping (other sections are ignored)."""
    missing = [s for s in SECTIONS if s not in raw]
    if missing:
        raise ParamsError(f"params lack section(s) {', '.join(missing)}")
    return ExperimentParams(**{name: parse_section(raw[name], cls, name) for name, cls in SECTIONS.items()})


def with_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `raw` with dotted keys set; an unknown key is an error, not a new key."""
    out = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        *path, last = dotted.split(".")
        node = out
        for part in path:
            if not isinstance(node, dict) or part not in node:
                raise ParamsError(f"override '{dotted}': no section '{part}'")
            node = node[part]
        if not isinstance(node, dict) or last not in node:
            raise ParamsError(f"override '{dotted}': no key '{last}'")
        node[last] = value
    return out


def run_cv(params: ExperimentParams, train: pd.DataFrame, test: pd.DataFrame | None,
           on_epoch: EpochCallback | None = None) -> CVResult:
    """The CV score of `params` on validated frames."""
    return cross_validate(train, test, params.features, params.model, params.train,
                          params.cv.folds, params.base.seed, on_epoch)
