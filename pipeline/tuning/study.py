"""`kpipe tune`: an Optuna study whose objective is the pipeline's CV log-RMSE.

A trial applies its suggestions to the whole params mapping as dotted overrides (exactly like
`dvc exp run -S`), parses it as an experiment and runs `run_cv` on the validated frames: the
score it minimizes is the very number the `cv` stage reports.

Distribution is Optuna's own: every worker (a thread of `--n-jobs`, or another `kpipe tune`
process, here or on another machine) opens the same storage and study
(`load_if_exists=True`) and asks it for trials; the storage hands out trial numbers, and TPE
with its default `constant_liar` treats running trials as pending so workers spread out.

Workers die (a preempted machine, an out-of-memory kill). On a database storage, Optuna's
heartbeat (`tune.heartbeat_s`) lets the surviving workers fail a dead worker's RUNNING trial and
queue its params again; every trial records the worker that ran it (`worker`: host:pid).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from pipeline.common.params import (
    RUNTIME,
    ParamsError,
    RuntimeParams,
    parse_section,
    read_params,
    with_overrides,
)
from pipeline.common.params_edit import write_params
from pipeline.common.paths import ProjectPaths
from pipeline.common.redact import redact
from pipeline.common.runtime import set_threads
from pipeline.common.seed import seed_everything
from pipeline.common.tracking import HOUSE_PRICES_EXPERIMENT, OpenRun, RunRecord, open_run
from pipeline.house_prices.cv import FoldFeatureCache
from pipeline.house_prices.experiment import SECTIONS, MemberKeys, parse_experiment, run_cv
from pipeline.house_prices.training import Diverged, EpochCallback
from pipeline.tabular.oof_library import OOFLibrary
from pipeline.tuning.incumbent import (
    FOLD_SCORES,
    Verdict,
    add_incumbent,
    find_incumbent,
    is_incumbent,
    judge,
    params_digest,
)
from pipeline.tuning.params import TuneParams
from pipeline.tuning.space import GROUP, SearchSpace, parse_space
from pipeline.tuning.storage import (
    WORKER_ATTR,
    TuningError,
    check_storage_host,
    describe_storage,
    one_line,
    open_storage,
    retried_from,
    retrying,
    worker_id,
)

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class TuneOptions:
    """What one `kpipe tune` invocation does; `None` fields come from the `tune` section."""

    n_trials: int | None = None
    timeout_s: float | None = None
    storage: str | None = None
    study_name: str | None = None
    sampler_seed: int | None = None
    n_jobs: int = 1
    output: Path | None = None
    apply: bool = False
    force: bool = False  # --apply even when the best trial does not beat the incumbent


@dataclass
class TuneOutcome:
    study: optuna.Study
    space: SearchSpace
    best: FrozenTrial
    best_overrides: dict[str, Any]
    written: Path | None  # None: --apply refused a result that is not better than params.yaml
    verdict: Verdict


def load_tune(raw: Mapping[str, Any]) -> tuple[TuneParams, SearchSpace]:
    """The `tune` section, strictly parsed, and its space checked against the rest of `raw`."""
    if "tune" not in raw:
        raise ParamsError("params lack the 'tune' section")
    tune = parse_section(raw["tune"], TuneParams, "tune")
    return tune, parse_space(tune.space, raw, tune.one_group_per_trial)


def trial_params(raw: Mapping[str, Any], tune: TuneParams) -> dict[str, Any]:
    """The params every trial starts from: `raw` scored on `tune.cv_repeats` repeats of its folds."""
    return with_overrides(dict(raw), {"cv.repeats": tune.cv_repeats})


def tag_worker(objective: Callable[[optuna.Trial], float]) -> Callable[[optuna.Trial], float]:
    """`objective`, recording first which worker runs the trial (a retried trial inherits the
    dead worker's user attributes; this overwrites the name). Set before the trial computes, so
    a trial whose worker dies mid-run still names it."""
    worker = worker_id()

    def tagged(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, worker)
        return objective(trial)

    return tagged


def make_study(storage: optuna.storages.BaseStorage, name: str, tune: TuneParams, sampler_seed: int) -> optuna.Study:
    """Create the study, or join it if another worker (or an earlier run) already did."""
    return retrying(lambda: optuna.create_study(
        storage=storage, study_name=name, direction="minimize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=sampler_seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=tune.pruner_startup_trials,
                                           n_warmup_steps=tune.pruner_warmup_percent)))


# The user attribute listing a trial's members' OOF library keys (what `kpipe blend --study` reads).
MEMBER_KEYS = "oof_keys"
# Intermediate values: member i reports at steps STEPS * i + 1 .. STEPS * (i + 1).
STEPS = 100


def make_objective(raw: Mapping[str, Any], space: SearchSpace, train: pd.DataFrame,
                   test: pd.DataFrame | None, device: str = "auto",
                   cache: FoldFeatureCache | None = None,
                   library: OOFLibrary | None = None) -> Callable[[optuna.Trial], float]:
    """The objective: the CV log-RMSE of `raw` with the trial's suggestions applied.

    Pruning signal, per member and per epoch of each torch member: member i owns the steps
    100·i + 1 .. 100·(i + 1). A torch member reports the mean over folds of its validation
    log-RMSE at the percent of its epochs done (100·i + 1 .. 100·i + 99: with the cosine
    schedule a 200-epoch run at epoch 50 is still at a high learning rate, so comparing by
    epoch number would prune long runs for being early, not for being bad); every member,
    computed or read from the OOF library, reports its CV mean at 100·(i + 1). Trials of one
    study have the same members in the same slots, so MedianPruner compares like with like:
    a trial whose first member is clearly bad stops there, before the other members' folds.
    Members finished before a prune are in the OOF library for the next trial and `kpipe blend`.

    A NaN or infinite score of any torch member at any epoch raises `Diverged`; any exception
    marks the trial FAIL with its reason in the `error` user attribute, and `optimize` goes on.

    Trials that share feature options and folds share their fold matrices (`FoldFeatureCache`);
    trials that share a member's ingredients share its whole CV (`library`).
    """
    cache = cache or FoldFeatureCache()

    def objective(trial: optuna.Trial) -> float:
        try:
            overrides = space.suggest(trial)
            params = parse_experiment(with_overrides(dict(raw), overrides))

            def member_epochs(i: int) -> EpochCallback:
                epochs = params.members[i].train.epochs
                reported = [0]  # the last percent step reported

                def on_epoch(epoch: int, _train: np.ndarray, valid: np.ndarray) -> None:
                    mean_valid = float(np.mean(valid))
                    if not math.isfinite(mean_valid):
                        raise Diverged(f"member {i}: mean validation log-RMSE is {mean_valid} at epoch {epoch + 1}")
                    percent = min(round(100 * (epoch + 1) / epochs), STEPS - 1)
                    if percent <= reported[0]:
                        return  # over 100 epochs, several share a percent: Optuna keeps only one
                    reported[0] = percent
                    _report(trial, mean_valid, STEPS * i + percent, f"member {i}, epoch {epoch + 1}: mean "
                                                                    f"validation log-RMSE {mean_valid:.4f}")

                return on_epoch

            def on_member(i: int, result: Any) -> None:
                if not math.isfinite(result.mean):
                    raise Diverged(f"member {i}: CV log-RMSE is {result.mean}")
                _report(trial, result.mean, STEPS * (i + 1), f"member {i}: CV log-RMSE {result.mean:.4f}")

            keys = MemberKeys(params, train, test, device) if library is not None else None
            if keys is not None:  # before any member runs: a pruned trial's finished members count too
                trial.set_user_attr(MEMBER_KEYS, keys.keys)
            result = run_cv(params, train, test, cache, device=device, member_epochs=member_epochs,
                            on_member=on_member, library=library, keys=keys)
            if not math.isfinite(result.mean):
                raise Diverged(f"CV log-RMSE is {result.mean}")
            trial.set_user_attr("cv_std", result.std)
            trial.set_user_attr("library_hits", result.hits)
            trial.set_user_attr(FOLD_SCORES, [float(s) for s in result.fold_scores])
            return result.mean
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise

    return objective


def _report(trial: optuna.Trial, value: float, step: int, what: str) -> None:
    trial.report(value, step)
    if trial.should_prune():
        raise optuna.TrialPruned(f"{what} is worse than the median of earlier trials at step {step}")


def ensure_incumbent(study: optuna.Study, raw: Mapping[str, Any], train: pd.DataFrame,
                     test: pd.DataFrame | None, device: str, cache: FoldFeatureCache,
                     parent: OpenRun | None = None, space: SearchSpace | None = None,
                     library: OOFLibrary | None = None) -> FrozenTrial:
    """The study's trial for the current params.yaml: found when it was scored before, else
    cross-validated now (on the folds every trial uses), added before any search and logged
    under `parent` like every trial (tagged `optuna.incumbent`)."""
    digest = params_digest({s: raw[s] for s in SECTIONS})
    found = find_incumbent(study, digest)
    if found is not None:
        log.info("incumbent (params.yaml) is trial %d: CV log-RMSE %.5f", found.number, found.value)
        return found
    log.info("scoring the incumbent (params.yaml) first, on the same folds as every trial")
    result = run_cv(parse_experiment(dict(raw)), train, test, cache=cache, device=device, library=library)
    trial = add_incumbent(study, digest, result.mean, [float(s) for s in result.fold_scores], result.std,
                          worker_id())
    log.info("incumbent (params.yaml) is trial %d: CV log-RMSE %.5f", trial.number, trial.value)
    if parent is not None and space is not None:
        record, status = trial_record(trial, space)
        parent.log_child(dataclasses.replace(record, name=f"trial-{trial.number} (params.yaml)",
                                             tags={**record.tags, "optuna.incumbent": "true"}), status)
    return trial


def trial_record(trial: FrozenTrial, space: SearchSpace, incumbent: FrozenTrial | None = None
                 ) -> tuple[RunRecord, str]:
    """One trial as a nested MLflow run, and its MLflow status."""
    metrics = {}
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        metrics = {"log_rmse_mean": trial.value, "log_rmse_std": trial.user_attrs.get("cv_std", math.nan)}
        if incumbent is not None:
            metrics["log_rmse_vs_incumbent"] = trial.value - incumbent.value
    # What the pruner saw, at its steps: member i's epochs at 100·i + percent, its CV mean at 100·(i + 1).
    curve = {step: trial.intermediate_values[step] for step in sorted(trial.intermediate_values)}
    tags = {"stage": "tune-trial", "optuna.trial": str(trial.number), "optuna.state": trial.state.name}
    if WORKER_ATTR in trial.user_attrs:
        tags["optuna.worker"] = str(trial.user_attrs[WORKER_ATTR])
    if GROUP in trial.params:  # the group of keys this trial varied (tune.one_group_per_trial)
        tags["optuna.group"] = str(trial.params[GROUP])
    if (retry_of := retried_from(trial)) is not None:
        tags["optuna.retry_of"] = str(retry_of)
    if "error" in trial.user_attrs:
        tags["optuna.error"] = str(trial.user_attrs["error"])[:5000]
    status = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED"}.get(trial.state, "FAILED")
    return RunRecord(name=f"trial-{trial.number}", params=space.decode(trial.params), metrics=metrics,
                     curves={"pruning_log_rmse": curve}, tags=tags), status


def optimize(study: optuna.Study, objective: Callable[[optuna.Trial], float], n_trials: int | None,
             timeout_s: float | None, n_jobs: int, parent: OpenRun | None = None,
             space: SearchSpace | None = None, incumbent: FrozenTrial | None = None) -> None:
    """Run `n_trials` trials here (threads: `n_jobs`), logging each under `parent` when given,
    and each result against the incumbent's.

    `catch=(Exception,)`: one bad combination (a diverging lr, a params check, out of memory)
    is a FAIL trial, not the end of a long study; Ctrl-C still stops it.
    """
    callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = []
    if parent is not None and space is not None:
        callbacks.append(lambda _study, trial: parent.log_child(*trial_record(trial, space, incumbent)))
    if incumbent is not None:
        callbacks.append(lambda _study, trial: _report_against(trial, incumbent))
    study.optimize(objective, n_trials=n_trials, timeout=timeout_s or None, n_jobs=n_jobs,
                   catch=(Exception,), callbacks=callbacks)


def _report_against(trial: FrozenTrial, incumbent: FrozenTrial) -> None:
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        log.info("trial %d: CV log-RMSE %.5f (%+.5f against the incumbent's %.5f)", trial.number, trial.value,
                 trial.value - incumbent.value, incumbent.value)


def load_frames(paths: ProjectPaths) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `validate` stage's outputs, which CV trains on."""
    missing = [p for p in (paths.clean_train, paths.clean_test) if not p.exists()]
    if missing:
        raise TuningError(f"validated data not found ({', '.join(str(p) for p in missing)}): "
                          "run `dvc repro validate` first")
    return pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)


