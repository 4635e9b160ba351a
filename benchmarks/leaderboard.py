"""Leaderboard: repeated k-fold CV log-RMSE of our models against baselines, one run.

Every row is scored on the same folds (`cv.folds` x `--repeats` shuffles from `base.seed`, 3
repeats by default; with `--book-folds` the book's contiguous folds, once) over all 1460
training rows, with the same per-fold features: the shared feature module fit on each fold's
training rows with the `features` section of params.yaml (outliers dropped from training
folds, predictions capped at the neighbourhood's dearest sale, ...). Scores are the mean and
std over all folds of all repeats. Rows:
- the book's recipe (raw-price MSE, lr 5, plain standardization, train+test scaling);
- params.yaml's model (a stacked ensemble by default), the same members blended with equal
  weights, and a ridge meta-model on their log predictions, all from one run: the learned
  blends are scored by nested CV (weights fit on the other folds of the same repeat);
- every member of that ensemble on its own (so each family's best member is in the table);
- our linear and MLP (params.yaml with model.kind switched);
- baselines on log prices: scikit-learn's LassoCV and HistGradientBoosting, and LightGBM
  on the one-hot features with common settings.

Run: .venv/bin/python benchmarks/leaderboard.py [--data DIR] [--repeats N] [--book-folds]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
from _data import add_data_argument, load_clean_frames

from pipeline.common.params import RUNTIME, RuntimeParams, parse_section, read_params, with_overrides
from pipeline.common.runtime import set_threads
from pipeline.house_prices.experiment import EnsembleCV, parse_experiment, run_cv

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = {"linear": "torch linear", "mlp": "torch MLP", "lightgbm": "LightGBM"}
SKLEARN_FAMILIES = {"hist_gradient_boosting": "sklearn trees", "svr": "sklearn kernel",
                    "kernel_ridge": "sklearn kernel"}
BOOK = {"model.kind": "linear", "train.target": "raw", "train.loss": "mse", "train.lr": 5.0, "train.weight_decay": 0.0,
        "train.batch_size": 64, "train.epochs": 100, "train.schedule": "constant", "train.patience": 0,
        "features.fit_on": "train+test", "features.log_skewed": False, "features.derived": False,
        "features.ordinal": "none", "features.drop_outliers": False, "features.clip": False,
        "features.neighborhood_cap": False, "features.price_cap": False, "features.encoding": "onehot"}
BASELINES = {
    "baseline: sklearn LassoCV": {"model.kind": "sklearn", "sklearn.estimator": "lasso_cv"},
    "baseline: sklearn HistGradientBoosting": {"model.kind": "sklearn", "sklearn.estimator": "hist_gradient_boosting"},
    "baseline: LightGBM (one-hot, common settings)": {
        "model.kind": "lightgbm", "features.encoding": "onehot", "lightgbm.num_boost_round": 2000,
        "lightgbm.learning_rate": 0.01, "lightgbm.num_leaves": 8, "lightgbm.min_data_in_leaf": 10,
        "lightgbm.feature_fraction": 0.3, "lightgbm.bagging_fraction": 0.7, "lightgbm.bagging_freq": 1,
        "lightgbm.lambda_l1": 0.0, "lightgbm.lambda_l2": 1.0, "lightgbm.max_depth": -1},
}


def family(overrides: dict, raw: dict) -> str:
    """The model family a member belongs to, from its overrides over params.yaml."""
    merged = with_overrides(raw, overrides)
    kind = merged["model"]["kind"]
    if kind == "sklearn":
        return SKLEARN_FAMILIES.get(merged["sklearn"]["estimator"], "sklearn linear")
    return FAMILIES.get(kind, kind)


def describe(overrides: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--repeats", type=int, default=3, help="k-fold repeats, each with its own shuffle")
    parser.add_argument("--book-folds", action="store_true",
                        help="the book's contiguous folds (cv.shuffle: false, one repeat) instead of shuffled ones")
    args = parser.parse_args()
    raw = read_params(ROOT / "params.yaml")
    raw = with_overrides(raw, {"cv.shuffle": False, "cv.repeats": 1} if args.book_folds
                         else {"cv.repeats": args.repeats})
    base = parse_experiment(raw)
    set_threads(parse_section(raw[RUNTIME], RuntimeParams, RUNTIME).threads)
    train, test = load_clean_frames(args.data)
    single = {"model.members": []}

    rows: list[tuple[str, str, np.ndarray, float]] = []

    def add(name: str, group: str, scores: np.ndarray, seconds: float) -> None:
        rows.append((name, group, scores, seconds))
        print(f"  {name:<60} {scores.mean():.4f} ± {scores.std():.4f}", flush=True)

    def run(name: str, group: str, overrides: dict) -> None:
        start = time.perf_counter()
        add(name, group, run_cv(parse_experiment(with_overrides(raw, overrides)), train, test).fold_scores,
            time.perf_counter() - start)

    layout = (f"{base.cv.repeats} x shuffled from seed {base.base.seed}" if base.cv.shuffle
              else "contiguous, the book's")
    print(f"{base.cv.folds}-fold CV log-RMSE over all {len(train)} training rows ({layout}; "
          "same folds, same features for every row)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes of the inner CV of LassoCV
        start = time.perf_counter()
        result = run_cv(base, train, test)
        seconds = time.perf_counter() - start
        if isinstance(result, EnsembleCV):
            add(f"ours: params.yaml ensemble, {base.model.blend} blend", "ensemble", result.fold_scores, seconds)
            for method, scores in result.blends.items():
                if method != base.model.blend:
                    add(f"ours: the same members, {method} blend", "ensemble", scores, 0.0)
            for i, (overrides, member) in enumerate(zip(base.model.members, result.members, strict=True)):
                add(f"member{i}: {describe(overrides)}", family(overrides, raw), member.fold_scores, 0.0)
            print("  learned weights (fit on every out-of-fold row): "
                  + " ".join(f"member{i} {w:.3f}" for i, w in enumerate(result.weights)))
        else:
            add(f"ours: params.yaml {base.model.kind}", family({}, raw), result.fold_scores, seconds)
        run("ours: linear", "torch linear", {**single, "model.kind": "linear"})
        run("ours: mlp", "torch MLP", {**single, "model.kind": "mlp"})
        for name, overrides in BASELINES.items():
            run(name, "baseline", {**single, **overrides})
        run("book recipe (D2L 5.7)", "baseline", {**single, **BOOK})

    print()
    print(f"{'model':<62}{'family':<16}{'mean':>8}{'std':>8}{'seconds':>9}")
    for name, group, scores, seconds in sorted(rows, key=lambda r: r[2].mean()):
        print(f"{name[:61]:<62}{group:<16}{scores.mean():>8.4f}{scores.std():>8.4f}"
              f"{(f'{seconds:.1f}' if seconds else '-'):>9}")
    best = {}
    for name, group, scores, _ in rows:
        if group not in ("ensemble", "baseline") and scores.mean() < best.get(group, (None, np.inf))[1]:
            best[group] = (name, scores.mean())
    print("\nbest single model of each family: "
          + "; ".join(f"{group} {score:.4f} ({name})" for group, (name, score) in sorted(best.items())))


if __name__ == "__main__":
    main()
