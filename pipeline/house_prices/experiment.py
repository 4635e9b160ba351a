"""One experiment = the params sections that define a CV score, parsed and run together.

Stages, benchmarks and `kpipe tune` all go through here, so "the CV score of these params"
means the same computation everywhere. Overrides use DVC's dotted keys (`train.lr`), like
`dvc exp run -S train.lr=0.01`. An ensemble (`model.kind: ensemble`) is a list of such
overrides, one per member; members share the ensemble's folds (all repeats of them) and are
blended in log space (`model.blend`: equal weights, or stacked weights learned from their
out-of-fold predictions, `blend.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.common.params import BaseParams, ParamsError, RuntimeParams, StageParams, parse_section, with_overrides
from pipeline.house_prices.blend import BLENDS, blend_weights, nested_blend
from pipeline.house_prices.cv import (
    CVResult,
    FoldFeatureCache,
    cross_validate,
    cross_validate_regressor,
    repeat_of,
    score_oof,
    split_folds,
)
from pipeline.house_prices.estimators import ESTIMATOR_KINDS, Regressor, make_regressor, takes_native_categories
from pipeline.house_prices.features import training_rows
from pipeline.house_prices.final import FinalModel, fit_final, fit_final_regressor
from pipeline.house_prices.params import (
    CVParams,
    FeatureParams,
    LightGBMParams,
    ModelParams,
    SklearnParams,
    TrainParams,
)
from pipeline.house_prices.training import EpochCallback, History, chain_epochs

# The params sections that define a CV score: what the `cv` and `train` stages declare.
SECTIONS: dict[str, type] = {"base": BaseParams, "features": FeatureParams, "model": ModelParams,
                             "train": TrainParams, "sklearn": SklearnParams, "lightgbm": LightGBMParams,
                             "cv": CVParams}


@dataclass(frozen=True)
class ExperimentParams:
    base: BaseParams
    features: FeatureParams
    model: ModelParams
    train: TrainParams
    sklearn: SklearnParams
    lightgbm: LightGBMParams
    cv: CVParams
    members: tuple[ExperimentParams, ...] = ()  # ensemble only, parsed from model.members

    def regressor(self) -> Regressor:
        """A fresh scikit-learn or LightGBM regressor of these params (those kinds only)."""
        return make_regressor(self.model.kind, self.sklearn, self.lightgbm, self.base.seed)


def parse_experiment(raw: dict[str, Any]) -> ExperimentParams:
    """The experiment sections of a params mapping (other sections are ignored)."""
    missing = [s for s in SECTIONS if s not in raw]
    if missing:
        raise ParamsError(f"params lack section(s) {', '.join(missing)}")
    params = ExperimentParams(**{name: parse_section(raw[name], cls, name) for name, cls in SECTIONS.items()})
    if params.features.encoding == "native" and not takes_native_categories(params.model.kind, params.sklearn):
        raise ParamsError(f"features.encoding: native (category codes) is for tree models (model.kind lightgbm, "
                          f"or sklearn with sklearn.estimator hist_gradient_boosting), not model.kind "
                          f"{params.model.kind}" + (f" with {params.sklearn.estimator}"
                                                    if params.model.kind == "sklearn" else ""))
    if params.model.kind != "ensemble":
        return params
    if not params.model.members:
        raise ParamsError("model.kind is ensemble but model.members is empty")
    members = []
    for i, overrides in enumerate(params.model.members):
        if any(key.startswith("cv.") for key in overrides):
            raise ParamsError(f"model.members[{i}]: members share the ensemble's folds; remove cv.* keys")
        member_raw = with_overrides(raw, {"model.members": [], **overrides})
        if member_raw["model"]["kind"] == "ensemble":
            raise ParamsError(f"model.members[{i}]: set model.kind to linear, mlp, sklearn or lightgbm")
        try:
            members.append(parse_experiment(member_raw))
        except ParamsError as exc:
            raise ParamsError(f"model.members[{i}]: {exc}") from exc
    return dataclasses.replace(params, members=tuple(members))


def read_experiment(params: StageParams) -> tuple[ExperimentParams, dict[str, Any], RuntimeParams]:
    """What the `cv` and `train` stages read: the experiment, its raw sections (for MLflow and
    the saved model) and the runtime settings (which are not recorded as read)."""
    raw = params.sections(SECTIONS)
    return parse_experiment(raw), raw, params.runtime()


@dataclass
class EnsembleCV(CVResult):
    """The blend's CV result, plus each member's own, the weights the shipped model uses (fit
    on every out-of-fold row) and the nested fold scores of every blend method (`BLENDS`)."""

    members: list[CVResult] = dataclasses.field(default_factory=list)
    weights: np.ndarray = dataclasses.field(default_factory=lambda: np.ones(0))
    blends: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def experiment_folds(params: ExperimentParams, n_rows: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds of `params` (`cv.folds`, `cv.shuffle`, `cv.repeats`, `base.seed`) over `n_rows` rows."""
    return split_folds(n_rows, params.cv.folds, params.base.seed, params.cv.shuffle, params.cv.repeats)


