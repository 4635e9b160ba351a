"""Members from other model families: scikit-learn regressors and LightGBM boosters.

They see the same fold rows and the same feature module as the torch members, and regress log
price with squared error (the `train` section, torch's loop, does not apply to them). Errors
of trees and of kernel or sparse linear models fall on other houses than a network's, which
is what a blend needs. Each is wrapped in a small class with one interface, `fit(x, y,
categorical)` / `predict(x)` on log prices, and one safe file format: skops for scikit-learn
estimators (loading trusts scikit-learn and NumPy types only), LightGBM's own text model for
boosters; neither runs code at load, unlike pickle.

`features.encoding: native` gives trees one integer code per categorical column instead of a
one-hot block; `categorical` (a mask over the columns) tells LightGBM and
HistGradientBoosting which columns those are, so they split on sets of categories.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import ElasticNet, ElasticNetCV, Lasso, LassoCV, Ridge, RidgeCV
from sklearn.svm import SVR

from pipeline.common.io import write_text
from pipeline.common.runtime import current_threads
from pipeline.common.skops_files import dump_skops
from pipeline.house_prices.params import LightGBMParams, SklearnParams

# scikit-learn estimators that split on native category codes; the others need one-hot columns.
NATIVE_SKLEARN = ("hist_gradient_boosting",)
SKLEARN_FILE = "estimator.skops"
LIGHTGBM_FILE = "lightgbm.txt"


class Regressor(Protocol):
    """A regressor of log price on a fold's feature matrix."""

    kind: str  # its model.kind: sklearn or lightgbm
    name: str  # the estimator (sklearn.estimator), or lightgbm

    def fit(self, x: np.ndarray, y: np.ndarray, categorical: np.ndarray) -> Regressor: ...

    def predict(self, x: np.ndarray) -> np.ndarray: ...

    def save(self, directory: Path) -> dict[str, str]:
        """Write the fitted model into `directory`; its spec for `families.load_predictor`."""
        ...


def sklearn_estimator(params: SklearnParams, seed: int) -> RegressorMixin:
    """The scikit-learn estimator `sklearn.estimator` names, with its sub-section's values."""
    name = params.estimator
    if name == "ridge":
        return Ridge(alpha=params.ridge.alpha)
    if name == "ridge_cv":
        return RidgeCV(alphas=list(params.ridge_cv.alphas))
    if name == "lasso":
        return Lasso(alpha=params.lasso.alpha, max_iter=params.lasso.max_iter)
    if name == "lasso_cv":
        p = params.lasso_cv
        return LassoCV(alphas=p.n_alphas, cv=p.inner_folds, max_iter=p.max_iter)
    if name == "elastic_net":
        p = params.elastic_net
        return ElasticNet(alpha=p.alpha, l1_ratio=p.l1_ratio, max_iter=p.max_iter)
    if name == "elastic_net_cv":
        p = params.elastic_net_cv
        return ElasticNetCV(l1_ratio=list(p.l1_ratios), alphas=p.n_alphas, cv=p.inner_folds, max_iter=p.max_iter)
    if name == "kernel_ridge":
        p = params.kernel_ridge
        return KernelRidge(alpha=p.alpha, kernel=p.kernel, degree=p.degree, coef0=p.coef0, gamma=p.gamma)
    if name == "svr":
        return SVR(C=params.svr.C, epsilon=params.svr.epsilon, gamma=params.svr.gamma)
    if name == "hist_gradient_boosting":
        p = params.hist_gradient_boosting
        # No early stopping: it would hold out rows of its own, at random, inside each fold.
        return HistGradientBoostingRegressor(
            learning_rate=p.learning_rate, max_iter=p.max_iter, max_leaf_nodes=p.max_leaf_nodes,
            min_samples_leaf=p.min_samples_leaf, l2_regularization=p.l2_regularization,
            early_stopping=False, random_state=seed)
    raise ValueError(f"unknown sklearn.estimator '{name}'")


