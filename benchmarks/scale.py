"""Sizes that competitions have: the generic tabular path on a Playground-sized table.

Playground Series tables hold 100,000 to 1,000,000 rows. This script generates one (seeded):
`--rows` training rows of 50 feature columns (35 float32 numerics, some skewed, ~2% NaN;
15 pandas `category` text columns of 5..200 levels, ~1% NaN), an integer `id` and a target
with a known nonlinear signal plus noise (`--task regression` or `binary`), and a test table
of `--test-rows` rows without the target. Then, each in its own child process (this script
with a hidden `--member` flag, so each peak memory is its own, read from the child's
`/proc/self/status` VmHWM; both children read the same parquet files and use the same
thread count):

- **plain LightGBM**, the reference: a hand-written CV script, `lightgbm.train` on the raw
  numeric columns and the category codes, params.yaml's `lightgbm` section, the folds of
  `pipeline.tabular.modeling.fold_plan` (same seed, same `cv.folds`), each held-out fold
  predicted (and the test rows, as a competitor's script would), scored with the same metric;
- **pipeline.tabular**: `cross_validate` of the default members (`model.members` of
  `DEFAULTS`; `--members` restricts them), the whole blend, scored as the CV stage scores it.

Seconds count the cross-validation alone (not reading the parquet files); peak GiB is the
child's whole life. The package child also reports where its time and memory went (features,
each member's fit and prediction), measured by timing probes wrapped around the families and
the feature functions inside that child: they change no result.

Run: .venv/bin/python benchmarks/scale.py [--rows 1000000] [--task regression|binary]
     [--members lightgbm,mlp] [--folds 5] [--threads 0] [--markdown docs/results/scale.md]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gc
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import pandas as pd
from _report import add_markdown_argument, results_page

ROOT = Path(__file__).resolve().parents[1]
PAGE = "docs/results/scale.md"
SCRIPT = Path(__file__).resolve()
N_NUMERIC, N_CATEGORICAL = 35, 15
ID, TARGET = "id", "target"
METRIC = {"regression": "rmse", "binary": "auc"}
GIB = 1 << 30
REFERENCE, PACKAGE = "reference", "package"


# --- the table -------------------------------------------------------------------------------
def make_table(rows: int, task: str, seed: int) -> pd.DataFrame:
    """`rows` rows: `id`, `num_00..num_34` (float32), `cat_00..cat_14` (category), `target`.

    The signal: a sine, a product, a square, a log of a skewed column, a threshold and a
    pairwise interaction of numerics, plus per-level effects of four categoricals (among them
    the 200-level one); Gaussian noise on top (about a third of the variance). `binary` draws
    the label from the logistic of the standardized signal. NaN is set after the signal is
    computed, so missingness carries no information (as in most Playground tables).
    """
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {ID: np.arange(rows, dtype=np.int32)}
    numeric = []
    for j in range(N_NUMERIC):
        z = rng.standard_normal(rows, dtype=np.float32)
        if j % 3 == 1:
            z = np.exp(0.75 * z)  # lognormal: skewed
        elif j % 7 == 2:
            z = rng.exponential(2.0, rows).astype(np.float32)  # skewed, non-negative
        numeric.append(z.astype(np.float32))
    x = numeric
    # x[0], x[3], x[6], x[12], x[15], x[18], x[21] are normal, x[1] lognormal, x[2] exponential
    signal = (np.sin(2.0 * x[0]) + 0.8 * x[3] * x[6] + 0.5 * x[12] ** 2 + 0.7 * np.log1p(x[1])
              + 0.6 * (x[2] > 2.0) - 0.4 * np.tanh(x[15] * x[18]) + 0.3 * x[21]).astype(np.float64)
    levels = np.linspace(5, 200, N_CATEGORICAL).round().astype(int)
    codes = []
    for j, k in enumerate(levels):
        weights = 1.0 / np.arange(1, k + 1) ** 0.8  # a long tail: some levels are rare
        c = rng.choice(k, rows, p=weights / weights.sum()).astype(np.int16)
        if j in (0, 4, 9, 14):
            signal += rng.normal(0.0, 0.5, k)[c]
        codes.append(c)
    signal -= signal.mean()
    noise = rng.standard_normal(rows) * 0.7 * signal.std()
    if task == "regression":
        target = (signal + noise).astype(np.float32)
    else:
        logit = 1.5 * (signal + noise) / np.std(signal + noise)
        target = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    for j, values in enumerate(numeric):
        values[rng.random(rows) < 0.02] = np.nan
        columns[f"num_{j:02d}"] = values
    for j, c in enumerate(codes):
        c[rng.random(rows) < 0.01] = -1
        columns[f"cat_{j:02d}"] = pd.Categorical.from_codes(c, categories=[f"c{j:02d}_{i:03d}" for i in
                                                                          range(levels[j])])
    columns[TARGET] = target
    return pd.DataFrame(columns)


def feature_columns(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    numeric = [c for c in frame.columns if c.startswith("num_")]
    return numeric, [c for c in frame.columns if c.startswith("cat_")]


# --- the children ----------------------------------------------------------------------------
@dataclass
class Probe:
    """Seconds and peak RSS of named phases; a thread samples VmRSS every 50 ms."""

    phase: str = "other"
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    peak_kib: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    running: bool = True

    def start(self) -> Probe:
        def sample() -> None:
            while self.running:
                phase = self.phase
                self.peak_kib[phase] = max(self.peak_kib[phase], _status_kib("VmRSS"))
                time.sleep(0.05)

        threading.Thread(target=sample, daemon=True).start()
        return self

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        outer, self.phase, start = self.phase, name, time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start
            self.phase = outer


def _status_kib(key: str) -> int:
    """A `/proc/self/status` field in KiB (VmHWM: the peak resident set so far)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _read_frames(work: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_parquet(work / "train.parquet"), pd.read_parquet(work / "test.parquet")


def run_reference(config: dict[str, Any], work: Path, probe: Probe) -> dict[str, Any]:
    """A plain LightGBM CV script: raw numerics and category codes, the same folds and metric."""
    import lightgbm

    from pipeline.tabular.metrics import get_metric

    with probe.timed("read parquet"):
        train, test = _read_frames(work)
    start = time.perf_counter()
    numeric, categorical = feature_columns(train)

    def codes_matrix(frame: pd.DataFrame) -> np.ndarray:
        x = np.empty((len(frame), len(numeric) + len(categorical)), dtype=np.float32)
        for i, c in enumerate(numeric):
            x[:, i] = frame[c].to_numpy()
        for i, c in enumerate(categorical):
            x[:, len(numeric) + i] = frame[c].cat.codes.to_numpy()  # -1 (NaN): LightGBM's missing
        return x

    x, x_test = codes_matrix(train), codes_matrix(test)
    y = train[TARGET].to_numpy(dtype=np.float64)
    del train, test
    folds = np.load(work / "folds.npz")
    task, metric = config["task"], get_metric(config["metric"])
    lgb = config["lightgbm"]
    params = {"objective": task, "learning_rate": lgb["learning_rate"], "num_leaves": lgb["num_leaves"],
              "min_data_in_leaf": lgb["min_data_in_leaf"], "feature_fraction": lgb["feature_fraction"],
              "lambda_l2": lgb["lambda_l2"], "seed": config["seed"], "num_threads": config["threads"],
              "verbosity": -1}
    cat_index = list(range(len(numeric), x.shape[1]))
    oof, test_pred, scores = np.zeros(len(y)), np.zeros(len(x_test)), []
    for f in range(config["folds"]):
        fit_rows, val_rows = folds[f"fit{f}"], folds[f"val{f}"]
        with probe.timed("lightgbm fit"):
            data = lightgbm.Dataset(x[fit_rows], y[fit_rows], categorical_feature=cat_index, free_raw_data=True)
            booster = lightgbm.train(params, data, num_boost_round=lgb["num_boost_round"])
        with probe.timed("lightgbm predict"):
            oof[val_rows] = booster.predict(x[val_rows])
            test_pred += booster.predict(x_test) / config["folds"]
        scores.append(metric.score(y[val_rows], oof[val_rows]))
        print(f"  reference fold {f + 1}/{config['folds']}: {metric.name} {scores[-1]:.5f}", flush=True)
    return {"seconds": time.perf_counter() - start, "fold_scores": scores, "member_scores": {}}


@dataclass(frozen=True)
class _TimedFamily:
    """A family whose fit (and its fitted member's predict) run inside the probe's phases."""

    inner: Any
    probe: Probe

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def encoding(self) -> str:
        return self.inner.encoding

    def fit(self, member: Any, x: np.ndarray, y: np.ndarray, task: Any, categorical: np.ndarray) -> Any:
        with self.probe.timed(f"{self.kind} fit"):
            return _TimedFitted(self.inner.fit(member, x, y, task, categorical), self.probe, self.kind)

    def load(self, directory: Path, spec: dict[str, Any], task: Any) -> Any:
        return self.inner.load(directory, spec, task)


@dataclass(frozen=True)
class _TimedFitted:
    inner: Any
    probe: Probe
    kind: str

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self.probe.timed(f"{self.kind} predict"):
            return self.inner.predict(x)


def _encoding_of(transformer: Any) -> str:
    return "native" if any(name == "codes" or part == "passthrough" for name, part, _ in transformer.transformers) \
        else "onehot"


def _install_probes(probe: Probe) -> None:
    """Timing probes on this child's families and feature functions (same calls, same results)."""
    from pipeline.tabular import modeling
    from pipeline.tabular.members import FAMILIES

    for kind in list(FAMILIES):
        FAMILIES[kind] = _TimedFamily(FAMILIES[kind], probe)
    fit_matrix, matrix = modeling.fit_matrix, modeling.matrix

    def timed_fit_matrix(transformer: Any, frame: pd.DataFrame, y: np.ndarray) -> np.ndarray:
        with probe.timed(f"features fit ({_encoding_of(transformer)})"):
            return fit_matrix(transformer, frame, y)

    def timed_matrix(transformer: Any, frame: pd.DataFrame) -> np.ndarray:
        with probe.timed(f"features transform ({_encoding_of(transformer)})"):
            return matrix(transformer, frame)

    modeling.fit_matrix, modeling.matrix = timed_fit_matrix, timed_matrix


def run_package(config: dict[str, Any], work: Path, probe: Probe) -> dict[str, Any]:
    """`cross_validate` of the chosen default members, as the generic CV stage runs it."""
    from pipeline.common.runtime import set_threads
    from pipeline.tabular.competition import Competition, SubmissionFormat
    from pipeline.tabular.hooks import Hooks
    from pipeline.tabular.members import FAMILIES
    from pipeline.tabular.modeling import Problem, cross_validate
    from pipeline.tabular.params import DEFAULTS, parse_tabular

    set_threads(config["threads"])
    _install_probes(probe)
    with probe.timed("read parquet"):
        train, test = _read_frames(work)
    start = time.perf_counter()
    problem = Problem.of(competition(config["task"], Competition, SubmissionFormat), Hooks())
    experiment = parse_tabular(experiment_params(DEFAULTS, config), tuple(FAMILIES))
    cv = cross_validate(problem, experiment, train, test)
    return {"seconds": time.perf_counter() - start, "fold_scores": [float(s) for s in cv.fold_scores],
            "member_scores": {m.kind: float(np.mean(s)) for m, s in zip(experiment.members, cv.member_scores,
                                                                        strict=True)}}


def competition(task: str, competition_cls: type, submission_cls: type) -> Any:
    """The synthetic table as a competition file would describe it."""
    binary = task == "binary"
    made = competition_cls(slug="synthetic-scale", id_column=ID, target=TARGET, task=task, metric=METRIC[task],
                           submission=submission_cls((ID, TARGET), "probability" if binary else "values",
                                                     1 if binary else None),
                           files={}, classes=(0, 1) if binary else ())
    made.check()
    return made


def experiment_params(defaults: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """DEFAULTS with this run's seed, folds and members (a kind DEFAULTS lacks gets no overrides)."""
    raw = copy.deepcopy(defaults)
    raw["base"]["seed"] = config["seed"]
    raw["cv"]["folds"] = config["folds"]
    specs = {m["kind"]: m for m in raw["model"]["members"]}
    raw["model"]["members"] = [specs.get(kind, {"kind": kind}) for kind in config["members"]]
    return raw


def child_main(which: str, work: Path) -> None:
    """One setup in this process; its result (and this process's peak RSS) as JSON in `work`."""
    logging.basicConfig(level=logging.INFO, format="  %(message)s", stream=sys.stdout, force=True)
    config = json.loads((work / "config.json").read_text())
    probe = Probe().start()
    result = (run_reference if which == REFERENCE else run_package)(config, work, probe)
    probe.running = False
    result.update(peak_gib=_status_kib("VmHWM") / (1 << 20), phases={
        name: [probe.seconds.get(name, 0.0), probe.peak_kib.get(name, 0) / (1 << 20)]
        for name in sorted(set(probe.seconds) | set(probe.peak_kib))})
    (work / f"{which}.json").write_text(json.dumps(result))


# --- the parent ------------------------------------------------------------------------------
def run_child(which: str, work: Path, threads: int) -> dict[str, Any] | None:
    """This script with `--member which` and every library on `threads` threads; None if it failed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-u", str(SCRIPT), "--member", which, "--work", str(work)], env=env,
                          cwd=ROOT)
    out = work / f"{which}.json"
    if done.returncode != 0 or not out.is_file():
        print(f"[{_now()}] {which} failed (exit status {done.returncode})", flush=True)
        return None
    return json.loads(out.read_text())


def _now() -> str:
    return datetime.datetime.now().strftime("%H:%M:%S")


def table(rows: list[tuple[str, dict[str, Any] | None]], n_rows: int, n_cols: int, folds: int,
          metric: str) -> str:
    lines = ["| setup | rows | cols | folds | seconds | peak GiB | CV metric | time ratio vs plain LightGBM "
             "| memory ratio |", "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    reference = rows[0][1]
    for label, r in rows:
        if r is None:
            lines.append(f"| {label} | {n_rows:,} | {n_cols} | {folds} | failed | | | | |")
            continue
        ratios = (f"{r['seconds'] / reference['seconds']:.2f}x | {r['peak_gib'] / reference['peak_gib']:.2f}x"
                  if reference else "n/a | n/a")
        lines.append(f"| {label} | {n_rows:,} | {n_cols} | {folds} | {r['seconds']:.1f} | {r['peak_gib']:.2f} "
                     f"| {metric} {np.mean(r['fold_scores']):.5f} | {ratios} |")
    return "\n".join(lines)


def breakdown(result: dict[str, Any]) -> str:
    lines = ["| phase (package child) | seconds | share of CV | peak RSS GiB while in it |",
             "| --- | ---: | ---: | ---: |"]
    timed = sum(s for name, (s, _) in result["phases"].items() if name != "read parquet")
    other = max(result["seconds"] - timed, 0.0)
    phases = {**result["phases"], "other (splits, blend, scoring)": [other, result["phases"].get("other", [0, 0])[1]]}
    phases.pop("other", None)
    for name, (seconds, peak) in sorted(phases.items(), key=lambda kv: -kv[1][0]):
        share = f"{seconds / result['seconds']:.0%}" if name != "read parquet" else "(not counted)"
        lines.append(f"| {name} | {seconds:.1f} | {share} | {f'{peak:.2f}' if peak else '(under 50 ms)'} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from pipeline.tabular.params import DEFAULTS

    kinds = [m["kind"] for m in DEFAULTS["model"]["members"]]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Training rows (default 1,000,000).")
    parser.add_argument("--test-rows", type=int, default=None, help="Test rows (default 10%% of --rows).")
    parser.add_argument("--task", choices=tuple(METRIC), default="regression",
                        help="regression (scored by rmse) or binary (scored by auc).")
    parser.add_argument("--seed", type=int, default=DEFAULTS["base"]["seed"],
                        help="Seeds the table, the folds and the models.")
    parser.add_argument("--folds", type=int, default=DEFAULTS["cv"]["folds"], help="cv.folds.")
    parser.add_argument("--members", default=",".join(kinds),
                        help=f"The package's members, comma-separated (default: DEFAULTS' {','.join(kinds)}).")
    parser.add_argument("--threads", type=int, default=0,
                        help="Threads of every library in both children (0: the cores free at the start).")
    add_markdown_argument(parser, PAGE)
    parser.add_argument("--member", choices=(REFERENCE, PACKAGE), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.members = [k for k in args.members.split(",") if k]
    if not args.member:  # the parent checks; a child imports nothing it does not run (torch)
        from pipeline.tabular.members import FAMILIES

        if not args.members or any(k not in FAMILIES for k in args.members):
            parser.error(f"--members: give kinds among {', '.join(FAMILIES)}, got {args.members}")
    if args.test_rows is None:
        args.test_rows = max(1, args.rows // 10)
    return args


def main() -> None:
    args = parse_args()
    if args.member:
        child_main(args.member, args.work)
        return
    with results_page(__file__, f"A million rows: the generic path on a Playground-sized table ({args.task})",
                      __doc__, args.markdown) as page:
        page.markdown(measure(args))


def measure(args: argparse.Namespace) -> str:
    """Both children on one generated table; the page's tables."""
    from pipeline.common.runtime import resolve_threads
    from pipeline.tabular.members import Task
    from pipeline.tabular.modeling import fold_plan
    from pipeline.tabular.params import DEFAULTS

    threads = resolve_threads(args.threads)
    n_cols = N_NUMERIC + N_CATEGORICAL
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        table_ = make_table(args.rows + args.test_rows, args.task, args.seed)
        train = table_.iloc[:args.rows]
        train.to_parquet(work / "train.parquet")
        table_.iloc[args.rows:].drop(columns=[TARGET]).to_parquet(work / "test.parquet")
        y = train[TARGET].to_numpy()
        splits = fold_plan(y, Task(args.task, 2 if args.task == "binary" else 0), args.folds,
                           DEFAULTS["cv"]["shuffle"], args.seed)
        np.savez(work / "folds.npz", **{f"fit{f}": a for f, (a, _) in enumerate(splits)},
                 **{f"val{f}": b for f, (_, b) in enumerate(splits)})
        memory = table_.memory_usage(deep=True).sum() / GIB
        del table_, train, y, splits
        gc.collect()
        print(f"[{_now()}] table: {args.rows:,} training + {args.test_rows:,} test rows x {n_cols} features "
              f"({N_NUMERIC} float32, {N_CATEGORICAL} category), {args.task}, {memory:.2f} GiB in memory, "
              f"made in {time.perf_counter() - start:.1f} s; {threads} thread(s) per child", flush=True)
        config = {"task": args.task, "metric": METRIC[args.task], "seed": args.seed, "folds": args.folds,
                  "threads": threads, "members": args.members, "lightgbm": DEFAULTS["lightgbm"]}
        (work / "config.json").write_text(json.dumps(config))
        rows = []
        for which, label in ((REFERENCE, "plain LightGBM (lightgbm.train, raw values + category codes)"),
                             (PACKAGE, f"pipeline.tabular cross_validate ({' + '.join(args.members)}, "
                                      f"{DEFAULTS['model']['blend']} blend)")):
            print(f"[{_now()}] start {which}: {label}", flush=True)
            result = run_child(which, work, threads)
            if result:
                print(f"[{_now()}] finish {which}: {result['seconds']:.1f} s, peak {result['peak_gib']:.2f} GiB, "
                      f"{METRIC[args.task]} {np.mean(result['fold_scores']):.5f}", flush=True)
            rows.append((label, result))
    text = table(rows, args.rows, n_cols, args.folds, METRIC[args.task])
    package = rows[1][1]
    if package:
        scores = ", ".join(f"{k} {v:.5f}" for k, v in package["member_scores"].items())
        text += (f"\n\nfold scores: reference {_scores(rows[0][1])}; package {_scores(package)}"
                 f"\npackage members alone (mean over folds): {scores}\n\n{breakdown(package)}")
    return "## Results\n\n" + text


def _scores(result: dict[str, Any] | None) -> str:
    return " ".join(f"{s:.5f}" for s in result["fold_scores"]) if result else "failed"


if __name__ == "__main__":
    main()