MemberEpochs = Callable[[int], EpochCallback]


def run_cv(params: ExperimentParams, train: pd.DataFrame, test: pd.DataFrame | None,
           on_epoch: EpochCallback | None = None, cache: FoldFeatureCache | None = None,
           device: str = "auto", member_epochs: MemberEpochs | None = None) -> CVResult:
    """The CV score of `params` on validated frames.

    For an ensemble, each member is cross-validated on the ensemble's folds; the blend's
    out-of-fold prediction is a weighted geometric mean of the members' (a weighted mean of log
    prices): equal weights (`mean`), or stacked weights fit, for each fold, on the other folds'
    out-of-fold predictions (`stack`). Its fold scores are computed from that blend, exactly
    as for a single model; every blend method is scored the same way for comparison.
    `on_epoch` sees a single model's epochs (tuning prunes on it); `member_epochs(i)` gives
    the callback for member i's epochs (a single model is member 0), e.g. to log them live.
    """
    splits = experiment_folds(params, len(train))
    if params.model.kind != "ensemble":
        on_epochs = chain_epochs(on_epoch, _member(member_epochs, 0))
        return _member_cv(params, train, test, splits, on_epochs, cache, device)
    results = [_member_cv(m, train, test, splits, _member(member_epochs, i), cache, device)
               for i, m in enumerate(params.members)]
    member_oof = np.stack([r.oof_repeats for r in results])
    prices = results[0].prices
    repeat = repeat_of(splits, len(train))
    fit_mask = np.zeros(len(train), dtype=bool)
    fit_mask[training_rows(train, np.arange(len(train)), params.features)] = True
    nested = {method: nested_blend(method, member_oof, prices, splits, repeat, fit_mask) for method in BLENDS}
    blend = score_oof(nested[params.model.blend][0], prices, splits,
                      _mean_history([r.history for r in results]))
    return EnsembleCV(**{f.name: getattr(blend, f.name) for f in dataclasses.fields(CVResult)}, members=results,
                      weights=blend_weights(params.model.blend, member_oof, prices, np.flatnonzero(fit_mask)),
                      blends={method: scores for method, (_, scores) in nested.items()})


def _member_cv(params: ExperimentParams, train: pd.DataFrame, test: pd.DataFrame | None,
               splits: list[tuple[np.ndarray, np.ndarray]], on_epoch: EpochCallback | None,
               cache: FoldFeatureCache | None, device: str) -> CVResult:
    if params.model.kind in ESTIMATOR_KINDS:
        return cross_validate_regressor(train, test, params.features, params.regressor, splits, cache=cache)
    return cross_validate(train, test, params.features, params.model, params.train, splits,
                          params.base.seed, on_epoch=on_epoch, cache=cache, device=device)


