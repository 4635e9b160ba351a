"""One experiment = the params sections that define a CV score, parsed and run together.

Stages, benchmarks and `kpipe tune` all go through here, so "the CV score of these params"
means the same computation everywhere. Overrides use DVC's dotted keys (`train.lr`), like
`dvc exp run -S train.lr=0.01`. An ensemble (`model.kind: ensemble`) is a list of such
overrides, one per member; members share the ensemble's folds (all repeats of them) and are
blended in log space (`model.blend`: equal weights, or weights chosen on their out-of-fold
predictions, `pipeline.tabular.blend`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.common.params import BaseParams, ParamsError, RuntimeParams, StageParams, parse_section
from pipeline.common.paths import ProjectPaths
from pipeline.common.provenance import git_commit
from pipeline.common.runtime import resolve_device
from pipeline.house_prices.cv import CVResult, FoldFeatureCache, Splits, fold_names, repeat_of, score_oof, split_folds
from pipeline.house_prices.families import FAMILIES, family_of
from pipeline.house_prices.features import training_rows
from pipeline.house_prices.final import FinalModel
from pipeline.house_prices.members import ensemble_members
from pipeline.house_prices.params import (
    CVParams,
    FeatureParams,
    LightGBMParams,
    ModelParams,
    SklearnParams,
    TrainParams,
)
from pipeline.house_prices.training import EpochCallback, History
from pipeline.tabular.blend import BLEND_KINDS, Scorer, fit_repeats, nested_blend
from pipeline.tabular.catboost_member import CatBoostParams
from pipeline.tabular.metrics import get_metric
from pipeline.tabular.oof_library import OOFLibrary, digest, frame_digest, source_digest

log = logging.getLogger(__name__)

# The params sections that define a CV score: what the `cv` and `train` stages declare.
SECTIONS: dict[str, type] = {"base": BaseParams, "features": FeatureParams, "model": ModelParams,
                             "train": TrainParams, "sklearn": SklearnParams, "lightgbm": LightGBMParams,
                             "catboost": CatBoostParams, "cv": CVParams}


@dataclass(frozen=True)
class ExperimentParams:
    base: BaseParams
    features: FeatureParams
    model: ModelParams
    train: TrainParams
    sklearn: SklearnParams
    lightgbm: LightGBMParams
    catboost: CatBoostParams
    cv: CVParams
    # The members blended (`model.blend`): a single model is an ensemble of one, itself; an
    # ensemble's are parsed from `model.members`. A member's own `members` is empty.
    members: tuple[ExperimentParams, ...] = ()


def parse_experiment(raw: dict[str, Any]) -> ExperimentParams:
    """The experiment sections of a params mapping (other sections are ignored)."""
    missing = [s for s in SECTIONS if s not in raw]
    if missing:
        raise ParamsError(f"params lack section(s) {', '.join(missing)}")
    params = ExperimentParams(**{name: parse_section(raw[name], cls, name) for name, cls in SECTIONS.items()})
    if params.model.blend not in BLEND_KINDS:
        raise ParamsError(f"model.blend={params.model.blend!r}: choose one of {', '.join(BLEND_KINDS)}")
    return dataclasses.replace(params, members=ensemble_members(raw, params, parse_experiment, _check_member))


def _check_member(raw: dict[str, Any], params: ExperimentParams) -> ExperimentParams:
    """One member: its family must be known and able to read its features."""
    family = FAMILIES.get(params.model.kind)
    if family is None:
        raise ParamsError(f"model.kind {params.model.kind!r} is not a model family ({', '.join(FAMILIES)})")
    if params.features.encoding == "native" and not family.reads_native(params):
        raise ParamsError(f"features.encoding: native (category codes) is for tree models (model.kind lightgbm, "
                          f"catboost, or sklearn with sklearn.estimator hist_gradient_boosting), not "
                          f"{family.label(params)}")
    return params


def read_experiment(params: StageParams) -> tuple[ExperimentParams, dict[str, Any], RuntimeParams]:
    """What the `cv` and `train` stages read: the experiment, its raw sections (for MLflow and
    the saved model) and the runtime settings (which are not recorded as read)."""
    raw = params.sections(SECTIONS)
    return params.parsed(raw, parse_experiment), raw, params.runtime()


@dataclass
class EnsembleCV(CVResult):
    """The blend's CV result, plus each member's own, the weights the shipped model uses (fit
    on every out-of-fold row) and the nested fold scores of every blend kind (`BLEND_KINDS`)."""

    members: list[CVResult] = dataclasses.field(default_factory=list)
    weights: np.ndarray = dataclasses.field(default_factory=lambda: np.ones(0))
    blends: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    hits: int = 0  # members read from the OOF library instead of computed
    keys: list[str] = dataclasses.field(default_factory=list)  # the members' OOF library keys (with a library)


def experiment_folds(params: ExperimentParams, n_rows: int) -> Splits:
    """The folds of `params` (`cv.folds`, `cv.shuffle`, `cv.repeats`, `base.seed`) over `n_rows` rows."""
    return split_folds(n_rows, params.cv.folds, params.base.seed, params.cv.shuffle, params.cv.repeats)


MemberEpochs = Callable[[int], EpochCallback]
MemberDone = Callable[[int, CVResult], None]


def run_cv(params: ExperimentParams, train: pd.DataFrame, test: pd.DataFrame | None,
           cache: FoldFeatureCache | None = None, device: str = "auto", member_epochs: MemberEpochs | None = None,
           on_member: MemberDone | None = None, library: OOFLibrary | None = None,
           keys: MemberKeys | None = None) -> EnsembleCV:
    """The CV score of `params` on validated frames.

    Each member is cross-validated on the experiment's folds (read from `library` when it holds
    that computation, stored there when not); the blend's out-of-fold prediction combines the
    members' in log space (`model.blend`), each fold blended by weights fit on the other folds
    (`pipeline.tabular.blend.nested_blend`; one member: itself), and its fold scores are computed
    from that blend exactly as for a single model. Every blend kind is scored the same way for
    comparison. `member_epochs(i)` gives the callback for member i's epochs (torch members:
    live curves, tuning's divergence check and pruning); `on_member(i, result)` sees each
    member's result as it is known (tuning reports it to the pruner, which may stop the run).
    `keys`: the members' library keys when the caller computed them already (`MemberKeys`).
    """
    splits = experiment_folds(params, len(train))
    if library is not None and keys is None:
        keys = MemberKeys(params, train, test, device)
    results, hits = [], 0
    for i, member in enumerate(params.members):
        result = None if library is None else keys.read(library, i)
        if result is None:
            result = family_of(member).cross_validate(member, train, test, splits, on_epoch=_member(member_epochs, i),
                                                      cache=cache, device=device)
            if library is not None:
                keys.write(library, i, result)
        else:
            hits += 1
        if on_member is not None:
            on_member(i, result)
        results.append(result)
    blended = blend_results(params, train, splits, results, hits)
    return dataclasses.replace(blended, keys=list(keys.keys) if library is not None else [])


def blend_results(params: ExperimentParams, train: pd.DataFrame, splits: Splits, results: list[CVResult],
                  hits: int = 0) -> EnsembleCV:
    """The members' CV results blended by `model.blend` in log space, with every blend kind's
    nested scores. One member blended by weights is that member, exactly: its own predictions,
    not their round trip through log and exp."""
    member_oof = np.stack([r.oof_repeats for r in results])
    prices = results[0].prices
    links, scorer = log_links(member_oof), price_scorer(prices)
    repeat = repeat_of(splits, len(train))
    fit_mask = blend_rows(params, train)
    nested = {kind: (member_oof[0], results[0].fold_scores) if len(results) == 1 else
              _exp(nested_blend(kind, links, scorer, splits, repeat, fit_mask)) for kind in BLEND_KINDS}
    weights = fit_repeats(params.model.blend, links, scorer, np.flatnonzero(fit_mask))
    tests = [r.test_prices for r in results]
    test_prices = (np.exp(np.average([np.log(np.clip(t, 1.0, None)) for t in tests], axis=0, weights=weights))
                   if all(len(t) for t in tests) and np.isfinite(weights).all() else np.empty(0))
    blend = score_oof(nested[params.model.blend][0], prices, splits, _mean_history([r.history for r in results]),
                      test_prices)
    return EnsembleCV(**{f.name: getattr(blend, f.name) for f in dataclasses.fields(CVResult)}, members=results,
                      weights=weights, blends={method: scores for method, (_, scores) in nested.items()}, hits=hits)


def log_links(prices: np.ndarray) -> np.ndarray:
    """Predicted prices in link space: their logs, clamped at 1 as the score clamps them."""
    return np.log(np.clip(prices, 1.0, None))


def price_scorer(prices: np.ndarray) -> Scorer:
    """Kaggle's score (log-RMSE, the registry's) of log-price links against these prices."""
    return Scorer(get_metric("log_rmse"), prices, np.exp)


def _exp(nested: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A nested blend's out-of-fold links as prices, with its fold scores."""
    return np.exp(nested[0]), nested[1]


