"""`params.yaml` as frozen dataclasses: the one home of hyperparameters.

Each stage reads only the sections it declares in `dvc.yaml`. A missing or unknown key is an
error that names the key, so a typo in `dvc exp run -S train.lr=...` cannot be ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from pipeline.errors import PipelineError

T = TypeVar("T")


class ParamsError(PipelineError, ValueError):
    """params.yaml does not match what the code expects."""


@dataclasses.dataclass(frozen=True)
class BaseParams:
    seed: int


@dataclasses.dataclass(frozen=True)
class DataParams:
    source: Literal["d2l", "kaggle", "local"]
    base_url: str
    local_dir: str
    verify: bool


@dataclasses.dataclass(frozen=True)
class FeatureParams:
    fit_on: Literal["train", "train+test"]
    log_skewed: bool
    skew_threshold: float
    # Defaults serve code that builds params by hand; params.yaml must still name every key.
    ordinal: Literal["none", "add", "replace"] = "none"
    derived: bool = False
    drop_outliers: bool = False
    clip: bool = False


@dataclasses.dataclass(frozen=True)
class ModelParams:
    kind: Literal["linear", "mlp"]
    hidden: tuple[int, ...]
    dropout: float
    linear_skip: bool


@dataclasses.dataclass(frozen=True)
class TrainParams:
    target: Literal["log", "raw"]
    loss: Literal["mse", "huber"]
    huber_delta: float
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    schedule: Literal["constant", "cosine"]
    device: Literal["auto", "cpu", "cuda"]
    threads: int


@dataclasses.dataclass(frozen=True)
class CVParams:
    folds: int


def read_params(path: Path) -> dict[str, Any]:
    """The whole params file as plain data."""
    if not path.exists():
        raise ParamsError(f"{path} not found: run from the project root")
    with path.open() as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path} must hold a mapping of sections")
    return data


def load_section(path: Path, name: str, cls: type[T]) -> T:
    """Section `name` of the params file at `path`, checked against dataclass `cls`."""
    data = read_params(path)
    if name not in data:
        raise ParamsError(f"{path}: section '{name}' is missing")
    return parse_section(data[name], cls, name)


def parse_section(raw: Any, cls: type[T], where: str) -> T:
    """Build dataclass `cls` from a mapping, failing loudly on any mismatch."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{where} must be a mapping, got {raw!r}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    missing = sorted(set(names) - set(raw))
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {', '.join(unknown)}; expected {', '.join(names)}")
    if missing:
        raise ParamsError(f"{where}: missing key(s) {', '.join(missing)}")
    values = {n: _convert(raw[n], hints[n], f"{where}.{n}") for n in names}
    instance = cls(**values)
    check = getattr(instance, "check", None)
    if callable(check):
        check()
    return instance


def _convert(value: Any, hint: Any, where: str) -> Any:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return parse_section(value, hint, where)
    if origin is Literal:
        if value not in get_args(hint):
            raise ParamsError(f"{where}={value!r}: choose one of {', '.join(map(str, get_args(hint)))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where}={value!r}: expected a list")
        item = get_args(hint)[0]
        return tuple(_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}={value!r}: expected a mapping")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}={value!r}: expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where}={value!r}: expected an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where}={value!r}: expected a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where}={value!r}: expected a string")
        return value
    return value
