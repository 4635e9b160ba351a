"""The member interface: every model family cross-validates, fits, saves and loads the same way.

A *member* is one model of an experiment (a single model is an ensemble of one member). Its
family, found by `model.kind` in the one registry table `FAMILIES`, knows four things:

- `cross_validate(member, train, test, splits, ...)`: out-of-fold predictions of every repeat,
  test predictions of the fold models, fold scores and curves (a `CVResult`);
- `fit(member, train, test, ...)`: the final model on every training row (a `FinalModel`,
  whose `model` is a `Predictor`: `predict(x)` and `save(directory) -> spec`);
- `load(directory, spec)`: the `Predictor` that `save` wrote;
- `ingredients(member)`: exactly the params its results depend on, so the OOF library keys a
  member by what it computes and nothing else (an SVR does not rerun when `train.lr` moves).

The seam follows scikit-learn's estimator API and AutoGluon's `AbstractModel`: stages, runs,
tuning, blending and serving never ask which family they hold. Torch members (linear, mlp)
train all folds at once (`FoldBatchedRegressor`); scikit-learn, LightGBM and CatBoost members
share one per-fold loop over an `Estimator` (`fit(x, y, categorical)` / `predict` / `save`).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd
from safetensors.torch import load_file

from pipeline.house_prices.cv import CVResult, FoldFeatureCache, Splits, cross_validate, cross_validate_regressor
from pipeline.house_prices.estimators import (
    NATIVE_SKLEARN,
    LightGBMRegressor,
    Regressor,
    SklearnRegressor,
    sklearn_estimator,
)
from pipeline.house_prices.final import WEIGHTS, FinalModel, Predictor, TorchPredictor, fit_final, fit_final_regressor
from pipeline.house_prices.models import FoldBatchedRegressor, ModelSpec
from pipeline.house_prices.training import EpochCallback
from pipeline.tabular.catboost_member import CatBoostRegressor

if TYPE_CHECKING:
    from pipeline.house_prices.experiment import ExperimentParams

_HERE = Path(__file__).resolve().parent
# The modules every member's CV result depends on (folds, features, scores, schemas).
_SHARED_CODE = tuple(_HERE / m for m in ("cv.py", "features.py", "schemas.py", "training.py"))


class Family(Protocol):
    """What every model family implements (see the module docstring)."""

    kind: str

    def reads_native(self, member: ExperimentParams) -> bool:
        """Whether this member can read `features.encoding: native` columns (tree models)."""
        ...

    def label(self, member: ExperimentParams) -> str:
        """What the member is, for tables: `mlp`, `sklearn/svr`, `catboost`."""
        ...

    def ingredients(self, member: ExperimentParams) -> dict[str, Any]: ...

    def code(self) -> tuple[Path, ...]: ...

    def library_versions(self) -> dict[str, str]: ...

    def cross_validate(self, member: ExperimentParams, train: pd.DataFrame, test: pd.DataFrame | None,
                       splits: Splits, *, on_epoch: EpochCallback | None, cache: FoldFeatureCache | None,
                       device: str) -> CVResult: ...

    def fit(self, member: ExperimentParams, train: pd.DataFrame, test: pd.DataFrame | None, *,
            epochs: int | None, on_epoch: EpochCallback | None, device: str) -> FinalModel: ...

    def load(self, directory: Path, spec: dict[str, Any]) -> Predictor: ...

    def takes_epochs(self, member: ExperimentParams) -> bool: ...


def _versions(*names: str) -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in names}


def _common(member: ExperimentParams) -> dict[str, Any]:
    return {"kind": member.model.kind, "features": dataclasses.asdict(member.features), "seed": member.base.seed}


@dataclass(frozen=True)
class TorchFamily:
    """Linear regression and MLPs in torch (`train` section), all folds trained at once."""

    kind: str

    def reads_native(self, member: ExperimentParams) -> bool:
        return False

    def label(self, member: ExperimentParams) -> str:
        return self.kind

    def ingredients(self, member: ExperimentParams) -> dict[str, Any]:
        model = member.model
        shape = {"hidden": list(model.hidden), "dropout": model.dropout, "linear_skip": model.linear_skip} \
            if self.kind == "mlp" else {}
        return {**_common(member), "model": shape, "train": dataclasses.asdict(member.train)}

    def code(self) -> tuple[Path, ...]:
        return (*_SHARED_CODE, _HERE / "models.py", _HERE / "families.py")

    def library_versions(self) -> dict[str, str]:
        return _versions("torch", "numpy", "scikit-learn")

    def takes_epochs(self, member: ExperimentParams) -> bool:
        return True

    def cross_validate(self, member: ExperimentParams, train: pd.DataFrame, test: pd.DataFrame | None,
                       splits: Splits, *, on_epoch: EpochCallback | None, cache: FoldFeatureCache | None,
                       device: str) -> CVResult:
        return cross_validate(train, test, member.features, member.model, member.train, splits, member.base.seed,
                              on_epoch=on_epoch, cache=cache, device=device)

    def fit(self, member: ExperimentParams, train: pd.DataFrame, test: pd.DataFrame | None, *,
            epochs: int | None, on_epoch: EpochCallback | None, device: str) -> FinalModel:
        params = member.train if epochs is None else dataclasses.replace(member.train, epochs=epochs, patience=0)
        return fit_final(train, test, member.features, member.model, params, member.base.seed, device=device,
                         on_epoch=on_epoch)

    def load(self, directory: Path, spec: dict[str, Any]) -> Predictor:
        network = FoldBatchedRegressor(ModelSpec.from_dict(spec))
        network.load_state_dict(load_file(directory / WEIGHTS))
        return TorchPredictor(network.eval())


@dataclass(frozen=True)
class EstimatorFamily:
    """A family whose model is an `Estimator` fit fold by fold on log prices: scikit-learn,
    LightGBM, CatBoost. `make(member)` gives a fresh one; `section(member)` the params it reads."""

    kind: str
    make: Callable[[ExperimentParams], Regressor]
    section: Callable[[ExperimentParams], dict[str, Any]]
    loader: Callable[[Path, dict[str, Any]], Regressor]
    module: Path  # the module of its model class
    libraries: tuple[str, ...]
    native: Callable[[ExperimentParams], bool]
    name: Callable[[ExperimentParams], str] = lambda _member: ""  # the estimator within the family

    def label(self, member: ExperimentParams) -> str:
        return "/".join(p for p in (self.kind, self.name(member)) if p)

    def reads_native(self, member: ExperimentParams) -> bool:
        return self.native(member)

    def ingredients(self, member: ExperimentParams) -> dict[str, Any]:
        return {**_common(member), self.kind: self.section(member)}

    def code(self) -> tuple[Path, ...]:
        return (*_SHARED_CODE, self.module, _HERE / "final.py")

    def library_versions(self) -> dict[str, str]:
        return _versions("numpy", "scikit-learn", *self.libraries)

    def takes_epochs(self, member: ExperimentParams) -> bool:
        return False

    def cross_validate(self, member: ExperimentParams, train: pd.DataFrame, test: pd.DataFrame | None,
                       splits: Splits, *, on_epoch: EpochCallback | None, cache: FoldFeatureCache | None,
                       device: str) -> CVResult:
        return cross_validate_regressor(train, test, member.features, lambda: self.make(member), splits, cache=cache)

    def fit(self, member: ExperimentParams, train: pd.DataFrame, test: pd.DataFrame | None, *,
            epochs: int | None, on_epoch: EpochCallback | None, device: str) -> FinalModel:
        return fit_final_regressor(train, test, member.features, self.make(member))

    def load(self, directory: Path, spec: dict[str, Any]) -> Predictor:
        return self.loader(directory, spec)


def _sklearn_section(member: ExperimentParams) -> dict[str, Any]:
    name = member.sklearn.estimator
    return {"estimator": name, name: dataclasses.asdict(getattr(member.sklearn, name))}


FAMILIES: dict[str, Family] = {
    "linear": TorchFamily("linear"),
    "mlp": TorchFamily("mlp"),
    "sklearn": EstimatorFamily(
        "sklearn", make=lambda m: SklearnRegressor(sklearn_estimator(m.sklearn, m.base.seed), m.sklearn.estimator),
        section=_sklearn_section, loader=lambda d, spec: SklearnRegressor.load(d, spec["estimator"]),
        module=_HERE / "estimators.py", libraries=("scipy",), native=lambda m: m.sklearn.estimator in NATIVE_SKLEARN,
        name=lambda m: m.sklearn.estimator),
    "lightgbm": EstimatorFamily(
        "lightgbm", make=lambda m: LightGBMRegressor(m.lightgbm, m.base.seed),
        section=lambda m: dataclasses.asdict(m.lightgbm), loader=lambda d, _spec: LightGBMRegressor.load(d),
        module=_HERE / "estimators.py", libraries=("lightgbm",), native=lambda m: True),
    "catboost": EstimatorFamily(
        "catboost", make=lambda m: CatBoostRegressor(m.catboost, m.base.seed),
        section=lambda m: dataclasses.asdict(m.catboost), loader=lambda d, _spec: CatBoostRegressor.load(d),
        module=Path(inspect.getfile(CatBoostRegressor)).resolve(), libraries=("catboost",), native=lambda m: True),
}


def family_of(member: ExperimentParams) -> Family:
    return FAMILIES[member.model.kind]


def load_predictor(directory: Path, spec: dict[str, Any]) -> Predictor:
    """The fitted model a member's `save` wrote in `directory`, by the family its spec names."""
    if spec.get("kind") not in FAMILIES:
        raise ValueError(f"{directory}: unknown model kind {spec.get('kind')!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[spec["kind"]].load(directory, spec)


def model_file(spec: dict[str, Any]) -> str:
    """The file a saved member's model lives in (models saved before specs named it: torch weights)."""
    return str(spec.get("file", WEIGHTS))