def _mean_history(histories: list[History]) -> History:
    """Members' curves averaged epoch by epoch (a member that stopped early keeps its last value).

    Members without epochs (scikit-learn, LightGBM: one row) join only when no member has epochs.
    """
    histories = [h for h in histories if h.train.shape[0] > 1] or histories
    epochs = max(h.train.shape[0] for h in histories)

    def pad(curve: np.ndarray) -> np.ndarray:
        return np.vstack([curve, np.repeat(curve[-1:], epochs - len(curve), axis=0)])

    return History(np.mean([pad(h.train) for h in histories], axis=0),
                   np.mean([pad(h.valid) for h in histories], axis=0))


def model_names(params: ExperimentParams) -> list[str]:
    """What each trained model is called in curves and runs: its kind (`mlp`), or for an
    ensemble's members `member0-mlp`, `member1-linear`, ..."""
    if not params.members:
        return [params.model.kind]
    return [f"member{i}-{m.model.kind}" for i, m in enumerate(params.members)]


def trained_histories(params: ExperimentParams, histories: list[History]) -> dict[str, History]:
    """The per-epoch curves of the members trained epoch by epoch (torch), by name: a
    scikit-learn or LightGBM member has one score, not a curve, so it has no line."""
    members = list(params.members) or [params]
    return {name: history for name, member, history in zip(model_names(params), members, histories, strict=True)
            if member.model.kind not in ESTIMATOR_KINDS}


def member_histories(params: ExperimentParams, result: CVResult) -> dict[str, History]:
    """Each torch model's own per-epoch CV curves, by name (an ensemble has no blended curve)."""
    results = result.members if isinstance(result, EnsembleCV) else [result]
    return trained_histories(params, [r.history for r in results])


def describe(params: ExperimentParams) -> str:
    """`mlp`, or `ensemble of 5 (blended out-of-fold predictions)`: what a score belongs to."""
    if not params.members:
        return params.model.kind
    return f"ensemble of {len(params.members)} (blended out-of-fold predictions)"


def final_epochs(result: CVResult) -> list[int]:
    """Epochs for the final fit, per member: the mean best epoch over the folds."""
    results = result.members if isinstance(result, EnsembleCV) else [result]
    return [int(round(float(np.mean(r.history.best_epochs)))) for r in results]


def fit_experiment(params: ExperimentParams, train: pd.DataFrame, test: pd.DataFrame | None,
                   epochs: list[int] | None = None, weights: list[float] | None = None,
                   device: str = "auto", member_epochs: MemberEpochs | None = None) -> list[FinalModel]:
    """Final fit of every member (one for a single model) on all training rows.

    `epochs` (from `final_epochs` of the CV run) replaces each torch member's `train.epochs`
    when early stopping chose them; there is no validation set left to stop on. `weights`
    (the CV run's blend weights, fit on every out-of-fold row) go with the members for
    `predict_blend`; without them the members are weighted equally. `member_epochs(i)` gives
    the callback for member i's epochs.
    """
    members = list(params.members) or [params]
    for name, given in (("final epoch counts", epochs), ("blend weights", weights)):
        if given is not None and len(given) != len(members):
            raise ParamsError(f"{len(given)} {name} for {len(members)} members: rerun the cv stage")
    weights = weights if weights is not None else [1.0 / len(members)] * len(members)
    fitted = []
    for i, m in enumerate(members):
        if m.model.kind in ESTIMATOR_KINDS:
            final = fit_final_regressor(train, test, m.features, m.regressor())
        else:
            train_params = m.train if epochs is None else dataclasses.replace(m.train, epochs=epochs[i], patience=0)
            final = fit_final(train, test, m.features, m.model, train_params, m.base.seed, device=device,
                              on_epoch=_member(member_epochs, i))
        fitted.append(dataclasses.replace(final, weight=float(weights[i])))
    return fitted


def _member(member_epochs: MemberEpochs | None, member: int) -> EpochCallback | None:
    return member_epochs(member) if member_epochs is not None else None
