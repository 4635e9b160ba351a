"""params.yaml of a generic competition project: its sections, their defaults, the members.

`DEFAULTS` is what `kpipe new` writes. A member is `kind` plus DVC-style dotted overrides of
the shared sections (`{kind: mlp, train.hidden: [256, 128]}`), the same convention as House
Prices' `model.members`: one member differs from the shared settings only where it says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.common.params import (
    RUNTIME,
    BaseParams,
    ParamsError,
    RuntimeParams,
    at_least,
    parse_section,
    positive,
    ranged,
    with_overrides,
)
from pipeline.tabular.blend import BLEND_KINDS
from pipeline.tabular.catboost_member import CatBoostParams


@dataclass(frozen=True)
class TabularFeatureParams:
    """`features`: how `pipeline.tabular.features` gives each column its role and encoding."""

    max_onehot: int = positive()  # a text column with at most this many values is one-hot encoded
    text_unique_ratio: float = ranged(0, 1)  # above this share of distinct values, text is dropped
    log_skewed: bool
    skew_threshold: float = ranged(0)
    min_frequency: int = positive()  # rarer categories share the `infrequent` column


@dataclass(frozen=True)
class TabularDataParams:
    """`data`: where fetch finds Kaggle's files. `local`: data/external (what `kpipe new` copied
    there); `kaggle`: downloaded with the Kaggle client (credentials needed)."""

    source: Literal["local", "kaggle"]
    max_file_mb: float = positive()


@dataclass(frozen=True)
class TabularCVParams:
    """`cv`: k folds (stratified by class for classification), shuffled with `base.seed`."""

    folds: int = at_least(2)
    shuffle: bool


@dataclass(frozen=True)
class TorchParams:
    """`train`: the torch members (linear/logistic/softmax regression and MLPs), Adam with weight
    decay on minibatches. An epoch has at most `max_batches` batches (the batch grows on large
    tables): the number of optimizer steps stays bounded, though each step costs more rows."""

    epochs: int = positive()
    lr: float = positive()
    weight_decay: float = ranged(0)
    batch_size: int = positive()
    max_batches: int = positive()
    hidden: tuple[int, ...] = positive()
    dropout: float = ranged(0, 1, high_open=True)


@dataclass(frozen=True)
class LinearSklearnParams:
    """`sklearn`: ridge regression (`alpha`) or logistic regression (`C`), scikit-learn's solvers."""

    alpha: float = positive()
    C: float = positive()
    max_iter: int = positive()


@dataclass(frozen=True)
class TabularLightGBMParams:
    """`lightgbm`: gradient-boosted trees on raw values and category codes."""

    num_boost_round: int = positive()
    learning_rate: float = positive()
    num_leaves: int = at_least(2)
    min_data_in_leaf: int = at_least(1)
    feature_fraction: float = ranged(0, 1, low_open=True)
    lambda_l2: float = ranged(0)


@dataclass(frozen=True)
class TabularResidualsParams:
    """`residuals`: how many worst rows to list; breakdowns by columns with at most `max_values` values."""

    worst: int = positive()
    max_values: int = at_least(2)


@dataclass(frozen=True)
class ModelSection:
    """`model`: the members and how their predictions are blended."""

    members: tuple[dict, ...]
    # how the members' weights are chosen on their out-of-fold links (pipeline.tabular.blend):
    # mean = equal weights; greedy = Caruana's forward selection with replacement
    blend: Literal[BLEND_KINDS]


@dataclass(frozen=True)
class TabularTuneParams:
    """`tune`: `kpipe tune`'s study (pipeline.tuning.tabular); no stage reads it."""

    n_trials: int = at_least(1)
    timeout_s: float = at_least(0)
    sampler_seed: int = at_least(0)
    storage: str  # "" = optuna.journal at the project root
    study_name: str  # "" = the competition's slug
    space: dict[str, Any]


SECTIONS: dict[str, type] = {"base": BaseParams, "features": TabularFeatureParams, "cv": TabularCVParams,
                             "train": TorchParams, "sklearn": LinearSklearnParams,
                             "lightgbm": TabularLightGBMParams, "catboost": CatBoostParams, "model": ModelSection}
# Every section of the file (`DEFAULTS`' own): what every kpipe command checks before it starts.
FILE_SECTIONS: dict[str, type] = {**SECTIONS, "data": TabularDataParams, "residuals": TabularResidualsParams,
                                  "tune": TabularTuneParams, RUNTIME: RuntimeParams}

