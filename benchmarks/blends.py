"""Blend kinds side by side: mean, greedy, stack and ridge, by nested CV on members' out-of-fold links.

Every kind is fit on the other folds' out-of-fold rows and scored on the held-out fold, the
folds the members' out-of-fold predictions come from (nested: no blend is scored on the rows
that chose it), and each kind's fold scores are compared, fold by fold, with `mean` and with
`greedy` (delta of the means; noise: one standard error of the paired per-fold differences,
the rule `kpipe tune` and `kpipe blend` use). Tables:
- House Prices: params.yaml's members on `--repeats` repeats of its folds (their out-of-fold
  log prices: the OOF library when it holds them, else computed), log-RMSE;
- through the generic core (`pipeline.tabular`), seven members of five families (LightGBM twice,
  the scikit-learn linear model twice, torch linear and MLP, CatBoost) on `--seeds` fold plans
  of 5 folds each: the Auto MPG cars (`vega_datasets`, regression, MAE), scikit-learn's diabetes
  (regression, RMSE) and breast cancer (binary, AUC: maximized) and the raw Palmer penguins
  (`palmerpenguins`, multiclass, log-loss).

The kinds, all in link space (log price, log-odds, log-probabilities):
- `best`: the single member that scores best on the fit rows (the reference a blend must beat);
- `mean` and `greedy`: `pipeline.tabular.blend` (equal weights; Caruana's forward selection with
  replacement, scored with the competition's metric);
- `stack`: convex weights (non-negative, summing to 1) minimizing the fit-space loss (squared
  error; the logistic or softmax cross-entropy), by SLSQP;
- `ridge`: an L2-penalized linear model with an intercept on the members' links (scikit-learn's
  RidgeCV, its penalty by leave-one-out; LogisticRegressionCV, its penalty by 5-fold CV on the
  fit rows), which may also rescale and shift what the members predict.
`stack` and `ridge` are written here, as a user would try them: they are not in the package.

Run: .venv/bin/python benchmarks/blends.py [--only house-prices,cars,diabetes,cancer,penguins]
     [--seeds 8] [--repeats 3] [--markdown docs/results/blends.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import pandas as pd
from _report import add_markdown_argument, add_only_argument, chosen_tables, markdown_table, results_page

from pipeline.tabular.blend import Scorer, combine, fit_weights
from pipeline.tabular.metrics import get_metric
from pipeline.tabular.noise import fold_noise

ROOT = Path(__file__).resolve().parents[1]
PAGE = "docs/results/blends.md"
sys.path.insert(0, str(ROOT / "tests"))  # the Kaggle layouts of the public tables
TABLES = ("house-prices", "cars", "diabetes", "cancer", "penguins")
KINDS = ("best", "mean", "greedy", "stack", "ridge")
PENALTIES = np.logspace(-3, 3, 13)
MEMBERS = [{"kind": "lightgbm"}, {"kind": "lightgbm", "lightgbm.num_leaves": 7, "lightgbm.learning_rate": 0.03},
           {"kind": "sklearn"}, {"kind": "sklearn", "sklearn.alpha": 30.0, "sklearn.C": 0.03},
           {"kind": "linear"}, {"kind": "mlp"}, {"kind": "catboost", "catboost.iterations": 300}]


@dataclass(frozen=True)
class Table:
    """Members' out-of-fold links on one table, and what scores them."""

    name: str
    task: str
    links: np.ndarray  # [members, repeats, N, *k]
    target: np.ndarray  # [N] the fit-space target: the link of the truth, or class indices
    scorer: Scorer
    splits: list[tuple[np.ndarray, np.ndarray]]
    repeat: np.ndarray  # [splits] the repeat (fold plan) of each split
    fit_mask: np.ndarray  # [N] the rows blends may learn from


Predict = Callable[[np.ndarray], np.ndarray]  # members' links [m, rows, *k] -> the blend's link


def _weights(kind: str) -> Callable[[Table, np.ndarray, np.ndarray], Predict]:
    def fit(table: Table, links: np.ndarray, rows: np.ndarray) -> Predict:
        weights = fit_weights(kind, links, table.scorer, rows)
        return lambda x: combine(weights, x)
    return fit


def fit_best(table: Table, links: np.ndarray, rows: np.ndarray) -> Predict:
    best = int(np.argmin([table.scorer.loss(link, rows) for link in links]))
    return lambda x: x[best]


def _log_softmax(z: np.ndarray) -> np.ndarray:
    return z - np.logaddexp.reduce(z, axis=-1, keepdims=True)