def best_trials(study: optuna.Study, top: int) -> list[FrozenTrial]:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(done, key=lambda t: t.value)[:top]


def run_tuning(paths: ProjectPaths, options: TuneOptions) -> TuneOutcome:
    """Run (or join) the study, then write params.yaml with the best trial applied."""
    raw = read_params(paths.params)
    tune, space = load_tune(raw)
    raw = trial_params(raw, tune)
    if options.apply and options.output is not None:
        raise TuningError("--apply writes params.yaml itself; leave out --output")
    if options.n_jobs < 1:
        raise TuningError("--n-jobs must be at least 1")
    params = parse_experiment(raw)
    runtime = parse_section(raw.get(RUNTIME), RuntimeParams, RUNTIME)
    settings = dataclasses.replace(
        tune, **{k: v for k, v in {"n_trials": options.n_trials, "timeout_s": options.timeout_s,
                                   "storage": options.storage, "study_name": options.study_name,
                                   "sampler_seed": options.sampler_seed}.items() if v is not None})
    check_storage_host(settings.storage)  # before the data is read: a host that does not resolve fails at once
    seed_everything(params.base.seed)
    # torch's thread count is process-wide: threads of one study share the cores, one each.
    set_threads(1 if options.n_jobs > 1 else runtime.threads)
    train, test = load_frames(paths)

    try:
        study = make_study(open_storage(settings.storage, paths, settings.heartbeat_s), settings.study_name,
                           settings, settings.sampler_seed)
    except TuningError:
        raise
    except Exception as exc:  # a bad URL, a missing database driver, an unreachable server
        raise TuningError(f"cannot open the Optuna storage {describe_storage(settings.storage, paths)!r}: "
                          f"{type(exc).__name__}: {one_line(exc)}") from exc
    logged = dataclasses.asdict(dataclasses.replace(settings, storage=redact(settings.storage)))
    record = RunRecord(name="tune", params={**{s: raw[s] for s in SECTIONS}, "tune": logged},
                       tags={"stage": "tune", "optuna.study": settings.study_name, "n_jobs": str(options.n_jobs),
                             "optuna.worker": worker_id()})
    cache = FoldFeatureCache()
    library = OOFLibrary.for_project(paths.root)
    with open_run(paths, HOUSE_PRICES_EXPERIMENT, record) as parent:
        incumbent = ensure_incumbent(study, raw, train, test, runtime.device, cache, parent, space, library)
        objective = tag_worker(make_objective(raw, space, train, test, runtime.device, cache, library))
        optimize(study, objective, settings.n_trials, settings.timeout_s, options.n_jobs, parent, space, incumbent)
        counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,)))
                  for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        top = best_trials(study, 1)
        parent.log(RunRecord("tune", metrics={**{f"n_{k}": v for k, v in counts.items()},
                                              **({"best_log_rmse": top[0].value} if top else {})},
                             tags={"optuna.best_trial": str(top[0].number)} if top else {}))
    if not top:
        errors = [t.user_attrs["error"] for t in study.trials if "error" in t.user_attrs]
        raise TuningError(f"no trial of study '{settings.study_name}' completed ({counts})"
                          + (f"; first error: {errors[0]}" if errors else ""))
    best = top[0]
    verdict = judge(best, incumbent)
    overrides = space.decode(best.params)
    dest: Path | None = paths.params if options.apply else (options.output or paths.tuned_params)
    if options.apply and not verdict.better and not options.force:
        dest = None  # params.yaml stays as it is: the incumbent is at least as good
    elif not is_incumbent(best):
        write_params(paths.params, overrides, dest)
    else:
        dest = None  # nothing to write: params.yaml is the best the study knows
    return TuneOutcome(study, space, best, overrides, dest, verdict)


