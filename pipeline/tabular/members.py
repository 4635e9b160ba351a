"""The member families of a generic competition: one interface for every model of any task.

A family fits a member on a float32 matrix and returns a fitted member whose `predict` gives
*link-space* predictions, the space where blending is an average: a regression's fit-space
value (log1p of the target for log metrics), a binary problem's log-odds, a multiclass
problem's log-probabilities. `Task.probabilities` maps the link back. Every family saves
without pickle (safetensors, skops, LightGBM's text model), so a saved model is data, not code.

`FAMILIES` is the registry `model.members[*].kind` names. None is a kernel method: their
O(n^2) memory has no place on Playground tables of a million rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.common.io import write_text
from pipeline.common.runtime import current_threads
from pipeline.common.skops_files import dump_skops, load_skops
from pipeline.tabular.catboost_member import catboost_frame, save_cbm
from pipeline.tabular.params import MemberParams
from pipeline.tabular.torch_members import TorchModel, fit_torch


@dataclass(frozen=True)
class Task:
    """The task of a competition as members see it: class indices 0..n_classes-1."""

    kind: str  # regression, binary, multiclass
    n_classes: int = 0

    def probabilities(self, link: np.ndarray) -> np.ndarray:
        """P(positive) (binary) or class probabilities (multiclass) from link-space predictions."""
        if self.kind == "binary":
            return 1.0 / (1.0 + np.exp(-link))
        if self.kind == "multiclass":
            shifted = link - link.max(axis=1, keepdims=True)
            exp = np.exp(shifted)
            return exp / exp.sum(axis=1, keepdims=True)
        raise ValueError("a regression has no probabilities")

    def link_shape(self, n_rows: int) -> tuple[int, ...]:
        return (n_rows, self.n_classes) if self.kind == "multiclass" else (n_rows,)


class Fitted(Protocol):
    def predict(self, x: np.ndarray) -> np.ndarray: ...

    def save(self, directory: Path, stem: str) -> dict[str, Any]: ...


class Family(Protocol):
    kind: str
    encoding: str  # the feature encoding it reads (features.ENCODINGS)
    sections: tuple[str, ...]  # the params sections its results depend on (besides features and seed)

    def fit(self, member: MemberParams, x: np.ndarray, y: np.ndarray, task: Task,
            categorical: np.ndarray) -> Fitted: ...

    def load(self, directory: Path, spec: dict[str, Any], task: Task) -> Fitted: ...


@dataclass(frozen=True)
class TorchFamily:
    """`linear` (no hidden layer) or `mlp` (`train.hidden`)."""

    kind: str
    encoding: str = "onehot"
    sections: tuple[str, ...] = ("train",)

    def fit(self, member: MemberParams, x: np.ndarray, y: np.ndarray, task: Task, categorical: np.ndarray) -> Fitted:
        hidden = () if self.kind == "linear" else member.train.hidden
        return TorchFitted(fit_torch(x, y, task.kind, task.n_classes, member.train, hidden, member.seed))

    def load(self, directory: Path, spec: dict[str, Any], task: Task) -> Fitted:
        return TorchFitted(TorchModel.load(directory, spec, task.kind))


@dataclass
class TorchFitted:
    model: TorchModel

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)

    def save(self, directory: Path, stem: str) -> dict[str, Any]:
        return self.model.save(directory, stem)


@dataclass
class SklearnFitted:
    """Ridge regression or logistic regression (binary or multinomial)."""

    estimator: Any
    task: Task

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.task.kind == "regression":
            return np.asarray(self.estimator.predict(x), dtype=np.float64)
        if self.task.kind == "binary":
            return np.asarray(self.estimator.decision_function(x), dtype=np.float64)
        return np.asarray(self.estimator.predict_log_proba(x), dtype=np.float64)

    def save(self, directory: Path, stem: str) -> dict[str, Any]:
        dump_skops(self.estimator, directory / f"{stem}.skops")
        return {"file": f"{stem}.skops"}


@dataclass(frozen=True)
class SklearnFamily:
    kind: str = "sklearn"
    encoding: str = "onehot"
    sections: tuple[str, ...] = ("sklearn",)

    def fit(self, member: MemberParams, x: np.ndarray, y: np.ndarray, task: Task, categorical: np.ndarray) -> Fitted:
        from sklearn.linear_model import LogisticRegression, Ridge

        p = member.sklearn
        estimator = Ridge(alpha=p.alpha) if task.kind == "regression" else \
            LogisticRegression(C=p.C, max_iter=p.max_iter, random_state=member.seed)
        return SklearnFitted(estimator.fit(x, y), task)

    def load(self, directory: Path, spec: dict[str, Any], task: Task) -> Fitted:
        return SklearnFitted(load_skops(directory / spec["file"], ("sklearn.", "numpy.")), task)


@dataclass
class LightGBMFitted:
    booster: Any
    task: Task

    def predict(self, x: np.ndarray) -> np.ndarray:
        raw = np.asarray(self.booster.predict(x, raw_score=True, num_threads=current_threads()), dtype=np.float64)
        if self.task.kind == "multiclass":
            return raw - np.logaddexp.reduce(raw, axis=1, keepdims=True)
        return raw

    def save(self, directory: Path, stem: str) -> dict[str, Any]:
        """LightGBM's text model without the thread count (a runtime setting that changes no tree)."""
        text = re.sub(r"^\[num_threads: \d+\]$", "[num_threads: 0]", self.booster.model_to_string(),
                      flags=re.MULTILINE)
        write_text(text, directory / f"{stem}.lgb.txt")
        return {"file": f"{stem}.lgb.txt"}


