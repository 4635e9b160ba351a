"""`kpipe tune --status`: what a shared study holds, readable from any machine with the project.

It opens the study's storage without a heartbeat, so looking never changes the study: a dead
worker's trial stays RUNNING here until a live worker starts its next trial and fails it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import optuna
import pandas as pd
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from pipeline.common.params import ParamsError, read_params
from pipeline.common.paths import ProjectPaths
from pipeline.tuning.space import SearchSpace
from pipeline.tuning.storage import (
    WORKER_ATTR,
    TuningError,
    describe_storage,
    journal_path,
    one_line,
    open_storage,
    retried_from,
)
from pipeline.tuning.study import load_tune

STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)


def study_status(paths: ProjectPaths, storage: str | None = None, study_name: str | None = None) -> str:
    """House Prices' study: `study_name` in `storage` (defaults: the `tune` section of params.yaml)."""
    tune, space = load_tune(read_params(paths.params))
    return storage_status(paths, tune.storage if storage is None else storage, study_name or tune.study_name, space,
                          "CV log-RMSE")


def storage_status(paths: ProjectPaths, spec: str, name: str, space: SearchSpace, score: str) -> str:
    """The status of the study `name` in the storage `spec`, any project's: `space` decodes its
    trials' values, `score` names what they scored (the best is taken in the study's direction)."""
    where = describe_storage(spec, paths)
    if "://" not in spec and not journal_path(spec, paths).exists():
        raise TuningError(f"no study '{name}': {where} does not exist (run `kpipe tune` first)")
    try:
        opened = open_storage(spec, paths)
        names = optuna.get_all_study_names(opened)
    except TuningError:
        raise
    except Exception as exc:  # a bad URL, a missing driver, an unreachable server
        raise TuningError(f"cannot open the Optuna storage {where}: {type(exc).__name__}: {one_line(exc)}") from exc
    if name not in names:
        raise TuningError(f"no study '{name}' in {where}; studies there: {', '.join(sorted(names)) or 'none'}")
    study = optuna.load_study(study_name=name, storage=opened)
    return format_status(name, where, study.get_trials(deepcopy=False), space, score,
                         maximize=study.direction == StudyDirection.MAXIMIZE)


def format_status(name: str, where: str, trials: Sequence[FrozenTrial], space: SearchSpace, score: str,
                  maximize: bool) -> str:
    """Trials by state, the best trial and its values, trials per worker, and what is running or
    failed (with the retry that reran a dead worker's trial)."""
    counts = Counter(t.state for t in trials)
    lines = [f"study '{name}' in {where}: {len(trials)} trials: "
             + ", ".join(f"{counts[s]} {s.name.lower()}" for s in STATES)]
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if done:
        best = (max if maximize else min)(done, key=lambda t: t.value)
        lines += [f"best: trial {best.number}, {score} {best.value:.5f}, by {_worker(best)}",
                  *(f"  {key} = {value}" for key, value in _values(best, space).items())]
    else:
        lines.append("best: no completed trial yet")
    if trials:
        table = pd.crosstab(pd.Series([_worker(t) for t in trials], name="worker"),
                            pd.Series([t.state.name.lower() for t in trials]))
        table = table.reindex(columns=[s.name.lower() for s in STATES if counts[s]], fill_value=0)
        lines += ["trials by worker:", *("  " + row for row in table.reset_index().to_string(index=False).splitlines())]
    reruns = {origin: t.number for t in trials if (origin := retried_from(t)) is not None}
    for trial in trials:
        if trial.state == TrialState.RUNNING:
            started = f" since {trial.datetime_start:%Y-%m-%d %H:%M:%S}" if trial.datetime_start else ""
            lines.append(f"running: trial {trial.number} on {_worker(trial)}{started}")
        elif trial.state == TrialState.FAIL:
            reason = _failure(trial, reruns.get(trial.number))
            lines.append(f"failed: trial {trial.number} on {_worker(trial)}: {reason}")
    return "\n".join(lines)


def _values(trial: FrozenTrial, space: SearchSpace) -> dict[str, object]:
    """A trial's values as params, or as stored when params.yaml's space has changed since."""
    try:
        return space.decode(trial.params)
    except ParamsError:
        return dict(trial.params)


def _worker(trial: FrozenTrial) -> str:
    return str(trial.user_attrs.get(WORKER_ATTR, "unknown"))


def _failure(trial: FrozenTrial, rerun: int | None) -> str:
    """Why a trial failed: its error, or (none recorded) its worker stopped mid-trial."""
    if "error" in trial.user_attrs:
        return str(trial.user_attrs["error"])[:300]
    reason = "no error recorded: its worker stopped (killed, or no heartbeat within the grace period)"
    return reason + (f"; its params were retried as trial {rerun}" if rerun is not None else "")
