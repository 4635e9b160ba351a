"""A competition the package has never met: `kpipe new` + `dvc repro` with the default params, timed,
and its CV score beside the trivial baseline and a plain LightGBM CV on the same folds.

Tables (real, offline): Auto MPG (`vega_datasets`, regression, scored by MAE), the raw Palmer
penguins (`palmerpenguins`, multiclass log-loss) and, for comparison with the flagship, House
Prices' own Kaggle zip through the generic path (log-RMSE, no domain module). Each runs in a
fresh folder with this venv's `kpipe` and `dvc`. The plain LightGBM reference is the script a
competitor would write first: `lightgbm.train` with the default `lightgbm` section's settings on
the raw numeric columns and pandas category codes, on the folds the `cv` stage uses.

Run: .venv/bin/python benchmarks/new_competition.py [--only cars,penguins,house-prices]
     [--markdown docs/results/new-competition.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import pandas as pd
from _report import add_markdown_argument, add_only_argument, chosen_tables, results_page

ROOT = Path(__file__).resolve().parents[1]
PAGE = "docs/results/new-competition.md"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tests"))  # the Kaggle layouts of the public tables

from pipeline.tabular.competition import read_competition
from pipeline.tabular.hooks import Hooks
from pipeline.tabular.modeling import Problem, fold_plan
from pipeline.tabular.params import DEFAULTS

TABLES = ("cars", "penguins", "house-prices")


def _run(cwd: Path, *args: str) -> float:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}
    start = time.perf_counter()
    done = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def plain_lightgbm(project: Path) -> float:
    """Mean fold score of plain LightGBM on the validated tables, on the cv stage's folds."""
    import lightgbm

    competition = read_competition(project / "competition.yaml")
    problem = Problem.of(competition, Hooks())
    train = pd.read_parquet(project / "data" / "interim" / "train.parquet")
    x = problem.features(train)
    for column in x.columns:
        if not pd.api.types.is_numeric_dtype(x[column]):
            x[column] = x[column].astype("category")
    y = problem.fit_target(train)
    p = DEFAULTS["lightgbm"]
    params = {"objective": {"regression": "regression", "binary": "binary", "multiclass": "multiclass"}[
        competition.task], "learning_rate": p["learning_rate"], "num_leaves": p["num_leaves"], "verbosity": -1,
        "seed": DEFAULTS["base"]["seed"], "deterministic": True, "force_row_wise": True}
    if competition.task == "multiclass":
        params["num_class"] = len(competition.classes)
    scores = []
    for fit, val in fold_plan(y, problem.task, DEFAULTS["cv"]["folds"], True, DEFAULTS["base"]["seed"]):
        booster = lightgbm.train(params, lightgbm.Dataset(x.iloc[fit], y[fit]), p["num_boost_round"])
        raw = booster.predict(x.iloc[val], raw_score=True)
        link = raw - np.logaddexp.reduce(raw, axis=1, keepdims=True) if competition.task == "multiclass" else raw
        scores.append(problem.score(y[val], link))
    return float(np.mean(scores))


def source(table: str, folder: Path) -> tuple[Path, list[str]]:
    from public_tables import cars, penguins

    if table == "cars":
        return cars(folder).folder, ["--metric", "mae"]
    if table == "penguins":
        return penguins(folder).folder, []
    return ROOT / "data" / "external" / "house-prices-advanced-regression-techniques.zip", ["--metric", "log_rmse"]


def measure(table: str, work: Path) -> dict[str, object]:
    print(f"{table}: kpipe new ...", flush=True)
    src, flags = source(table, work / f"{table}-download")
    new_s = _run(work, str(BIN / "kpipe"), "new", table, "--from", str(src), *flags)
    project = work / table
    print(f"{table}: dvc repro ...", flush=True)
    repro_s = _run(project, str(BIN / "dvc"), "repro")
    competition = read_competition(project / "competition.yaml")
    cv = json.loads((project / "metrics" / "competition" / "cv.json").read_text())
    m = competition.metric
    row = {"table": table, "task": competition.task, "rows": len(pd.read_csv(project / "data" / "raw" / "train.csv")),
           "metric": m, "cv": cv[f"{m}_mean"], "cv_std": cv[f"{m}_std"], "baseline": cv[f"baseline_{m}_mean"],
           "plain_lightgbm": plain_lightgbm(project), "new_s": new_s, "repro_s": repro_s,
           "dropped": next(c["count"] for c in cv["columns"] if c["role"] == "dropped")}
    print(f"{table}: done", flush=True)
    return row


def table_markdown(rows: list[dict[str, object]]) -> str:
    head = ("| table | task | train rows | metric | CV (default blend) | trivial baseline | plain LightGBM | "
            "kpipe new s | dvc repro s | text columns dropped |\n|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r['table']} | {r['task']} | {r['rows']} | {r['metric']} | {r['cv']:.4f} ± {r['cv_std']:.4f} "
                   f"| {r['baseline']:.4f} | {r['plain_lightgbm']:.4f} | {r['new_s']:.1f} | {r['repro_s']:.1f} "
                   f"| {r['dropped']} |\n" for r in rows)
    return head + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_only_argument(parser, TABLES)
    add_markdown_argument(parser, PAGE)
    args = parser.parse_args()
    tables = chosen_tables(parser, args.only, TABLES)
    with results_page(__file__, "A new competition: kpipe new and dvc repro with the defaults", __doc__,
                      args.markdown) as page, tempfile.TemporaryDirectory() as tmp:
        rows = [measure(t, Path(tmp)) for t in tables]
        page.markdown("## Results\n\n" + table_markdown(rows))


if __name__ == "__main__":
    main()