def summary(outcome: TuneOutcome, top: int = 5) -> str:
    """The best trials against the incumbent, the verdict, the file written (if any), and the
    same values as DVC flags."""
    incumbent = outcome.verdict.incumbent
    rows = [{"trial": t.number, "log_rmse": round(t.value, 5), "vs_incumbent": round(t.value - incumbent.value, 5),
             **({"params": "params.yaml (incumbent)"} if is_incumbent(t) else outcome.space.decode(t.params))}
            for t in best_trials(outcome.study, top)]
    states = pd.Series([t.state.name for t in outcome.study.trials]).value_counts().to_dict()
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = pd.DataFrame([{key: row.get(key, "") for key in columns} for row in rows])  # "" keeps ints ints
    lines = [f"study '{outcome.study.study_name}': {len(outcome.study.trials)} trials "
             + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())),
             table.to_string(index=False), outcome.verdict.explain()]
    if outcome.written is not None:
        lines.append(f"best trial {outcome.best.number} written to {outcome.written}")
    elif is_incumbent(outcome.best):
        lines.append("nothing written: params.yaml is still the best this study knows")
    else:
        lines.append("params.yaml left as it is (--apply --force writes the best trial anyway)")
    if outcome.best_overrides and not is_incumbent(outcome.best):
        flags = " ".join(f"-S {shlex.quote(f'{k}={_dvc_value(v)}')}" for k, v in outcome.best_overrides.items())
        lines.append(f"or run it as an experiment: dvc exp run {flags}")
    return "\n".join(lines)


def _dvc_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)
