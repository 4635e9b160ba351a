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
    source: Literal["bundled", "d2l", "kaggle", "local"]
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
    neighborhood_cap: bool = False  # cap numeric features at their neighbourhood's max
    neighborhood_min_rows: int = 30  # ... in neighbourhoods with at least this many fit rows

    def check(self) -> None:
        if self.neighborhood_min_rows < 1:
            raise ParamsError(f"features.neighborhood_min_rows must be >= 1, got {self.neighborhood_min_rows}")


@dataclasses.dataclass(frozen=True)
class ModelParams:
    kind: Literal["linear", "mlp", "ensemble"]
    hidden: tuple[int, ...]
    dropout: float
    linear_skip: bool
    # ensemble only: each member is a set of dotted overrides of these params (e.g.
    # {model.kind: mlp, base.seed: 1}); predictions are averaged in log space.
    members: tuple[dict[str, Any], ...] = ()


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
    # Early stopping on the fold's validation score (0 = off): stop once no fold improved
    # for this many epochs, and restore each fold's best epoch.
    patience: int = 0


@dataclasses.dataclass(frozen=True)
class CVParams:
    folds: int
    # false: the book's contiguous folds (rows in file order), the same whatever the seed
    shuffle: bool = True


def dotted_slot(data: dict, dotted: str, where: str) -> tuple[dict, str]:
    """The mapping that holds dotted key `dotted` (e.g. `train.lr`) and its last part.

    Every part must already exist: an override names a param, it never invents one.
    """
    *path, last = dotted.split(".")
    node = data
    for part in path:
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"{where} '{dotted}': no section '{part}'")
        node = node[part]
    if not isinstance(node, dict) or last not in node:
        raise ParamsError(f"{where} '{dotted}': no key '{last}'")
    return node, last


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


# --- Fashion-MNIST and chapter studies ---------------------------------------------------

FASHION_MODELS = ("softmax_scratch", "softmax", "mlp_scratch", "mlp", "dropout_scratch", "dropout")


@dataclasses.dataclass(frozen=True)
class FashionDataParams:
    """Where the four Fashion-MNIST IDX files come from."""

    source: Literal["local", "url"]
    local_dir: str
    url: str


@dataclasses.dataclass(frozen=True)
class FashionTrainParams:
    """One set of training settings shared by all six models, so they compare fairly."""

    models: tuple[str, ...]
    epochs: int
    batch_size: int
    optimizer: Literal["sgd", "sgd_momentum", "adam"]
    lr: float
    momentum: float
    weight_decay: float
    schedule: Literal["constant", "cosine"]
    mlp_hidden: tuple[int, ...]
    dropout_hidden: tuple[int, ...]
    dropout_rates: tuple[float, ...]
    max_train_rows: int
    max_test_rows: int
    num_threads: int
    prediction_images: int

    def check(self) -> None:
        unknown = sorted(set(self.models) - set(FASHION_MODELS))
        if unknown:
            raise ParamsError(f"fashion_train.models: unknown {', '.join(unknown)}; "
                              f"choose from {', '.join(FASHION_MODELS)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ParamsError("fashion_train: epochs and batch_size must be >= 1")
        if self.lr <= 0:
            raise ParamsError("fashion_train.lr must be > 0")
        if len(self.dropout_rates) != len(self.dropout_hidden):
            raise ParamsError("fashion_train: dropout_rates needs one rate per "
                              "dropout_hidden layer")
        if any(not 0.0 <= p <= 1.0 for p in self.dropout_rates):
            raise ParamsError("fashion_train.dropout_rates must lie in [0, 1]")
        if min(self.max_train_rows, self.max_test_rows, self.num_threads) < 0:
            raise ParamsError("fashion_train: max_*_rows and num_threads must be >= 0 "
                              "(0 = all / auto)")


@dataclasses.dataclass(frozen=True)
class LinregStudyParams:
    rows: int
    true_w: tuple[float, ...]
    true_b: float
    noise: float
    epochs: int
    batch_size: int
    lr: float


@dataclasses.dataclass(frozen=True)
class WeightDecayStudyParams:
    train_rows: int
    test_rows: int
    features: int
    noise: float
    epochs: int
    batch_size: int
    lr: float
    lambdas: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class InitStudyParams:
    depth: int
    width: int
    batch_size: int
    matrices: int
    matrix_size: int
