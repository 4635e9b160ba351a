"""The House Prices sections of params.yaml: data, features, model, train, sklearn, lightgbm, cv,
residuals.

No field has a default: params.yaml is the one home of every value (code that builds params by
hand starts from the parsed file and replaces what it changes). Ranges are checked when the
file is parsed, so `train.lr: -0.01` is a message naming the key, not a traceback mid-training.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pipeline.common.params import ParamsError, at_least, positive, ranged


@dataclasses.dataclass(frozen=True)
class DataParams:
    source: Literal["bundled", "d2l", "kaggle", "local"]
    base_url: str
    local_dir: str
    verify: bool
    max_file_mb: float = positive()  # cap on each CSV (download, zip member, copy, read)


@dataclasses.dataclass(frozen=True)
class FeatureParams:
    fit_on: Literal["train", "train+test"]
    log_skewed: bool
    skew_threshold: float = at_least(0)
    ordinal: Literal["none", "add", "replace"]
    derived: bool
    drop_outliers: bool
    clip: bool
    neighborhood_cap: bool  # cap numeric features at their neighbourhood's max
    neighborhood_min_rows: int = at_least(1)  # ... in neighbourhoods with at least this many fit rows
    # cap each predicted price at the highest price among the fit rows' houses of its
    # Neighborhood (the same neighbourhoods as neighborhood_cap)
    price_cap: bool
    # onehot: one column per category (linear models, MLPs); native: one integer code per
    # categorical column, which tree models split on directly (LightGBM, HistGradientBoosting)
    encoding: Literal["onehot", "native"]


@dataclasses.dataclass(frozen=True)
class ModelParams:
    # linear, mlp: torch (the `train` section); sklearn: the `sklearn` section's estimator;
    # lightgbm, catboost: their sections; ensemble: `members`, blended by `blend`
    # (families.FAMILIES is the registry of the model families)
    kind: Literal["linear", "mlp", "sklearn", "lightgbm", "catboost", "ensemble"]
    hidden: tuple[int, ...] = at_least(1)
    dropout: float = ranged(0, 1, high_open=True)
    linear_skip: bool
    # ensemble only: each member is a set of dotted overrides of these params (e.g.
    # {model.kind: mlp, base.seed: 1}); predictions are blended in log space.
    members: tuple[dict[str, Any], ...]
    # ensemble only: how the weights are chosen on the members' out-of-fold log predictions,
    # one of pipeline.tabular.blend.BLEND_KINDS (checked by experiment.parse_experiment, so that
    # the stages that read no blend import none): mean = equal weights; greedy = Caruana's
    # forward selection with replacement on them
    blend: str


@dataclasses.dataclass(frozen=True)
class TrainParams:
    target: Literal["log", "raw"]
    loss: Literal["mse", "huber"]
    huber_delta: float = positive()
    epochs: int = at_least(1)
    batch_size: int = at_least(1)
    lr: float = positive()
    weight_decay: float = at_least(0)
    schedule: Literal["constant", "cosine"]
    # Early stopping on the fold's validation score (0 = off): stop once no fold improved
    # for this many epochs, and restore each fold's best epoch.
    patience: int = at_least(0)


@dataclasses.dataclass(frozen=True)
class RidgeParams:
    alpha: float = at_least(0)


@dataclasses.dataclass(frozen=True)
class RidgeCVParams:
    alphas: tuple[float, ...] = positive()  # chosen among by leave-one-out on the fit rows


@dataclasses.dataclass(frozen=True)
class LassoParams:
    alpha: float = positive()
    max_iter: int = at_least(1)


@dataclasses.dataclass(frozen=True)
class LassoCVParams:
    n_alphas: int = at_least(2)  # alphas on the regularization path, chosen by inner k-fold
    inner_folds: int = at_least(2)
    max_iter: int = at_least(1)


@dataclasses.dataclass(frozen=True)
class ElasticNetParams:
    alpha: float = positive()
    l1_ratio: float = ranged(0, 1)
    max_iter: int = at_least(1)


@dataclasses.dataclass(frozen=True)
class ElasticNetCVParams:
    l1_ratios: tuple[float, ...] = ranged(0, 1, low_open=True)
    n_alphas: int = at_least(2)
    inner_folds: int = at_least(2)
    max_iter: int = at_least(1)


@dataclasses.dataclass(frozen=True)
class KernelRidgeParams:
    alpha: float = positive()
    kernel: Literal["polynomial", "rbf", "laplacian"]
    degree: int = at_least(1)  # polynomial only
    coef0: float  # polynomial only
    gamma: float = positive()  # kernel width (polynomial: the inputs' scale)


@dataclasses.dataclass(frozen=True)
class SVRParams:
    C: float = positive()
    epsilon: float = at_least(0)
    gamma: float = positive()  # RBF kernel width


@dataclasses.dataclass(frozen=True)
class HistGradientBoostingParams:
    learning_rate: float = positive()
    max_iter: int = at_least(1)
    max_leaf_nodes: int = at_least(2)
    min_samples_leaf: int = at_least(1)
    l2_regularization: float = at_least(0)


@dataclasses.dataclass(frozen=True)
class SklearnParams:
    """`sklearn`: a scikit-learn regressor of log price (`model.kind: sklearn`); one
    sub-section per estimator, so members can differ by dotted keys (`sklearn.lasso.alpha`)."""

    estimator: Literal["ridge", "ridge_cv", "lasso", "lasso_cv", "elastic_net", "elastic_net_cv",
                       "kernel_ridge", "svr", "hist_gradient_boosting"]
    ridge: RidgeParams
    ridge_cv: RidgeCVParams
    lasso: LassoParams
    lasso_cv: LassoCVParams
    elastic_net: ElasticNetParams
    elastic_net_cv: ElasticNetCVParams
    kernel_ridge: KernelRidgeParams
    svr: SVRParams
    hist_gradient_boosting: HistGradientBoostingParams


@dataclasses.dataclass(frozen=True)
class LightGBMParams:
    """`lightgbm`: gradient-boosted trees on log price (`model.kind: lightgbm`), LightGBM's names."""

    num_boost_round: int = at_least(1)
    learning_rate: float = positive()
    num_leaves: int = at_least(2)
    max_depth: int = at_least(-1)  # -1: no limit
    min_data_in_leaf: int = at_least(1)
    feature_fraction: float = ranged(0, 1, low_open=True)  # columns drawn per tree
    bagging_fraction: float = ranged(0, 1, low_open=True)  # rows drawn ...
    bagging_freq: int = at_least(0)  # ... every this many trees (0: no row sampling)
    lambda_l1: float = at_least(0)
    lambda_l2: float = at_least(0)
    min_gain_to_split: float = at_least(0)
    max_bin: int = at_least(2)
    cat_smooth: float = at_least(0)  # native categoricals: smoothing of category means
    min_data_per_group: int = at_least(1)  # native categoricals: rows a category needs


@dataclasses.dataclass(frozen=True)
class CVParams:
    folds: int = at_least(2)
    # false: the book's contiguous folds (rows in file order), the same whatever the seed
    shuffle: bool
    # k-fold this many times, each with its own shuffle (scikit-learn's RepeatedKFold from
    # base.seed; the first repeat is the plain shuffled k-fold); scores: mean and std over all
    # folds of all repeats. More than 1 needs shuffle: true.
    repeats: int = at_least(1)

    def check(self) -> None:
        if self.repeats > 1 and not self.shuffle:
            raise ParamsError(f"cv.repeats={self.repeats} needs cv.shuffle: true (contiguous folds are "
                              "the same on every repeat)")


@dataclasses.dataclass(frozen=True)
class ResidualsParams:
    """`residuals`: the error report of the out-of-fold predictions (`dvc repro residuals`)."""

    worst: int = at_least(1)  # houses in the worst-houses table
    by: tuple[str, ...]  # training columns to break the error down by (one CSV each)
    price_bins: int = at_least(2)  # ... and by price quantile bins (10: deciles)
    show: tuple[str, ...]  # training columns shown beside each of the worst houses