OBJECTIVES = {"regression": "regression", "binary": "binary", "multiclass": "multiclass"}


@dataclass(frozen=True)
class LightGBMFamily:
    kind: str = "lightgbm"
    encoding: str = "native"
    sections: tuple[str, ...] = ("lightgbm",)

    def fit(self, member: MemberParams, x: np.ndarray, y: np.ndarray, task: Task, categorical: np.ndarray) -> Fitted:
        import lightgbm

        p = member.lightgbm
        params = {"objective": OBJECTIVES[task.kind], "learning_rate": p.learning_rate, "num_leaves": p.num_leaves,
                  "min_data_in_leaf": p.min_data_in_leaf, "feature_fraction": p.feature_fraction,
                  "lambda_l2": p.lambda_l2, "seed": member.seed, "deterministic": True, "force_row_wise": True,
                  "num_threads": current_threads(), "verbosity": -1}
        if task.kind == "multiclass":
            params["num_class"] = task.n_classes
        data = lightgbm.Dataset(x, y, categorical_feature=[int(i) for i in np.flatnonzero(categorical)],
                                params={"verbosity": -1}, free_raw_data=True)
        return LightGBMFitted(lightgbm.train(params, data, num_boost_round=p.num_boost_round), task)

    def load(self, directory: Path, spec: dict[str, Any], task: Task) -> Fitted:
        import lightgbm

        return LightGBMFitted(lightgbm.Booster(model_file=str(directory / spec["file"])), task)


@dataclass
class CatBoostFitted:
    """A CatBoost model; raw formula values are the link (log-odds, or class scores)."""

    model: Any
    task: Task

    def predict(self, x: np.ndarray) -> np.ndarray:
        cat = self.model.get_cat_feature_indices()
        raw = np.asarray(self.model.predict(catboost_frame(_codes(x, cat), cat), prediction_type="RawFormulaVal",
                                            thread_count=current_threads()), dtype=np.float64)
        if self.task.kind == "multiclass":
            return raw - np.logaddexp.reduce(raw, axis=1, keepdims=True)
        return raw

    def save(self, directory: Path, stem: str) -> dict[str, Any]:
        save_cbm(self.model, directory / f"{stem}.cbm")
        return {"file": f"{stem}.cbm"}


def _codes(x: np.ndarray, categorical: list[int]) -> np.ndarray:
    """The native view with missing category codes as -1: CatBoost's categories are integers."""
    x = np.array(x, dtype=np.float32)
    for j in categorical:
        x[np.isnan(x[:, j]), j] = -1
    return x


LOSSES = {"regression": "RMSE", "binary": "Logloss", "multiclass": "MultiClass"}


@dataclass(frozen=True)
class CatBoostFamily:
    """Symmetric gradient-boosted trees with ordered target statistics for categories (the
    `catboost` section, House Prices' parameter names)."""

    kind: str = "catboost"
    encoding: str = "native"
    sections: tuple[str, ...] = ("catboost",)

    def fit(self, member: MemberParams, x: np.ndarray, y: np.ndarray, task: Task, categorical: np.ndarray) -> Fitted:
        import catboost

        p, cat = member.catboost, [int(i) for i in np.flatnonzero(categorical)]
        model = (catboost.CatBoostRegressor if task.kind == "regression" else catboost.CatBoostClassifier)(
            loss_function=LOSSES[task.kind], iterations=p.iterations, learning_rate=p.learning_rate, depth=p.depth,
            l2_leaf_reg=p.l2_leaf_reg, random_strength=p.random_strength, bootstrap_type="Bayesian",
            bagging_temperature=p.bagging_temperature, border_count=p.border_count,
            one_hot_max_size=p.one_hot_max_size, rsm=p.rsm, boosting_type=p.boosting_type, random_seed=member.seed,
            thread_count=current_threads(), allow_writing_files=False, verbose=False, cat_features=cat)
        model.fit(catboost_frame(_codes(x, cat), cat), y)
        return CatBoostFitted(model, task)

    def load(self, directory: Path, spec: dict[str, Any], task: Task) -> Fitted:
        import catboost

        return CatBoostFitted(catboost.CatBoost().load_model(str(directory / spec["file"]), format="cbm"), task)


FAMILIES: dict[str, Family] = {"linear": TorchFamily("linear"), "mlp": TorchFamily("mlp"),
                               "sklearn": SklearnFamily(), "lightgbm": LightGBMFamily(),
                               "catboost": CatBoostFamily()}
