"""Leaderboard: repeated k-fold CV log-RMSE of our models against baselines, one run.

Every row is scored on the same folds (`cv.folds` x `--repeats` shuffles from `base.seed`, 3
repeats by default; with `--book-folds` the book's contiguous folds, once) over all 1460
training rows, with the same per-fold features: the shared feature module fit on each fold's
training rows with the `features` section of params.yaml (outliers dropped from training
folds, predictions capped at the neighbourhood's dearest sale, ...). Scores are the mean and
std over all folds of all repeats. Rows:
- the book's recipe (raw-price MSE, lr 5, plain standardization, train+test scaling);
- params.yaml's model (an ensemble), the same members blended by every other blend kind
  (`pipeline/tabular/blend.py`), all from one run: the learned blends are scored by nested CV
  (weights fit on the other folds of the same repeat);
- every member of that ensemble on its own (so each family's best member is in the table);
- our linear and MLP (params.yaml with model.kind switched);
- baselines on log prices: scikit-learn's LassoCV and HistGradientBoosting, and LightGBM
  on the one-hot features with common settings.

Then `kpipe blend`'s choice from the OOF library (`--blend`, on by default): every family
candidate below and the trials of a short study of `tune.space` are cross-validated into the
library (reads where it already holds them: the project's library, shared with `dvc repro`
and `kpipe tune`), the blend methods choose among all entries on these folds, scored nested,
and the winner is compared with the previous default (issue 13's five members, greedy weights
since the stacked blend was removed) fold by fold.
Then params.yaml's own blend (what `dvc repro` ships) against those five, on this layout and on
two fold layouts no choice was made on (`--check-seeds`).

Run: .venv/bin/python benchmarks/leaderboard.py [--data DIR] [--repeats N] [--book-folds]
     [--no-blend] [--study-trials 12] [--check-seeds 7,2024]
     [--markdown docs/results/leaderboard.md]
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
from _report import add_markdown_argument, results_page

from pipeline.common.params import RUNTIME, RuntimeParams, parse_section, read_params, with_overrides
from pipeline.common.runtime import set_threads
from pipeline.house_prices.experiment import EnsembleCV, parse_experiment, run_cv

ROOT = Path(__file__).resolve().parents[1]
PAGE = "docs/results/leaderboard.md"
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
    parser.add_argument("--no-blend", dest="blend", action="store_false", help="skip the OOF library blend")
    parser.add_argument("--only-blend", action="store_true", help="only the OOF library blend")
    parser.add_argument("--study-trials", type=int, default=12, help="trials of tune.space added to the library")
    parser.add_argument("--check-seeds", default="7,2024", help="fold layouts (base.seed) used for no choice")
    add_markdown_argument(parser, PAGE)
    args = parser.parse_args()
    with results_page(__file__, "House Prices: the default blend, its members and baselines", __doc__, args.markdown):
        measure(args)


def measure(args: argparse.Namespace) -> None:
    raw = read_params(ROOT / "params.yaml")
    raw = with_overrides(raw, {"cv.shuffle": False, "cv.repeats": 1} if args.book_folds
                         else {"cv.repeats": args.repeats})
    base = parse_experiment(raw)
    set_threads(parse_section(raw[RUNTIME], RuntimeParams, RUNTIME).threads)
    train, test = load_clean_frames(args.data)
    single = {"model.members": []}
    if args.only_blend:
        library_blend(raw, train, test, args)
        return

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
    if args.blend and not args.book_folds:
        library_blend(raw, train, test, args)


# The previous default (issue 13): the five members the OOF library blend is measured against,
# their weights chosen by greedy selection (issue 13 stacked them; that blend scored level with greedy).
REFERENCE = {"model.kind": "ensemble", "model.blend": "greedy", "model.members": [
    {"model.kind": "mlp"}, {"model.kind": "mlp", "features.ordinal": "none", "features.log_skewed": False},
    {"model.kind": "sklearn", "sklearn.estimator": "lasso"}, {"model.kind": "sklearn", "sklearn.estimator": "svr"},
    {"model.kind": "lightgbm", "features.encoding": "native"}]}
NATIVE = {"features.encoding": "native"}
# Candidates for the library, beside the reference's members: other seeds, shapes and feature
# views of each family, and the families the reference lacks.
CANDIDATES = [
    {"model.kind": "mlp", "base.seed": 1}, {"model.kind": "mlp", "base.seed": 2},
    {"model.kind": "mlp", "model.hidden": [128], "model.dropout": 0.4},
    {"model.kind": "mlp", "model.hidden": [256], "model.dropout": 0.5},
    {"model.kind": "mlp", "features.derived": False}, {"model.kind": "mlp", "train.loss": "mse"},
    {"model.kind": "mlp", "model.linear_skip": False}, {"model.kind": "linear"},
    {"model.kind": "sklearn", "sklearn.estimator": "lasso", "sklearn.lasso.alpha": 0.0003},
    {"model.kind": "sklearn", "sklearn.estimator": "lasso", "sklearn.lasso.alpha": 0.001},
    {"model.kind": "sklearn", "sklearn.estimator": "lasso", "features.ordinal": "none"},
    {"model.kind": "sklearn", "sklearn.estimator": "elastic_net"},
    {"model.kind": "sklearn", "sklearn.estimator": "ridge"},
    {"model.kind": "sklearn", "sklearn.estimator": "kernel_ridge"},
    {"model.kind": "sklearn", "sklearn.estimator": "svr", "sklearn.svr.C": 50.0},
    {"model.kind": "sklearn", "sklearn.estimator": "svr", "features.ordinal": "none"},
    {"model.kind": "sklearn", "sklearn.estimator": "hist_gradient_boosting", **NATIVE},
    {"model.kind": "lightgbm"},
    {"model.kind": "lightgbm", "lightgbm.num_leaves": 4, "lightgbm.learning_rate": 0.02, **NATIVE},
    {"model.kind": "lightgbm", "lightgbm.feature_fraction": 0.15, **NATIVE},
    {"model.kind": "catboost", **NATIVE}, {"model.kind": "catboost"},
    {"model.kind": "catboost", "catboost.depth": 5, "catboost.rsm": 0.5, **NATIVE},
    {"model.kind": "catboost", "base.seed": 1, **NATIVE},
]


def library_blend(raw: dict, train, test, args: argparse.Namespace) -> None:
    """Fill the OOF library with the candidates and a short study, choose a blend as `kpipe
    blend` does, and check it against the reference on this layout and on `--check-seeds`."""
    import optuna

    from pipeline.common.paths import ProjectPaths
    from pipeline.house_prices.cv import FoldFeatureCache, repeat_of
    from pipeline.house_prices.experiment import blend_rows, experiment_folds, log_links, price_scorer
    from pipeline.tabular.blend import search_blends
    from pipeline.tabular.metrics import get_metric
    from pipeline.tabular.oof_library import OOFLibrary
    from pipeline.tuning.blend_library import (
        BlendOptions,
        beats_incumbent,
        candidate_entries,
        member_overrides,
        table,
    )
    from pipeline.tuning.study import load_tune, make_objective, make_study, optimize

    library = OOFLibrary.for_project(ProjectPaths(ROOT).root)
    reference_raw = with_overrides(raw, REFERENCE)
    reference = parse_experiment(reference_raw)
    print(f"\nOOF library blend ({library.root}), {reference.cv.repeats} x {reference.cv.folds} folds from seed "
          f"{reference.base.seed}")
    start = time.perf_counter()
    cache = FoldFeatureCache()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = run_cv(reference, train, test, cache=cache, library=library)
        for overrides in CANDIDATES:
            run_cv(parse_experiment(with_overrides(reference_raw, {"model.kind": "ensemble", "model.blend": "mean",
                                                                   "model.members": [overrides]})),
                   train, test, cache=cache, library=library)
        tune, space = load_tune(raw)
        study = make_study(optuna.storages.InMemoryStorage(), "leaderboard", tune, tune.sampler_seed)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        optimize(study, make_objective(raw, space, train, test, cache=cache, library=library),
                 n_trials=args.study_trials, timeout_s=None, n_jobs=1)
    first = library.get(ref.keys[0])
    assert first is not None  # run_cv just stored or read it
    entries = candidate_entries(library, first.manifest["plan_key"], first.manifest["data_key"], BlendOptions(),
                                ProjectPaths(ROOT), ref.keys)
    print(f"  {len(entries)} distinct members in the library on these folds ({time.perf_counter() - start:.0f} s "
          "to fill and read)")
    splits = experiment_folds(reference, len(train))
    choice = search_blends(log_links(np.stack([e.arrays()["oof_repeats"] for e in entries])),
                           price_scorer(ref.prices), splits, repeat_of(splits, len(train)),
                           blend_rows(reference, train))
    names = [f"{e.key[:8]} {e.manifest['member']} "
             f"{describe(member_overrides(e.manifest['params'], raw, 'model.kind'))}"[:90] for e in entries]
    metric = get_metric("log_rmse")
    print(table(choice, names, metric, ref.fold_scores))
    better, delta, noise = beats_incumbent(choice.scores, ref.fold_scores, metric)
    print(f"  the library's blend against the five of issue 13: {delta:+.5f} (fold noise ±{noise:.5f}): "
          f"{'better by more than the noise' if better else 'not better'}; {len(choice.selected)} members")

    # The shipped blend (params.yaml's model section), against the five of issue 13 on this layout
    # and on layouts no choice was made on.
    shipped = parse_experiment(raw)
    print(f"\nparams.yaml's blend ({shipped.model.blend} of {len(shipped.members)}: "
          + ", ".join(describe(m) for m in raw["model"]["members"]) + ")")
    rows = []
    for seed in (reference.base.seed, *(int(s) for s in args.check_seeds.split(",") if s)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = run_cv(parse_experiment(with_overrides(raw, {"base.seed": seed})), train, test, library=library)
            theirs = run_cv(parse_experiment(with_overrides(reference_raw, {"base.seed": seed})), train, test,
                            library=library)
        label = f"seed {seed}" + (" (chosen on)" if seed == reference.base.seed else " (no choice)")
        rows.append((label, ours.fold_scores, theirs.fold_scores))
    print(f"{'layout':<24}{'shipped':>9}{'five of 13':>12}{'delta':>10}{'noise':>9}  verdict")
    for label, ours, theirs in rows:
        better, delta, noise = beats_incumbent(ours, theirs, metric)
        print(f"{label:<24}{ours.mean():>9.4f}{theirs.mean():>12.4f}{delta:>+10.4f}{noise:>9.4f}  "
              f"{'better by more than the noise' if better else 'not better'}")


if __name__ == "__main__":
    main()