def blend_rows(params: ExperimentParams, train: pd.DataFrame) -> np.ndarray:
    """The rows blend weights may learn from (a mask): the training rows, outliers dropped as
    for every member (`features.drop_outliers`)."""
    mask = np.zeros(len(train), dtype=bool)
    mask[training_rows(train, np.arange(len(train)), params.features)] = True
    return mask


class MemberKeys:
    """The OOF library keys of an experiment's members, and their reads and writes.

    A key hashes what a member's CV result depends on: its family's params (`ingredients`),
    the fold plan, the frames (`frame_digest`), the device kind and thread count for torch, and its code
    (`source_digest` of the modules that compute it, and the library versions).
    """

    def __init__(self, params: ExperimentParams, train: pd.DataFrame, test: pd.DataFrame | None, device: str) -> None:
        self.params = params
        self.plan = {"folds": params.cv.folds, "shuffle": params.cv.shuffle, "repeats": params.cv.repeats,
                     "seed": params.base.seed, "rows": len(train)}
        self.plan_key, self.data_key = digest(self.plan), frame_digest(train, test)
        device_kind = resolve_device(device).type
        self.keys, self.ingredients = [], []
        for member in params.members:
            family = family_of(member)
            ingredients = family.ingredients(member)
            code = source_digest(family.code(), family.library_versions())
            # torch's float32 sums round differently on another device or thread count
            extra = {"device": device_kind, "threads": torch.get_num_threads()} if family.takes_epochs(member) else {}
            self.ingredients.append(ingredients)
            self.keys.append(digest({"member": ingredients, "plan": self.plan, "data": self.data_key,
                                     "code": code, **extra}))

    def read(self, library: OOFLibrary, i: int) -> CVResult | None:
        entry = library.get(self.keys[i])
        if entry is None:
            return None
        a = entry.arrays()
        history = History(a["history_train"], a["history_valid"], a["best_epochs"])
        return CVResult(a["fold_scores"], history, a["oof_repeats"], a["prices"], a["test_prices"])

    def write(self, library: OOFLibrary, i: int, result: CVResult) -> None:
        commit = git_commit(ProjectPaths.here().root)
        history = result.history
        best = history.best_epochs if history.best_epochs is not None else np.full(history.train.shape[1],
                                                                                   history.train.shape[0])
        manifest = {"member": describe_member(self.params.members[i]), "params": self.ingredients[i],
                    "cv": {"mean": result.mean, "std": result.std}, "plan": self.plan, "plan_key": self.plan_key,
                    "data_key": self.data_key, "commit": commit.short if commit else None, "created": time.time()}
        library.put(self.keys[i], manifest, {
            "fold_scores": result.fold_scores, "history_train": history.train, "history_valid": history.valid,
            "best_epochs": np.asarray(best), "oof_repeats": result.oof_repeats, "prices": result.prices,
            "test_prices": result.test_prices})