def _fit_loss(task: str, y: np.ndarray) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """The fit-space loss of a blended link and its gradient with respect to that link."""
    if task == "regression":
        return lambda z: (float(np.mean((z - y) ** 2)), 2 * (z - y) / len(y))
    if task == "binary":
        return lambda z: (float(np.mean(np.logaddexp(0, z) - y * z)), (1 / (1 + np.exp(-z)) - y) / len(y))
    def softmax_loss(z: np.ndarray) -> tuple[float, np.ndarray]:
        log_p = _log_softmax(z)
        onehot = np.eye(z.shape[1])[y]
        return float(-np.mean(log_p[np.arange(len(y)), y])), (np.exp(log_p) - onehot) / len(y)
    return softmax_loss


def fit_stack(table: Table, links: np.ndarray, rows: np.ndarray) -> Predict:
    from scipy.optimize import minimize

    m = links.shape[0]
    loss = _fit_loss(table.task, table.target[rows])

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad_z = loss(combine(w, links))
        return value, np.array([np.sum(grad_z * link) for link in links])

    result = minimize(objective, np.full(m, 1.0 / m), jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * m,
                      constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(m)}],
                      options={"ftol": 1e-12, "maxiter": 500})
    weights = np.clip(result.x, 0.0, None)
    weights = weights / weights.sum()
    return lambda x: combine(weights, x)