class SklearnRegressor:
    """A scikit-learn estimator of log price."""

    kind = "sklearn"

    def __init__(self, estimator: RegressorMixin, name: str) -> None:
        self.estimator, self.name = estimator, name

    def fit(self, x: np.ndarray, y: np.ndarray, categorical: np.ndarray) -> SklearnRegressor:
        if isinstance(self.estimator, HistGradientBoostingRegressor):
            self.estimator.set_params(categorical_features=categorical if categorical.any() else None)
        self.estimator.fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict(x), dtype=np.float64)

    def save(self, directory: Path) -> dict[str, str]:
        dump_skops(self.estimator, directory / SKLEARN_FILE)
        return {"kind": self.kind, "estimator": self.name, "file": SKLEARN_FILE}

    @classmethod
    def load(cls, directory: Path, name: str) -> SklearnRegressor:
        """Load what `save` wrote, trusting scikit-learn and NumPy types only.

        `functools.partial` is allowed because skops checks the function it wraps as a type of
        its own (HistGradientBoosting keeps a partial of scikit-learn's `check_array`).
        """
        import skops.io as sio

        path = directory / SKLEARN_FILE
        untrusted = sio.get_untrusted_types(file=path)
        refused = sorted(t for t in untrusted if not t.startswith(("sklearn.", "numpy.")) and t != "functools.partial")
        if refused:
            raise ValueError(f"{path} holds types outside scikit-learn/numpy: {refused}")
        return cls(sio.load(path, trusted=untrusted), name)


class LightGBMRegressor:
    """A LightGBM booster of log price, trained with `lightgbm.train` on the fold's rows.

    Deterministic (`deterministic`, `force_row_wise`, seeds from `base.seed`) on the thread
    count the stage set from `runtime.threads`.
    """

    kind = name = "lightgbm"

    def __init__(self, params: LightGBMParams | None, seed: int, booster: object | None = None) -> None:
        self.params, self.seed, self.booster = params, seed, booster

    def booster_params(self) -> dict[str, object]:
        p = self.params
        return {"objective": "regression", "learning_rate": p.learning_rate, "num_leaves": p.num_leaves,
                "max_depth": p.max_depth, "min_data_in_leaf": p.min_data_in_leaf,
                "feature_fraction": p.feature_fraction, "bagging_fraction": p.bagging_fraction,
                "bagging_freq": p.bagging_freq, "lambda_l1": p.lambda_l1, "lambda_l2": p.lambda_l2,
                "min_gain_to_split": p.min_gain_to_split, "max_bin": p.max_bin, "cat_smooth": p.cat_smooth,
                "min_data_per_group": p.min_data_per_group, "seed": self.seed, "deterministic": True,
                "force_row_wise": True, "num_threads": current_threads(), "verbosity": -1}

    def fit(self, x: np.ndarray, y: np.ndarray, categorical: np.ndarray) -> LightGBMRegressor:
        import lightgbm

        data = lightgbm.Dataset(x, y, categorical_feature=[int(i) for i in np.flatnonzero(categorical)],
                                params={"max_bin": self.params.max_bin, "verbosity": -1})
        self.booster = lightgbm.train(self.booster_params(), data, num_boost_round=self.params.num_boost_round)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(x, num_threads=current_threads()), dtype=np.float64)

    def save(self, directory: Path) -> dict[str, str]:
        """LightGBM's text model, without the thread count it was trained with (a runtime
        setting that changes no tree), so the same fit gives the same bytes."""
        text = re.sub(r"^\[num_threads: \d+\]$", "[num_threads: 0]", self.booster.model_to_string(),
                      flags=re.MULTILINE)
        write_text(text, directory / LIGHTGBM_FILE)
        return {"kind": self.kind, "estimator": self.name, "file": LIGHTGBM_FILE}

    @classmethod
    def load(cls, directory: Path) -> LightGBMRegressor:
        import lightgbm

        return cls(None, 0, lightgbm.Booster(model_file=str(directory / LIGHTGBM_FILE)))

