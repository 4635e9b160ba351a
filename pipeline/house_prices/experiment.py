"""One experiment = the params sections that define a CV score, parsed and run together.

Stages, benchmarks and `kpipe tune` all go through here, so "the CV score of these params"
means the same computation everywhere. Overrides use DVC's dotted keys (`train.lr`), like
`dvc exp run -S train.lr=0.01`. An ensemble (`model.kind: ensemble`) is a list of such
overrides, one per member; members share the ensemble's folds and are averaged in log space.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.common.params import BaseParams, ParamsError, RuntimeParams, StageParams, parse_section, with_overrides
from pipeline.house_prices.cv import CVResult, FoldFeatureCache, cross_validate, score_oof, split_folds
from pipeline.house_prices.final import FinalModel, fit_final
from pipeline.house_prices.params import CVParams, FeatureParams, ModelParams, TrainParams
from pipeline.house_prices.training import EpochCallback, History

# The params sections that define a CV score: what the `cv` and `train` stages declare.
SECTIONS: dict[str, type] = {"base": BaseParams, "features": FeatureParams, "model": ModelParams,
                             "train": TrainParams, "cv": CVParams}


@dataclass(frozen=True)
class ExperimentParams:
    base: BaseParams
    features: FeatureParams
    model: ModelParams
    train: TrainParams
    cv: CVParams
    members: tuple[ExperimentParams, ...] = ()  # ensemble only, parsed from model.members


def parse_experiment(raw: dict[str, Any]) -> ExperimentParams:
    """The experiment sections of a params mapping (other sections are ignored)."""
    missing = [s for s in SECTIONS if s not in raw]
    if missing:
        raise ParamsError(f"params lack section(s) {', '.join(missing)}")
    params = ExperimentParams(**{name: parse_section(raw[name], cls, name) for name, cls in SECTIONS.items()})
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
            raise ParamsError(f"model.members[{i}]: set model.kind to linear or mlp")
        members.append(parse_experiment(member_raw))
    return dataclasses.replace(params, members=tuple(members))


def read_experiment(params: StageParams) -> tuple[ExperimentParams, dict[str, Any], RuntimeParams]:
    """What the `cv` and `train` stages read: the experiment, its raw sections (for MLflow and
    the saved model) and the runtime settings (which are not recorded as read)."""
    raw = params.sections(SECTIONS)
    return parse_experiment(raw), raw, params.runtime()


@dataclass
class EnsembleCV(CVResult):
    """The blend's CV result, plus each member's own."""

    members: list[CVResult] = dataclasses.field(default_factory=list)


def experiment_folds(params: ExperimentParams, n_rows: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds of `params` (`cv.folds`, `cv.shuffle`, `base.seed`) over `n_rows` rows."""
    return split_folds(n_rows, params.cv.folds, params.base.seed, params.cv.shuffle)


MemberEpochs = Callable[[int], EpochCallback]


def run_cv(params: ExperimentParams, train: pd.DataFrame, test: pd.DataFrame | None,
           on_epoch: EpochCallback | None = None, cache: FoldFeatureCache | None = None,
           device: str = "auto", member_epochs: MemberEpochs | None = None) -> CVResult:
    """The CV score of `params` on validated frames.

    For an ensemble, each member is cross-validated on the ensemble's folds; the blend's
    out-of-fold prediction is the geometric mean of the members' (mean of log prices), and
    its fold scores are computed from that blend, exactly as for a single model.
    `on_epoch` sees a single model's epochs (tuning prunes on it); `member_epochs(i)` gives
    the callback for member i's epochs (a single model is member 0), e.g. to log them live.
    """
    splits = experiment_folds(params, len(train))
    if params.model.kind != "ensemble":
        return cross_validate(train, test, params.features, params.model, params.train, splits,
                              params.base.seed, on_epoch=_both(on_epoch, member_epochs, 0), cache=cache,
                              device=device)
    results = [cross_validate(train, test, m.features, m.model, m.train, splits, m.base.seed,
                              on_epoch=_both(None, member_epochs, i), cache=cache, device=device)
               for i, m in enumerate(params.members)]
    oof = np.exp(np.mean([np.log(r.oof_prices) for r in results], axis=0))
    blend = score_oof(oof, results[0].prices, splits, _mean_history([r.history for r in results]))
    return EnsembleCV(**{f.name: getattr(blend, f.name) for f in dataclasses.fields(CVResult)}, members=results)


def _mean_history(histories: list[History]) -> History:
    """Members' curves averaged epoch by epoch (a member that stopped early keeps its last value)."""
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


def member_histories(params: ExperimentParams, result: CVResult) -> dict[str, History]:
    """Each trained model's own per-epoch curves, by name (an ensemble has no blended curve)."""
    results = result.members if isinstance(result, EnsembleCV) else [result]
    return dict(zip(model_names(params), (r.history for r in results), strict=True))


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
                   epochs: list[int] | None = None, device: str = "auto",
                   member_epochs: MemberEpochs | None = None) -> list[FinalModel]:
    """Final fit of every member (one for a single model) on all training rows.

    `epochs` (from `final_epochs` of the CV run) replaces each member's `train.epochs` when
    early stopping chose them; there is no validation set left to stop on. `member_epochs(i)`
    gives the callback for member i's epochs.
    """
    members = list(params.members) or [params]
    if epochs is not None and len(epochs) != len(members):
        raise ParamsError(f"{len(epochs)} final epoch counts for {len(members)} members: rerun the cv stage")
    fitted = []
    for i, m in enumerate(members):
        train_params = m.train if epochs is None else dataclasses.replace(m.train, epochs=epochs[i], patience=0)
        fitted.append(fit_final(train, test, m.features, m.model, train_params, m.base.seed, device=device,
                                on_epoch=_both(None, member_epochs, i)))
    return fitted


def _both(on_epoch: EpochCallback | None, member_epochs: MemberEpochs | None, member: int) -> EpochCallback | None:
    """One callback calling `on_epoch` and member `member`'s callback (either may be absent)."""
    callbacks = [c for c in (on_epoch, member_epochs(member) if member_epochs else None) if c is not None]
    if len(callbacks) < 2:
        return callbacks[0] if callbacks else None

    def each_epoch(epoch: int, train: np.ndarray, valid: np.ndarray) -> None:
        for callback in callbacks:
            callback(epoch, train, valid)

    return each_epoch