def fit_ridge(table: Table, links: np.ndarray, rows: np.ndarray) -> Predict:
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV

    def design(x: np.ndarray) -> np.ndarray:
        return np.moveaxis(x, 0, 1).reshape(x.shape[1], -1)  # [rows, members * k]

    y = table.target[rows]
    if table.task == "regression":
        ridge = RidgeCV(alphas=PENALTIES).fit(design(links), y)
        return lambda x: ridge.predict(design(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegressionCV(Cs=1 / PENALTIES, cv=5, max_iter=2000).fit(design(links), y)
    if table.task == "binary":
        return lambda x: model.decision_function(design(x))
    return lambda x: model.predict_log_proba(design(x))


FITS = {"best": fit_best, "mean": _weights("mean"), "greedy": _weights("greedy"), "stack": fit_stack,
        "ridge": fit_ridge}


def nested_scores(table: Table, kind: str) -> np.ndarray:
    """Each fold's score of `kind` fit on the other folds' rows of its repeat."""
    scores = np.empty(len(table.splits))
    for f, (_, valid) in enumerate(table.splits):
        r = table.repeat[f]
        rows = table.fit_mask.copy()
        rows[valid] = False
        fit = np.flatnonzero(rows)
        predict = FITS[kind](table, table.links[:, r, fit], fit)
        scores[f] = table.scorer.score(predict(table.links[:, r, valid]), valid)
    return scores


def house_prices(repeats: int) -> Table:
    from _data import load_clean_frames

    from pipeline.common.params import read_params, with_overrides
    from pipeline.house_prices.cv import repeat_of
    from pipeline.house_prices.experiment import blend_rows, experiment_folds, parse_experiment, run_cv
    from pipeline.house_prices.oof_library import OOFLibrary

    params = parse_experiment(with_overrides(read_params(ROOT / "params.yaml"), {"cv.repeats": repeats}))
    train, test = load_clean_frames(None)
    result = run_cv(params, train, test, library=OOFLibrary.for_project(ROOT))
    print(f"house-prices: {len(result.members)} members of params.yaml on {repeats} x {params.cv.folds} folds, "
          f"{result.hits} read from the OOF library")
    prices = result.prices
    splits = experiment_folds(params, len(train))
    links = np.log(np.clip(np.stack([m.oof_repeats for m in result.members]), 1.0, None))
    return Table("house-prices", "regression", links, np.log(prices), Scorer(get_metric("log_rmse"), prices, np.exp),
                 splits, repeat_of(splits, len(train)), blend_rows(params, train))


def _frame(name: str, folder: Path) -> tuple[pd.DataFrame, tuple[str, str, str, str]]:
    """A table's training rows and (id, target, task, metric)."""
    from sklearn.datasets import load_breast_cancer, load_diabetes

    if name in ("cars", "penguins"):
        import public_tables

        layout = getattr(public_tables, name)(folder / name)
        target = "Miles_per_Gallon" if name == "cars" else "Species"
        task, metric = ("regression", "mae") if name == "cars" else ("multiclass", "logloss")
        return pd.read_csv(layout.folder / "train.csv"), ("id", target, task, metric)
    data = (load_diabetes if name == "diabetes" else load_breast_cancer)(as_frame=True).frame
    data.insert(0, "id", np.arange(len(data)))
    if name == "diabetes":
        return data, ("id", "target", "regression", "rmse")
    data["target"] = np.where(data["target"] == 1, "benign", "malignant")
    return data, ("id", "target", "binary", "auc")


def generic(name: str, seeds: int, folder: Path) -> Table:
    from pipeline.tabular.competition import Competition, SubmissionFormat
    from pipeline.tabular.hooks import Hooks
    from pipeline.tabular.members import FAMILIES
    from pipeline.tabular.modeling import Problem, cross_validate, fold_plan
    from pipeline.tabular.params import DEFAULTS, parse_tabular

    frame, (id_column, target, task, metric) = _frame(name, folder)
    classes = tuple(sorted(frame[target].unique())) if task != "regression" else ()
    layout = {"regression": "values", "binary": "probability", "multiclass": "class_probabilities"}[task]
    columns = (id_column, *classes) if task == "multiclass" else (id_column, target)
    competition = Competition(name, id_column, target, task, metric,
                              SubmissionFormat(columns, layout, positive=classes[1] if task == "binary" else None),
                              {}, classes=classes)
    problem = Problem.of(competition, Hooks())
    y = problem.fit_target(frame)
    links, splits, repeat = [], [], []
    for seed in range(seeds):
        raw = {k: v for k, v in DEFAULTS.items() if k not in ("data", "runtime", "residuals", "tune")}
        raw = {**raw, "base": {"seed": seed}, "model": {"blend": "mean", "members": MEMBERS}}
        experiment = parse_tabular(raw, tuple(FAMILIES))
        result = cross_validate(problem, experiment, frame, frame.drop(columns=target).head(5))
        links.append(np.stack(result.member_oof))
        plan = fold_plan(y, problem.task, experiment.cv.folds, experiment.cv.shuffle, seed)
        splits += plan
        repeat += [seed] * len(plan)
    print(f"{name}: {len(frame)} rows, {len(MEMBERS)} members, {seeds} fold plan(s) of 5 folds")
    return Table(name, task, np.stack(links, axis=1), y, Scorer(problem.metric, problem.truth(y), problem.submitted),
                 splits, np.array(repeat), np.ones(len(frame), dtype=bool))


def compare(table: Table) -> list[list[object]]:
    """One row per kind: its nested mean and std, and its paired delta against mean and greedy."""
    metric = table.scorer.metric
    sign = metric.sign
    scores = {}
    for kind in KINDS:
        start = time.perf_counter()
        scores[kind] = nested_scores(table, kind)
        print(f"  {table.name} {kind:<7} {metric.name} {scores[kind].mean():.5f} ± {scores[kind].std():.5f} "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    rows = []
    for kind in KINDS:
        row: list[object] = [table.name, f"{metric.name} ({'max' if metric.greater_is_better else 'min'})", kind,
                             f"{scores[kind].mean():.5f}", f"{scores[kind].std():.5f}"]
        for against in ("mean", "greedy"):
            # delta and noise as losses: < -noise is better, whichever way the metric points
            delta = sign * float(scores[kind].mean() - scores[against].mean())
            noise = fold_noise(scores[kind], scores[against])
            verdict = "-" if kind == against else "better" if delta < -noise else "worse" if delta > noise else "tie"
            row += [f"{delta:+.5f} ± {noise:.5f}", verdict]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_only_argument(parser, TABLES)
    parser.add_argument("--seeds", type=int, default=8, help="fold plans per generic table (5 folds each)")
    parser.add_argument("--repeats", type=int, default=3, help="House Prices' repeats of its cv.folds")
    add_markdown_argument(parser, PAGE)
    args = parser.parse_args()
    tables = chosen_tables(parser, args.only, TABLES)
    with results_page(__file__, "Blend kinds by nested CV: mean, greedy, stack, ridge", __doc__,
                      args.markdown) as page, tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name in tables:
            table = house_prices(args.repeats) if name == "house-prices" else generic(name, args.seeds, Path(tmp))
            rows += compare(table)
        header = ["table", "metric", "kind", "nested mean", "std", "delta vs mean (loss) ± noise", "vs mean",
                  "delta vs greedy (loss) ± noise", "vs greedy"]
        print("\n" + pd.DataFrame(rows, columns=header).to_string(index=False))
        page.markdown("## Results\n\nDelta: the kind's mean fold loss (the score, negated for a metric to "
                      "maximize) minus the other's; better/worse: by more than the noise.\n\n"
                      + markdown_table(header, rows, right=[3, 4]))


if __name__ == "__main__":
    main()
