"""Tuning throughput: trials per minute of `kpipe tune`'s objective on the real data.

Runs the study `kpipe tune` runs (params.yaml's experiment sections, `tune.space`, its sampler
seed and MedianPruner) on the full validated training set, with an in-memory storage so the
figure is the cost of the trials, not of a storage. It runs once per `--n-jobs` value (threads
in one process, one torch thread each when more than one) for `--minutes` each, and prints
trials per minute and the completed / pruned / failed counts. Figures only: no assertion, the
machine's load decides them.

Run: .venv/bin/python benchmarks/tune_throughput.py [--minutes 2] [--n-jobs 1,2]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import optuna
from _data import add_data_argument, load_clean_frames
from optuna.trial import TrialState

from pipeline.common.params import RUNTIME, RuntimeParams, parse_section, read_params
from pipeline.common.runtime import set_threads
from pipeline.common.seed import seed_everything
from pipeline.house_prices.experiment import parse_experiment
from pipeline.tuning.study import load_tune, make_objective, make_study, optimize, trial_params

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--minutes", type=float, default=2.0, help="Study length per --n-jobs value.")
    parser.add_argument("--n-jobs", default="1,2", help="Comma-separated thread counts to compare.")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    raw = read_params(args.params)
    tune, space = load_tune(raw)
    raw = trial_params(raw, tune)  # as `kpipe tune` scores trials: on tune.cv_repeats repeats
    params = parse_experiment(raw)
    train, test = load_clean_frames(args.data)
    print(f"{len(train)} rows, {params.cv.repeats} x {params.cv.folds} folds, "
          f"space: {', '.join(d.key for d in space.dimensions)}")
    print(f"{'n_jobs':>6} {'minutes':>7} {'trials':>6} {'complete':>8} {'pruned':>6} {'failed':>6} "
          f"{'trials/min':>10} {'best':>8}")
    for n_jobs in (int(n) for n in args.n_jobs.split(",")):
        seed_everything(params.base.seed)
        set_threads(1 if n_jobs > 1 else parse_section(raw[RUNTIME], RuntimeParams, RUNTIME).threads)
        study = make_study(optuna.storages.InMemoryStorage(), f"bench-{n_jobs}", tune, tune.sampler_seed)
        start = time.perf_counter()
        # n_trials=None: run until the timeout; trials running at the timeout still finish.
        optimize(study, make_objective(raw, space, train, test), n_trials=None, timeout_s=args.minutes * 60,
                 n_jobs=n_jobs)
        minutes = (time.perf_counter() - start) / 60
        counts = [len(study.get_trials(deepcopy=False, states=(s,)))
                  for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
        best = f"{study.best_value:.4f}" if counts[0] else "-"
        print(f"{n_jobs:>6} {minutes:>7.2f} {len(study.trials):>6} {counts[0]:>8} {counts[1]:>6} {counts[2]:>6} "
              f"{len(study.trials) / minutes:>10.2f} {best:>8}")


if __name__ == "__main__":
    main()
