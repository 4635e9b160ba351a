"""Tuning throughput: trials per minute of `kpipe tune`'s objective on the real data.

Runs the study `kpipe tune` runs (params.yaml's experiment sections, `tune.space`, its sampler
seed and MedianPruner) on the full validated training set, for `--minutes` per row:

- threads of one process (`--n-jobs`, one torch thread each when more than one) on an
  in-memory storage, so the figure is the cost of the trials, not of a storage;
- `--workers` separate processes (one torch thread each, sampler seeds tune.sampler_seed + i)
  sharing one study on each of `--storages`: a journal file, SQLite, and PostgreSQL (a
  throwaway cluster on 127.0.0.1, as in `make team-demo`, with `tune.heartbeat_s` as shipped).
  A process row counts from the first worker's first trial to the last worker's end, so
  process start-up (imports, reading the data) is left out, as for the thread rows.

It prints trials per minute with the completed / pruned / failed counts. Figures only: no
assertion, the machine's load decides them.

Run: .venv/bin/python benchmarks/tune_throughput.py [--minutes 2] [--n-jobs 1,2]
     [--workers 2] [--storages journal,sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import optuna
import pandas as pd
from _data import add_data_argument, load_clean_frames
from optuna.trial import TrialState

from pipeline.common.params import RUNTIME, RuntimeParams, parse_section, read_params
from pipeline.common.paths import ProjectPaths
from pipeline.common.runtime import set_threads
from pipeline.common.seed import seed_everything
from pipeline.house_prices.experiment import parse_experiment
from pipeline.team.services import ServiceUnavailable, running_postgres
from pipeline.tuning.study import load_tune, make_objective, make_study, open_storage, optimize, trial_params

ROOT = Path(__file__).resolve().parents[1]
HEADER = (f"{'setup':<28} {'minutes':>7} {'trials':>6} {'complete':>8} {'pruned':>6} {'failed':>6} "
          f"{'trials/min':>10} {'best':>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--minutes", type=float, default=2.0, help="Study length per row.")
    parser.add_argument("--n-jobs", default="1,2", help="Comma-separated thread counts (in-memory storage); "
                                                        "'' for none.")
    parser.add_argument("--workers", type=int, default=2, help="Worker processes per shared storage.")
    parser.add_argument("--storages", default="journal,sqlite,postgresql",
                        help="Shared storages for the process rows, comma-separated; '' for none.")
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
    print(HEADER)
    for n_jobs in (int(n) for n in args.n_jobs.split(",") if n):
        seed_everything(params.base.seed)
        set_threads(1 if n_jobs > 1 else parse_section(raw[RUNTIME], RuntimeParams, RUNTIME).threads)
        study = make_study(optuna.storages.InMemoryStorage(), f"bench-{n_jobs}", tune, tune.sampler_seed)
        start = time.perf_counter()
        # n_trials=None: run until the timeout; trials running at the timeout still finish.
        optimize(study, make_objective(raw, space, train, test), n_trials=None, timeout_s=args.minutes * 60,
                 n_jobs=n_jobs)
        print_row(f"in-memory, {n_jobs} thread{'s' * (n_jobs > 1)}", study, (time.perf_counter() - start) / 60)

    with tempfile.TemporaryDirectory(prefix="tune-bench-") as tmp:
        folder = Path(tmp)
        frames = (folder / "train.parquet", folder / "test.parquet")
        train.to_parquet(frames[0])
        test.to_parquet(frames[1])
        for kind in (s for s in args.storages.split(",") if s):
            label = f"{STORAGE_NAMES[kind]}, {args.workers} processes"
            try:
                with shared_storage(kind, folder) as url:
                    study, minutes = run_processes(url, kind, args, frames)
                    print_row(label, study, minutes)  # while the storage (a server) is still up
            except ServiceUnavailable as exc:  # PostgreSQL not installed: say so, go on
                print(f"{label:<28} skipped: {exc}")


STORAGE_NAMES = {"journal": "journal file", "sqlite": "SQLite", "postgresql": "PostgreSQL"}


@contextlib.contextmanager
def shared_storage(kind: str, folder: Path) -> Iterator[str]:
    """The storage spec `kpipe tune --storage` takes, for a fresh study of that kind."""
    if kind == "journal":
        yield str(folder / "bench.journal")
    elif kind == "sqlite":
        yield f"sqlite:///{folder / 'bench.db'}"
    elif kind == "postgresql":
        with running_postgres() as pg:
            yield pg.create_database("bench")
    else:
        raise ValueError(f"unknown storage {kind!r}: choose from {', '.join(STORAGE_NAMES)}")


def run_processes(url: str, kind: str, args: argparse.Namespace,
                  frames: tuple[Path, Path]) -> tuple[optuna.Study, float]:
    """`args.workers` processes on one study in `url`; the study and the minutes they ran."""
    raw = read_params(args.params)
    tune, _ = load_tune(raw)
    name = f"bench-{kind}"
    make_study(open_storage(url, ProjectPaths(ROOT)), name, tune, tune.sampler_seed)  # created once, joined
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        spans = list(pool.map(_worker, [url] * args.workers, [name] * args.workers, range(args.workers),
                              [args.minutes] * args.workers, [args.params] * args.workers,
                              [frames] * args.workers))
    minutes = (max(end for _, end in spans) - min(start for start, _ in spans)) / 60
    return optuna.load_study(study_name=name, storage=open_storage(url, ProjectPaths(ROOT))), minutes


def _worker(url: str, name: str, index: int, minutes: float, params_path: Path,
            frames: tuple[Path, Path]) -> tuple[float, float]:
    """One worker process: what `kpipe tune --storage url` runs, minus MLflow. Its wall-clock
    span, from its first trial to its end."""
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    raw = read_params(params_path)
    tune, space = load_tune(raw)
    params = parse_experiment(raw)
    seed_everything(params.base.seed)
    set_threads(1)  # one core per worker process
    train, test = pd.read_parquet(frames[0]), pd.read_parquet(frames[1])
    study = make_study(open_storage(url, ProjectPaths(ROOT), tune.heartbeat_s), name, tune,
                       tune.sampler_seed + index)
    start = time.time()
    optimize(study, make_objective(raw, space, train, test), n_trials=None, timeout_s=minutes * 60, n_jobs=1)
    return start, time.time()


def print_row(label: str, study: optuna.Study, minutes: float) -> None:
    counts = [len(study.get_trials(deepcopy=False, states=(s,)))
              for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
    best = f"{study.best_value:.4f}" if counts[0] else "-"
    total = len(study.get_trials(deepcopy=False))
    print(f"{label:<28} {minutes:>7.2f} {total:>6} {counts[0]:>8} {counts[1]:>6} {counts[2]:>6} "
          f"{total / minutes:>10.2f} {best:>8}", flush=True)


if __name__ == "__main__":
    main()
