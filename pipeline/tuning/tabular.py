"""`kpipe tune` in a competition project: an Optuna study of the CV score over `tune.space`.

The same engine and conventions as House Prices' tuning (`pipeline.tuning.study`): dotted params keys
checked up front (`parse_space`), the storages it opens (a journal file by default, SQLite or
PostgreSQL for a team), the incumbent (params.yaml itself) as the first trial, and the best
values written to params.tuned.yaml for `dvc exp run`. The study's direction is the metric's
own: AUC is maximised, log-loss minimised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd
import yaml

from pipeline.common.io import atomic_path
from pipeline.common.params import parse_section, read_params, with_overrides
from pipeline.common.paths import ProjectPaths
from pipeline.common.tracking import RunRecord, log_record
from pipeline.tabular.competition import Competition, read_competition
from pipeline.tabular.hooks import load_hooks
from pipeline.tabular.library import MemberLibrary
from pipeline.tabular.members import FAMILIES
from pipeline.tabular.modeling import Problem, cross_validate
from pipeline.tabular.params import TabularTuneParams, parse_tabular
from pipeline.tuning.space import Choice, SearchSpace, encode_choice, parse_space
from pipeline.tuning.status import storage_status
from pipeline.tuning.storage import describe_storage, open_storage
from pipeline.tuning.study import TuneOptions, tag_worker

log = logging.getLogger(__name__)


@dataclass
class TabularTuneOutcome:
    study: optuna.Study
    metric: str
    incumbent: float | None
    best_overrides: dict[str, Any]
    written: Any

    def summary(self) -> str:
        best = self.study.best_trial
        lines = [f"study {self.study.study_name}: {len(self.study.trials)} trial(s); best CV {self.metric} "
                 f"{best.value:.5f} (trial {best.number})"]
        lines.append(f"params.yaml itself scores {self.incumbent:.5f}" if self.incumbent is not None else
                     "params.yaml's own values lie outside tune.space, so no trial scored them")
        values = ", ".join(f"{k}={v}" for k, v in self.best_overrides.items())
        lines.append(f"best values: {values or 'params.yaml’s'}")
        lines.append(f"wrote {self.written}: `cp {self.written.name} params.yaml && dvc repro` to use them, or "
                     "`dvc exp run -S key=value`")
        return "\n".join(lines)


def _space(raw: dict[str, Any], tune: TabularTuneParams) -> SearchSpace:
    return parse_space(tune.space, raw, parse=lambda params: parse_tabular(params, tuple(FAMILIES)))


@dataclass(frozen=True)
class _Study:
    """Where the project's study lives and what it searches: `tune` with the command line's overrides."""

    competition: Competition
    raw: dict[str, Any]
    tune: TabularTuneParams
    space: SearchSpace
    storage: str
    name: str

    @classmethod
    def of(cls, paths: ProjectPaths, options: TuneOptions) -> _Study:
        competition = read_competition(paths.competition_file)
        raw = read_params(paths.params)
        tune = parse_section(raw.get("tune", {}), TabularTuneParams, "tune")
        return cls(competition, raw, tune, _space(raw, tune),
                   tune.storage if options.storage is None else options.storage,
                   options.study_name or tune.study_name or competition.slug)


def tabular_study_status(paths: ProjectPaths, options: TuneOptions) -> str:
    """`kpipe tune --status` in a competition project: its study's trials, best and workers."""
    found = _Study.of(paths, options)
    return storage_status(paths, found.storage, found.name, found.space, f"CV {found.competition.metric}")


def run_tabular_tuning(paths: ProjectPaths, options: TuneOptions) -> TabularTuneOutcome:
    """Run this worker's trials of the project's study; write the best params."""
    found = _Study.of(paths, options)
    competition, raw, tune, space = found.competition, found.raw, found.tune, found.space
    problem = Problem.of(competition, load_hooks(competition.module))
    train, test = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)
    library = MemberLibrary.for_project(paths.root)  # members a trial leaves alone are read, not trained
    storage_spec, name = found.storage, found.name
    study = optuna.create_study(
        storage=open_storage(storage_spec, paths), study_name=name, load_if_exists=True,
        direction="maximize" if problem.metric.greater_is_better else "minimize",
        sampler=optuna.samplers.TPESampler(seed=tune.sampler_seed if options.sampler_seed is None
                                           else options.sampler_seed))
    log.info("study %s on %s: %s %s", name, describe_storage(storage_spec, paths),
             "maximise" if problem.metric.greater_is_better else "minimise", problem.metric.name)
    incumbent = {d.key: encode_choice(_current(raw, d.key)) for d in space.dimensions}
    if not study.trials and all(_admits(d, v) for d, v in zip(space.dimensions, incumbent.values(), strict=True)):
        study.enqueue_trial(incumbent)  # the incumbent first: every later trial is judged against params.yaml

    def objective(trial: optuna.Trial) -> float:
        overrides = space.suggest(trial)
        experiment = parse_tabular(with_overrides(raw, overrides), tuple(FAMILIES))
        result = cross_validate(problem, experiment, train, test, library)
        log_record(paths, competition.slug, RunRecord(
            name=f"tune {name} #{trial.number}", params=overrides,
            metrics={f"{problem.metric.name}_mean": result.mean, f"{problem.metric.name}_std": result.std},
            tags={"stage": "tune", "optuna.study": name, "optuna.trial": str(trial.number)}))
        return result.mean

    study.optimize(tag_worker(objective), n_trials=options.n_trials or tune.n_trials,
                   timeout=(tune.timeout_s if options.timeout_s is None else options.timeout_s) or None,
                   n_jobs=options.n_jobs, catch=(Exception,))
    best = study.best_trial
    overrides = space.decode(best.params)
    first = study.trials[0]
    score = first.value if first.params == incumbent and first.value is not None else None
    written = options.output or paths.tuned_params
    with atomic_path(written) as tmp:
        tmp.write_text(yaml.safe_dump(with_overrides(raw, overrides), sort_keys=False))
    return TabularTuneOutcome(study, problem.metric.name, score, overrides, written)


def _admits(dimension: Any, value: Any) -> bool:
    """Whether params.yaml's value lies in the dimension (else it cannot be a trial of the study)."""
    if isinstance(dimension, Choice):
        return value in dimension.encoded
    return dimension.low <= value <= dimension.high


def _current(raw: dict[str, Any], key: str) -> Any:
    node: Any = raw
    for part in key.split("."):
        node = node[part]
    return node
