"""params.yaml: the shipped file loads, and every mistake names the key at fault."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.params import (BaseParams, CVParams, DataParams, FeatureParams, ModelParams, ParamsError,
                             TrainParams, load_section, parse_section)

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = {"base": BaseParams, "data": DataParams, "features": FeatureParams, "model": ModelParams,
            "train": TrainParams, "cv": CVParams}
GOOD_TRAIN = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]


@pytest.mark.parametrize(("name", "cls"), SECTIONS.items())
def test_the_shipped_params_file_loads(name: str, cls: type) -> None:
    load_section(ROOT / "params.yaml", name, cls)


@pytest.mark.parametrize(("change", "message"), [
    ({"lr_typo": 0.1}, "unknown key"),
    ({"lr": None}, "train.lr=None: expected a number"),
    ({"epochs": 2.5}, "train.epochs=2.5: expected an integer"),
    ({"target": "sqrt"}, "choose one of log, raw"),
    ({"device": "tpu"}, "choose one of auto, cpu, cuda"),
])
def test_a_bad_value_names_its_key(change: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        parse_section({**GOOD_TRAIN, **change}, TrainParams, "train")


def test_a_missing_key_is_reported() -> None:
    partial = {k: v for k, v in GOOD_TRAIN.items() if k != "weight_decay"}
    with pytest.raises(ParamsError, match="missing key.*weight_decay"):
        parse_section(partial, TrainParams, "train")


def test_hidden_sizes_become_a_tuple() -> None:
    model = parse_section({"kind": "mlp", "hidden": [32, 16], "dropout": 0.1, "linear_skip": False, "members": []},
                          ModelParams, "model")
    assert model.hidden == (32, 16)