def describe_member(member: ExperimentParams) -> str:
    """`mlp`, `sklearn/svr`, `lightgbm`: a member's family (and estimator)."""
    return family_of(member).label(member)


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
    """What each trained model is called in curves and runs: its kind (`mlp`) for one member,
    `member0-mlp`, `member1-linear`, ... for several."""
    if len(params.members) == 1:
        return [params.members[0].model.kind]
    return [f"member{i}-{m.model.kind}" for i, m in enumerate(params.members)]


def trained_histories(params: ExperimentParams, histories: list[History]) -> dict[str, History]:
    """The per-epoch curves of the members trained epoch by epoch (torch), by name: a
    scikit-learn, LightGBM or CatBoost member has one score, not a curve, so it has no line."""
    return {name: history for name, member, history in zip(model_names(params), params.members, histories, strict=True)
            if family_of(member).takes_epochs(member)}


def member_histories(params: ExperimentParams, result: EnsembleCV) -> dict[str, History]:
    """Each torch model's own per-epoch CV curves, by name (a blend has no curve of its own)."""
    return trained_histories(params, [r.history for r in result.members])


def describe(params: ExperimentParams) -> str:
    """`mlp`, or `ensemble of 5 (blended out-of-fold predictions)`: what a score belongs to."""
    if len(params.members) == 1:
        return params.members[0].model.kind
    return f"ensemble of {len(params.members)} (blended out-of-fold predictions)"