DEFAULTS: dict[str, Any] = {
    "base": {"seed": 42},
    "data": {"source": "local", "max_file_mb": 1024},
    "features": {"max_onehot": 30, "text_unique_ratio": 0.5, "log_skewed": True, "skew_threshold": 0.75,
                 "min_frequency": 5},
    "cv": {"folds": 5, "shuffle": True},
    "train": {"epochs": 30, "lr": 0.01, "weight_decay": 0.0001, "batch_size": 256, "max_batches": 200,
              "hidden": [128, 64], "dropout": 0.1},
    "sklearn": {"alpha": 1.0, "C": 1.0, "max_iter": 1000},
    "lightgbm": {"num_boost_round": 400, "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 20,
                 "feature_fraction": 0.8, "lambda_l2": 1.0},
    # `{kind: catboost}` members (not among the defaults: slower than LightGBM on large tables)
    "catboost": {"iterations": 500, "learning_rate": 0.05, "depth": 6, "l2_leaf_reg": 3.0, "random_strength": 1.0,
                 "bagging_temperature": 1.0, "border_count": 254, "one_hot_max_size": 10, "rsm": 1.0,
                 "boosting_type": "Plain"},
    "model": {"blend": "greedy", "members": [{"kind": "lightgbm"}, {"kind": "sklearn"}, {"kind": "mlp"}]},
    "residuals": {"worst": 20, "max_values": 30},
    # `kpipe tune`: not read by any stage (a study writes params.tuned.yaml, never a result).
    "tune": {"n_trials": 20, "timeout_s": 0, "sampler_seed": 0, "storage": "", "study_name": "",
             "space": {"lightgbm.learning_rate": {"type": "float", "low": 0.01, "high": 0.2, "log": True},
                       "lightgbm.num_leaves": {"type": "int", "low": 7, "high": 127, "log": True},
                       "train.lr": {"type": "float", "low": 0.001, "high": 0.05, "log": True},
                       "train.weight_decay": {"type": "float", "low": 1e-6, "high": 0.01, "log": True},
                       "train.hidden": {"type": "categorical", "choices": [[64], [128, 64], [256, 128]]}}},
    "runtime": {"device": "auto", "threads": 0, "fashion_max_train_rows": 0, "fashion_max_test_rows": 0,
                "fashion_prediction_images": 0},
}


@dataclass(frozen=True)
class MemberParams:
    """One member: its family and every section it may read, with its own overrides applied."""

    kind: str
    seed: int
    features: TabularFeatureParams
    train: TorchParams
    sklearn: LinearSklearnParams
    lightgbm: TabularLightGBMParams
    catboost: CatBoostParams

    def ingredients(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TabularExperiment:
    base: BaseParams
    cv: TabularCVParams
    model: ModelSection
    members: tuple[MemberParams, ...]


def parse_tabular(raw: dict[str, Any], kinds: tuple[str, ...]) -> TabularExperiment:
    """The experiment of a params mapping; each member's kind must be one of `kinds`."""
    missing = [s for s in SECTIONS if s not in raw]
    if missing:
        raise ParamsError(f"params lack section(s) {', '.join(missing)}")
    sections = {name: parse_section(raw[name], cls, name) for name, cls in SECTIONS.items()}
    model: ModelSection = sections["model"]
    if not model.members:
        raise ParamsError("model.members: give at least one member, e.g. {kind: lightgbm}")
    members = []
    for i, spec in enumerate(model.members):
        where = f"model.members[{i}]"
        if not isinstance(spec, dict) or spec.get("kind") not in kinds:
            raise ParamsError(f"{where}: kind must be one of {', '.join(kinds)}, got {spec!r}")
        overrides = {k: v for k, v in spec.items() if k != "kind"}
        try:
            own = with_overrides(raw, overrides)
        except ParamsError as exc:
            raise ParamsError(f"{where}: {exc}") from exc
        members.append(MemberParams(
            kind=spec["kind"], seed=parse_section(own["base"], BaseParams, f"{where}.base").seed,
            **{name: parse_section(own[name], SECTIONS[name], f"{where}.{name}")
               for name in ("features", "train", "sklearn", "lightgbm", "catboost")}))
    return TabularExperiment(base=sections["base"], cv=sections["cv"], model=model, members=tuple(members))
