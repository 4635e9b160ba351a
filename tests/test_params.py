"""params.yaml: the shipped file loads, and every mistake names the key at fault and what is allowed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from pipeline.common.params import BaseParams, ParamsError, RuntimeParams, StageParams, parse_section, read_params
from pipeline.fashion.params import FashionTrainParams
from pipeline.house_prices.params import (
    CVParams,
    FeatureParams,
    ModelParams,
    TrainParams,
)
from pipeline.projects import repository_sections
from pipeline.studies.params import WeightDecayStudyParams

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = yaml.safe_load((ROOT / "params.yaml").read_text())
# Not a section of settings: the list of Fashion-MNIST models that `train-fashion` runs (its matrix).
LISTS = {"fashion_models"}
# The sections every kpipe command checks in this repository (pipeline.projects), one dataclass each.
SECTIONS = {name: cls for name, cls in repository_sections().items() if name not in LISTS}


def test_every_section_of_params_yaml_is_checked_here() -> None:
    assert set(SHIPPED) == set(SECTIONS) | LISTS
GOOD_TRAIN = SHIPPED["train"]


@pytest.mark.parametrize(("name", "cls"), SECTIONS.items())
def test_the_shipped_params_file_loads(name: str, cls: type) -> None:
    parse_section(SHIPPED[name], cls, name)


def test_params_dataclasses_have_no_defaults_of_their_own() -> None:
    """params.yaml is the one home of values: a code default could silently differ from it."""
    for cls in SECTIONS.values():
        defaulted = [f.name for f in dataclasses.fields(cls)
                     if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
        assert defaulted == [], f"{cls.__name__} has defaults: {defaulted}"


@pytest.mark.parametrize(("change", "message"), [
    ({"lr_typo": 0.1}, "unknown key"),
    ({"lr": None}, "train.lr=None: expected a finite number"),
    ({"lr": float("inf")}, "train.lr=inf: expected a finite number"),
    ({"epochs": 2.5}, "train.epochs=2.5: expected an integer"),
    ({"target": "sqrt"}, "choose one of log, raw"),
    ({"lr": -0.01}, r"train.lr=-0.01: must be > 0"),
    ({"lr": 0}, r"train.lr=0.0: must be > 0"),
    ({"epochs": 0}, r"train.epochs=0: must be >= 1"),
    ({"batch_size": 0}, r"train.batch_size=0: must be >= 1"),
    ({"weight_decay": -1e-3}, r"train.weight_decay=-0.001: must be >= 0"),
    ({"huber_delta": 0.0}, r"train.huber_delta=0.0: must be > 0"),
    ({"patience": -1}, r"train.patience=-1: must be >= 0"),
])
def test_a_bad_train_value_names_its_key_and_the_allowed_range(change: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        parse_section({**GOOD_TRAIN, **change}, TrainParams, "train")


@pytest.mark.parametrize(("section", "cls", "change", "message"), [
    ("model", ModelParams, {"dropout": 1.0}, r"model.dropout=1.0: must be >= 0 and < 1"),
    ("model", ModelParams, {"hidden": [64, 0]}, r"model.hidden=\(64, 0\): must be >= 1"),
    ("cv", CVParams, {"folds": 1}, r"cv.folds=1: must be >= 2"),
    ("features", FeatureParams, {"neighborhood_min_rows": 0}, r"must be >= 1"),
    ("base", BaseParams, {"seed": -1}, r"base.seed=-1: must be >= 0"),
    ("runtime", RuntimeParams, {"threads": -2}, r"runtime.threads=-2: must be >= 0"),
    ("runtime", RuntimeParams, {"device": "tpu"}, "choose one of auto, cpu, cuda"),
    ("fashion_train", FashionTrainParams, {"dropout_rates": [0.2, 1.5]}, r"must be >= 0 and < 1"),
    ("fashion_train", FashionTrainParams, {"momentum": 1.0}, r"must be >= 0 and < 1"),
    ("study_weight_decay", WeightDecayStudyParams, {"lambdas": [0, -3]}, r"must be >= 0"),
])
def test_ranges_hold_for_every_section(section: str, cls: type, change: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        parse_section({**SHIPPED[section], **change}, cls, section)


def test_a_missing_key_is_reported() -> None:
    partial = {k: v for k, v in GOOD_TRAIN.items() if k != "weight_decay"}
    with pytest.raises(ParamsError, match="missing key.*weight_decay"):
        parse_section(partial, TrainParams, "train")


def test_hidden_sizes_become_a_tuple() -> None:
    model = parse_section({**SHIPPED["model"], "kind": "mlp", "hidden": [32, 16]}, ModelParams, "model")
    assert model.hidden == (32, 16)


def test_stage_params_record_the_sections_read_but_not_runtime(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    params = StageParams(path)
    params.section("train", TrainParams)
    params.sections(["base", "cv"])
    assert params.runtime().device in ("auto", "cpu", "cuda")
    assert params.read == {"train", "base", "cv"}


def test_broken_yaml_is_a_params_error_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: [0.1\n  epochs: 3\n")
    with pytest.raises(ParamsError, match=r"not valid YAML \(line \d+, column \d+\)"):
        read_params(path)
