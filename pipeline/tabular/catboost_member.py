"""A CatBoost member: oblivious gradient-boosted trees of log price, with the same interface as
the LightGBM and scikit-learn members (`fit(x, y, categorical)` / `predict(x)` / `save` / `load`).

Why CatBoost beside LightGBM: its trees are symmetric (one split per depth level, the same for
every node of a level), a strong regulariser on 1460 rows, and they err on other houses than
LightGBM's leaf-wise trees, which is what a blend needs. `features.encoding: native` gives one
integer code per categorical column (-1 for a category the fit never saw); `categorical`
names those columns and they become CatBoost `cat_features` (integers, not floats). CatBoost
can turn them into ordered target statistics (each row's category mean from the rows before
it in a random permutation); on House Prices, one-hot inside CatBoost (`one_hot_max_size`
above every column's category count) scored better and ran faster, so that is the default.

The model is saved in CatBoost's own binary format (`.cbm`), which `load_model` reads without
running any code, unlike pickle. Training metadata that varies between identical fits (a
random model GUID, the finish time, the thread count) is normalised first, so the same fit
gives the same bytes.

In the core: House Prices' families use the member itself, and the core's CatBoost family
(`pipeline.tabular.members`) the same frame and file helpers (`catboost_frame`, `save_cbm`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from pipeline.common.io import atomic_path
from pipeline.common.params import at_least, positive, ranged

CATBOOST_FILE = "catboost.cbm"
# Model metadata CatBoost writes that differs between two identical fits.
VOLATILE_METADATA = ("model_guid", "train_finish_time")


@dataclasses.dataclass(frozen=True)
class CatBoostParams:
    """`catboost`: symmetric gradient-boosted trees on log price (CatBoost's parameter names)."""

    iterations: int = at_least(1)
    learning_rate: float = positive()
    depth: int = ranged(1, 16)  # every tree is symmetric: 2**depth leaves
    l2_leaf_reg: float = at_least(0)
    random_strength: float = at_least(0)  # noise on split scores (decays over the trees)
    bagging_temperature: float = at_least(0)  # Bayesian bootstrap: 0 = every row weight 1
    border_count: int = ranged(1, 65535)  # bins of each numeric column
    one_hot_max_size: int = at_least(1)  # categoricals with at most this many values: one-hot, else target stats
    rsm: float = ranged(0, 1, low_open=True)  # columns drawn per split level
    boosting_type: Literal["Plain", "Ordered"]  # Ordered: each row's gradient from a model that never saw it


def save_cbm(model: object, path: Path) -> None:
    """CatBoost's binary model, without the metadata that differs between identical fits."""
    metadata = model.get_metadata()
    for key in VOLATILE_METADATA:
        if key in metadata:
            del metadata[key]
    if "params" in metadata:
        params = json.loads(metadata["params"])
        params.get("system_options", {})["thread_count"] = -1  # a runtime setting that changes no tree
        params.get("flat_params", {}).pop("thread_count", None)
        metadata["params"] = json.dumps(params, sort_keys=True)
    with atomic_path(path) as tmp:
        model.save_model(str(tmp), format="cbm")


def catboost_frame(x: np.ndarray, categorical: np.ndarray | list[int]) -> pd.DataFrame:
    """`x` as a frame CatBoost reads: native-code columns as int64, the rest float64."""
    frame = pd.DataFrame(np.asarray(x, dtype=np.float64), columns=[f"f{i}" for i in range(x.shape[1])])
    cat = np.flatnonzero(categorical) if np.asarray(categorical).dtype == bool else np.asarray(categorical, dtype=int)
    if len(cat):
        codes = frame.iloc[:, cat].to_numpy()
        if not np.array_equal(codes, np.round(codes)):
            raise ValueError("categorical columns must hold integer category codes (features.encoding: native)")
        for j, column in enumerate(cat):
            frame[frame.columns[column]] = codes[:, j].astype(np.int64)
    return frame


class CatBoostRegressor:
    """A CatBoost model of log price (RMSE), trained on the fold's rows.

    Deterministic: `random_seed` from `base.seed`, on the thread count the stage set from
    `runtime.threads` (the trees do not depend on it), and no files of CatBoost's own.
    """

    kind = name = "catboost"

    def __init__(self, params: CatBoostParams | None, seed: int, model: object | None = None) -> None:
        self.params, self.seed, self.model = params, seed, model

    def model_params(self) -> dict[str, object]:
        from pipeline.common.runtime import current_threads  # torch's thread count: imported when fitting

        p = self.params
        return {"loss_function": "RMSE", "iterations": p.iterations, "learning_rate": p.learning_rate,
                "depth": p.depth, "l2_leaf_reg": p.l2_leaf_reg, "random_strength": p.random_strength,
                "bootstrap_type": "Bayesian", "bagging_temperature": p.bagging_temperature,
                "border_count": p.border_count, "one_hot_max_size": p.one_hot_max_size, "rsm": p.rsm,
                "boosting_type": p.boosting_type, "random_seed": self.seed, "thread_count": current_threads(),
                "allow_writing_files": False, "verbose": False}

    def fit(self, x: np.ndarray, y: np.ndarray, categorical: np.ndarray) -> CatBoostRegressor:
        import catboost

        cat = [int(i) for i in np.flatnonzero(categorical)]
        self.model = catboost.CatBoostRegressor(**self.model_params(), cat_features=cat)
        self.model.fit(catboost_frame(x, cat), np.asarray(y, dtype=np.float64))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        from pipeline.common.runtime import current_threads

        frame = catboost_frame(x, self.model.get_cat_feature_indices())
        return np.asarray(self.model.predict(frame, thread_count=current_threads()), dtype=np.float64)

    def save(self, directory: Path) -> dict[str, str]:
        save_cbm(self.model, directory / CATBOOST_FILE)
        return {"kind": self.kind, "estimator": self.name, "file": CATBOOST_FILE}

    @classmethod
    def load(cls, directory: Path) -> CatBoostRegressor:
        import catboost

        model = catboost.CatBoostRegressor()
        model.load_model(str(directory / CATBOOST_FILE), format="cbm")
        return cls(None, 0, model)
