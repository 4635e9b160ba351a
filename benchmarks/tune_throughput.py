"""Tuning throughput: trials per minute of `kpipe tune`'s objective on the real data.

Runs the study `kpipe tune` runs (params.yaml's experiment sections, `tune.space`, its sampler
seed) on the full validated training set, for `--minutes` per row, one worker each:

- **today's path** (before the OOF library): every trial varies every dimension of the space,
  cross-validates every member, and nothing prunes an ensemble (no intermediate values);
- **library + pruning** (what `kpipe tune` runs now): each trial varies one group of the space
  (`tune.one_group_per_trial`), the members it leaves alone are read from an OOF library (a
  fresh one, so the row starts cold), and MedianPruner stops a trial whose member or epoch
  reports fall behind earlier trials' (`tune.pruner_*`).

Both rows start with the incumbent (params.yaml itself, as every study does) and print trials
per minute, the completed / pruned / failed counts and the best value found, then the ratio.
With `--storages`, also `--workers` processes sharing one study on a journal file, SQLite or
PostgreSQL (a throwaway cluster on 127.0.0.1, as in `make team-demo`), on today's objective
with the library. Figures only: no assertion, the machine's load decides them.

Run: .venv/bin/python benchmarks/tune_throughput.py [--minutes 10] [--workers 2]
     [--storages journal,sqlite,postgresql]
     [--markdown docs/results/tuning.md]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
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
from _report import add_markdown_argument, results_page
from optuna.trial import TrialState

from pipeline.common.params import RUNTIME, RuntimeParams, parse_section, read_params
from pipeline.common.paths import ProjectPaths
from pipeline.common.runtime import set_threads
from pipeline.common.seed import seed_everything
from pipeline.house_prices.cv import FoldFeatureCache
from pipeline.house_prices.experiment import parse_experiment
from pipeline.tabular.oof_library import OOFLibrary
from pipeline.team.services import ServiceUnavailable, running_postgres
from pipeline.tuning.storage import open_storage
from pipeline.tuning.study import (
    ensure_incumbent,
    load_tune,
    make_objective,
    make_study,
    optimize,
    trial_params,
)

ROOT = Path(__file__).resolve().parents[1]
PAGE = "docs/results/tuning.md"
HEADER = (f"{'setup':<28} {'minutes':>7} {'trials':>6} {'complete':>8} {'pruned':>6} {'failed':>6} "
          f"{'trials/min':>10} {'best':>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--minutes", type=float, default=10.0, help="Study length per row.")
    parser.add_argument("--workers", type=int, default=2, help="Worker processes per shared storage.")
    parser.add_argument("--storages", default="",
                        help="Shared storages for process rows, comma-separated (journal,sqlite,postgresql); "
                             "'' for none.")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    add_markdown_argument(parser, PAGE)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with results_page(__file__, "Tuning: trials per minute of kpipe tune's objective", __doc__, args.markdown):
        measure(args)


def measure(args: argparse.Namespace) -> None:

    raw = read_params(args.params)
    tune, space = load_tune(raw)
    raw = trial_params(raw, tune)  # as `kpipe tune` scores trials: on tune.cv_repeats repeats
    params = parse_experiment(raw)
    train, test = load_clean_frames(args.data)
    print(f"{len(train)} rows, {params.cv.repeats} x {params.cv.folds} folds, {len(params.members)} members, "
          f"{len(space.dimensions)} dimensions in {len(space.groups)} groups ({', '.join(space.groups)})")
    print(HEADER)
    rows = {}
    threads = parse_section(raw[RUNTIME], RuntimeParams, RUNTIME).threads
    for label, grouped, library, pruned in (("today's path", False, False, False),
                                            ("library + pruning", True, True, True)):
        seed_everything(params.base.seed)
        set_threads(threads)
        row_space = dataclasses.replace(space, one_group_per_trial=grouped)
        study = make_study(optuna.storages.InMemoryStorage(), f"bench-{label}", tune, tune.sampler_seed)
        if not pruned:
            study.pruner = optuna.pruners.NopPruner()
        with tempfile.TemporaryDirectory(prefix="oof-bench-") as folder:
            oof = OOFLibrary(Path(folder)) if library else None
            cache = FoldFeatureCache()
            start = time.perf_counter()
            ensure_incumbent(study, raw, train, test, "auto", cache, library=oof)
            # n_trials=None: run until the timeout; trials running at the timeout still finish.
            optimize(study, make_objective(raw, row_space, train, test, cache=cache, library=oof), n_trials=None,
                     timeout_s=max(args.minutes * 60 - (time.perf_counter() - start), 1), n_jobs=1)
            rows[label] = print_row(label, study, (time.perf_counter() - start) / 60)
    (old_rate, old_best), (new_rate, new_best) = rows["today's path"], rows["library + pruning"]
    print(f"ratio (library + pruning / today's path): {new_rate / old_rate:.1f}x the trials per minute; "
          f"best value {new_best:.5f} against {old_best:.5f} ({new_best - old_best:+.5f})")

    with tempfile.TemporaryDirectory(prefix="tune-bench-") as tmp:
        folder = Path(tmp)
        frames = (folder / "train.parquet", folder / "test.parquet")
        train.to_parquet(frames[0])
        test.to_parquet(frames[1])
        for kind in (s for s in args.storages.split(",") if s):
            label = f"{STORAGE_NAMES[kind]}, {args.workers} processes"
            try:
                with shared_storage(kind, folder) as url:
                    study, minutes = run_processes(url, kind, args, frames, folder / "oof")
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


def run_processes(url: str, kind: str, args: argparse.Namespace, frames: tuple[Path, Path],
                  library: Path) -> tuple[optuna.Study, float]:
    """`args.workers` processes on one study in `url`; the study and the minutes they ran."""
    raw = read_params(args.params)
    tune, _ = load_tune(raw)
    name = f"bench-{kind}"
    make_study(open_storage(url, ProjectPaths(ROOT)), name, tune, tune.sampler_seed)  # created once, joined
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        spans = list(pool.map(_worker, [url] * args.workers, [name] * args.workers, range(args.workers),
                              [args.minutes] * args.workers, [args.params] * args.workers,
                              [frames] * args.workers, [library] * args.workers))
    minutes = (max(end for _, end in spans) - min(start for start, _ in spans)) / 60
    return optuna.load_study(study_name=name, storage=open_storage(url, ProjectPaths(ROOT))), minutes


def _worker(url: str, name: str, index: int, minutes: float, params_path: Path,
            frames: tuple[Path, Path], library: Path) -> tuple[float, float]:
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
    optimize(study, make_objective(raw, space, train, test, library=OOFLibrary(library)), n_trials=None,
             timeout_s=minutes * 60, n_jobs=1)
    return start, time.time()


def print_row(label: str, study: optuna.Study, minutes: float) -> tuple[float, float]:
    """One row of the table; returns (trials per minute, best value)."""
    counts = [len(study.get_trials(deepcopy=False, states=(s,)))
              for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
    best = study.best_value if counts[0] else float("nan")
    total = len(study.get_trials(deepcopy=False))
    print(f"{label:<28} {minutes:>7.2f} {total:>6} {counts[0]:>8} {counts[1]:>6} {counts[2]:>6} "
          f"{total / minutes:>10.2f} {best:>8.5f}", flush=True)
    return total / minutes, best


if __name__ == "__main__":
    main()
