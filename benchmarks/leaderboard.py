"""Leaderboard: 5-fold CV log-RMSE of our models against scikit-learn baselines, one run.

Every model is scored on the same folds (`cv.folds`, shuffled with `base.seed`; with
`--book-folds` the book's contiguous folds instead) over all 1460 training rows, with the same
per-fold features: the shared feature module fit on each fold's training rows with the
`features` section of params.yaml (log1p of skewed columns, derived features, ordinal scales,
clipping...), outliers dropped from training folds when
`features.drop_outliers` is set. Rows:
- the book's recipe (raw-price MSE, lr 5, plain standardization, train+test scaling);
- our default linear and MLP (params.yaml with model.kind switched);
- our best ensemble (params.yaml's ensemble if it is one, else linear + MLP + MLP seed 2);
- LassoCV, HistGradientBoostingRegressor, and LightGBM when installed, on log prices.

Run: .venv/bin/python benchmarks/leaderboard.py [--data DIR] [--book-folds]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import pandas as pd
from _data import add_data_argument, load_clean_frames

from pipeline.common.params import RUNTIME, RuntimeParams, parse_section, read_params, with_overrides
from pipeline.common.runtime import set_threads
from pipeline.house_prices.experiment import experiment_folds, parse_experiment, run_cv
from pipeline.house_prices.features import fit_transformer, training_rows, transform
from pipeline.house_prices.training import log_rmse

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ENSEMBLE = [{"model.kind": "linear"}, {"model.kind": "mlp"}, {"model.kind": "mlp", "base.seed": 2}]


def sklearn_cv(make, train: pd.DataFrame, test: pd.DataFrame, params) -> np.ndarray:
    """Fold scores of a scikit-learn regressor of log price on our per-fold features."""
    y = train["SalePrice"].to_numpy(dtype=np.float64)
    scores = []
    for train_idx, valid_idx in experiment_folds(params, len(train)):
        train_idx = training_rows(train, train_idx, params.features)
        transformer = fit_transformer(train.iloc[train_idx], test, params.features)
        x = transform(transformer, train).to_numpy()
        model = make().fit(x[train_idx], np.log(y[train_idx]))
        scores.append(log_rmse(np.exp(model.predict(x[valid_idx])), y[valid_idx]))
    return np.array(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--book-folds", action="store_true",
                        help="the book's contiguous folds (cv.shuffle: false) instead of shuffled ones")
    args = parser.parse_args()
    raw = read_params(ROOT / "params.yaml")
    if args.book_folds:
        raw = with_overrides(raw, {"cv.shuffle": False})
    base = parse_experiment(raw)
    set_threads(parse_section(raw[RUNTIME], RuntimeParams, RUNTIME).threads)
    train, test = load_clean_frames(args.data)
    ours = {kind: with_overrides(raw, {"model.kind": kind, "model.members": []}) for kind in ("linear", "mlp")}
    ensemble = raw if base.model.kind == "ensemble" else with_overrides(
        raw, {"model.kind": "ensemble", "model.members": DEFAULT_ENSEMBLE})
    book = with_overrides(raw, {
        "model.kind": "linear", "model.members": [], "train.target": "raw", "train.loss": "mse", "train.lr": 5.0,
        "train.weight_decay": 0.0, "train.batch_size": 64, "train.epochs": 100, "train.schedule": "constant",
        "train.patience": 0, "features.fit_on": "train+test", "features.log_skewed": False,
        "features.derived": False, "features.ordinal": "none", "features.drop_outliers": False,
        "features.clip": False, "features.neighborhood_cap": False})

    rows: list[tuple[str, np.ndarray, float]] = []

    def add(name: str, run) -> None:
        start = time.perf_counter()
        scores = run()
        rows.append((name, scores, time.perf_counter() - start))
        print(f"  {name:<34} {scores.mean():.4f} ± {scores.std():.4f}", flush=True)

    layout = f"shuffled with seed {base.base.seed}" if base.cv.shuffle else "contiguous, the book's"
    print(f"{base.cv.folds}-fold CV log-RMSE over all {len(train)} training rows ({layout} folds; "
          "same folds, same features for every row)")
    add("book recipe (D2L 5.7)", lambda: run_cv(parse_experiment(book), train, test).fold_scores)
    add("ours: linear", lambda: run_cv(parse_experiment(ours["linear"]), train, test).fold_scores)
    add("ours: mlp", lambda: run_cv(parse_experiment(ours["mlp"]), train, test).fold_scores)
    add("ours: ensemble", lambda: run_cv(parse_experiment(ensemble), train, test).fold_scores)

    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LassoCV

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        add("sklearn LassoCV", lambda: sklearn_cv(lambda: LassoCV(alphas=50, cv=5, max_iter=20000,
                                                                  random_state=0), train, test, base))
        add("sklearn HistGradientBoosting", lambda: sklearn_cv(lambda: HistGradientBoostingRegressor(
            learning_rate=0.05, max_iter=600, max_leaf_nodes=15, min_samples_leaf=10, l2_regularization=1.0,
            random_state=0), train, test, base))
        try:
            import lightgbm
        except ImportError:
            print("  (LightGBM not installed: pip install lightgbm to add its row)")
        else:
            add("LightGBM", lambda: sklearn_cv(lambda: lightgbm.LGBMRegressor(
                n_estimators=2000, learning_rate=0.01, num_leaves=8, min_child_samples=10, subsample=0.7,
                subsample_freq=1, colsample_bytree=0.3, reg_lambda=1.0, random_state=0, verbose=-1),
                train, test, base))

    print()
    print(f"{'model':<36}{'mean':>8}{'std':>8}   per fold{'':<28}{'seconds':>8}")
    for name, scores, seconds in sorted(rows, key=lambda r: r[1].mean()):
        folds = " ".join(f"{s:.4f}" for s in scores)
        print(f"{name:<36}{scores.mean():>8.4f}{scores.std():>8.4f}   {folds:<36}{seconds:>8.1f}")


if __name__ == "__main__":
    main()