def final_epochs(members: list[CVResult]) -> list[int]:
    """Epochs for the final fit, per member (`EnsembleCV.members`): the mean best epoch over the folds."""
    return [int(round(float(np.mean(r.history.best_epochs)))) for r in members]


def fit_experiment(params: ExperimentParams, train: pd.DataFrame, test: pd.DataFrame | None,
                   epochs: list[int] | None = None, weights: list[float] | None = None,
                   device: str = "auto", member_epochs: MemberEpochs | None = None) -> list[FinalModel]:
    """Final fit of every member on all training rows.

    `epochs` (from `final_epochs` of the CV run) replaces each torch member's `train.epochs`
    when early stopping chose them; there is no validation set left to stop on. `weights`
    (the CV run's blend weights, fit on every out-of-fold row) go with the members for
    `predict_blend`; without them the members are weighted equally. `member_epochs(i)` gives
    the callback for member i's epochs.
    """
    members = params.members
    for name, given in (("final epoch counts", epochs), ("blend weights", weights)):
        if given is not None and len(given) != len(members):
            raise ParamsError(f"{len(given)} {name} for {len(members)} members: rerun the cv stage")
    weights = weights if weights is not None else [1.0 / len(members)] * len(members)
    fitted = []
    for i, member in enumerate(members):
        start = time.perf_counter()
        final = family_of(member).fit(member, train, test, epochs=None if epochs is None else epochs[i],
                                      on_epoch=_member(member_epochs, i), device=device)
        fitted.append(dataclasses.replace(final, weight=float(weights[i])))
        log.info("final fit of member %d/%d (%s) on %d rows in %.1f s", i + 1, len(members), describe_member(member),
                 len(train), time.perf_counter() - start)
    return fitted


def member_lines(params: ExperimentParams) -> MemberDone:
    """An `on_member` for `run_cv` that logs one line per member as its CV is known (what a log
    shows in place of progress bars): its score and the seconds since the previous one."""
    last = [time.perf_counter()]

    def on_member(i: int, result: CVResult) -> None:
        now = time.perf_counter()
        log.info("member %d/%d (%s): CV log-RMSE %.4f ± %.4f in %.1f s", i + 1, len(params.members),
                 describe_member(params.members[i]), result.mean, result.std, now - last[0])
        last[0] = now

    return on_member


def cv_metrics(params: ExperimentParams, result: EnsembleCV) -> dict[str, Any]:
    """What `metrics/house_prices/cv.json` holds. The top-level numbers are the few that DVC compares
    (`dvc metrics show/diff`, `dvc exp show`); the details, per fold, per member and per blend
    method, are lists of records, which DVC leaves out of its tables (MLflow has them all)."""
    cv = params.cv
    return {"log_rmse_mean": result.mean, "log_rmse_std": result.std, "log_rmse_oof": result.oof_score,
            "repeats": cv.repeats, "blend": params.model.blend,
            "folds": [{"fold": name, "log_rmse": float(score)}
                      for name, score in zip(fold_names(cv.folds, cv.repeats), result.fold_scores, strict=True)],
            # The shipped weights (fit on every out-of-fold row) and the final fit's epochs, per member.
            "members": [{"member": f"member{i}", "model": describe_member(member), "log_rmse": m.mean,
                         "weight": float(w), "final_epochs": epochs}
                        for i, (member, m, w, epochs) in enumerate(zip(params.members, result.members, result.weights,
                                                                       final_epochs(result.members), strict=True))],
            # Each blend method's nested CV score, for comparison.
            "blends": [{"method": k, "log_rmse": float(v.mean())} for k, v in result.blends.items()]}


def member_column(cv: Mapping[str, Any], key: str, path: object) -> list[Any]:
    """One field of every member in a cv.json (`weight`, `final_epochs`), in member order."""
    members = cv.get("members")
    if not isinstance(members, list) or not all(isinstance(m, Mapping) and key in m for m in members):
        raise ParamsError(f"{path} holds no {key} per member: rerun the cv stage")
    return [m[key] for m in members]


def _member(member_epochs: MemberEpochs | None, member: int) -> EpochCallback | None:
    return member_epochs(member) if member_epochs is not None else None
