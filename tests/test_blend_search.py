"""`kpipe blend`'s choice, shared by every project: every blend kind scored nested on real House
Prices candidates, judged against an incumbent by the tuner's paired fold-noise rule in the
metric's direction, reported as a table, and written as params.yaml members."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import plain_features

from pipeline.house_prices.cv import cross_validate_regressor, repeat_of, split_folds
from pipeline.house_prices.experiment import log_links, price_scorer
from pipeline.tabular.blend import BLEND_KINDS, fit_repeats, search_blends
from pipeline.tabular.metrics import get_metric
from pipeline.tuning.blend_library import beats_incumbent, member_overrides, table


class _Linear:
    """A scikit-learn linear model behind the members' `fit(x, y, categorical)` / `predict(x)`."""

    def __init__(self, estimator: object) -> None:
        self.estimator = estimator

    def fit(self, x: np.ndarray, y: np.ndarray, categorical: np.ndarray) -> _Linear:
        self.estimator.fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict(x), dtype=np.float64)


@pytest.fixture(scope="module")
def candidates(clean_frames):
    """Four linear members of House Prices' first 400 rows on 2 x 4 folds: (results, names, splits)."""
    from sklearn.linear_model import Lasso, Ridge

    train, _ = clean_frames
    small = train.head(400).reset_index(drop=True)
    splits = split_folds(len(small), 4, seed=0, repeats=2)
    makers = {"ridge_10": lambda: _Linear(Ridge(alpha=10.0)), "ridge_1000": lambda: _Linear(Ridge(alpha=1000.0)),
              "lasso_0.001": lambda: _Linear(Lasso(alpha=0.001, max_iter=5000)),
              "lasso_0.05": lambda: _Linear(Lasso(alpha=0.05, max_iter=5000))}
    results = [cross_validate_regressor(small, None, plain_features(), make, splits) for make in makers.values()]
    return results, list(makers), splits


def _search(results, splits, fit_mask=None):
    prices = results[0].prices
    mask = np.ones(len(prices), dtype=bool) if fit_mask is None else fit_mask
    links = log_links(np.stack([r.oof_repeats for r in results]))
    return search_blends(links, price_scorer(prices), splits, repeat_of(splits, len(prices)), mask), links


def test_a_search_over_real_candidates_scores_every_kind_nested_and_ships_the_winner(candidates) -> None:
    results, names, splits = candidates
    keep = np.ones(len(results[0].prices), dtype=bool)
    keep[:20] = False  # rows the members dropped: scored, but they steer no weights
    choice, links = _search(results, splits, keep)
    assert set(choice.fold_scores) == set(BLEND_KINDS) and choice.fold_scores["mean"].shape == (8,)
    assert choice.kind == min(choice.fold_scores, key=lambda kind: choice.fold_scores[kind].mean())
    np.testing.assert_array_equal(choice.weights, fit_repeats(choice.kind, links, price_scorer(results[0].prices),
                                                              np.flatnonzero(keep)))
    assert choice.mean < min(r.mean for r in results) * 1.02  # no worse than the best member, about
    assert choice.oof.shape == (2, len(keep)) and choice.weights.sum() == pytest.approx(1.0)
    # The heavy-regularized ridge is the weakest member: greedy gives it the least weight.
    greedy = fit_repeats("greedy", links, price_scorer(results[0].prices), np.arange(len(keep)))
    assert greedy[1] == greedy.min()


def test_a_blend_scoring_like_the_incumbent_is_not_better_and_a_clearly_better_one_is() -> None:
    rmse, auc = get_metric("rmse"), get_metric("auc")
    incumbent = np.array([0.120, 0.131, 0.118, 0.125, 0.140])
    assert beats_incumbent(incumbent, incumbent, rmse) == (False, 0.0, 0.0)
    lucky = incumbent + np.array([-0.006, 0.004, -0.005, 0.003, -0.001])  # lower, within the noise
    better, delta, noise = beats_incumbent(lucky, incumbent, rmse)
    assert delta < 0 and not better and noise > -delta
    clear = incumbent - 0.004 + np.array([0.0005, -0.0005, 0.0, 0.0003, -0.0003])  # lower on every fold
    better, delta, noise = beats_incumbent(clear, incumbent, rmse)
    assert better and delta == pytest.approx(-0.004) and noise < 0.001
    # A metric to maximize: the same clear drop is worse, a clear rise better.
    assert not beats_incumbent(clear, incumbent, auc)[0]
    assert beats_incumbent(2 * incumbent - clear, incumbent, auc)[0]


def test_the_table_lists_kinds_verdicts_and_the_chosen_candidates(candidates) -> None:
    results, names, splits = candidates
    choice, _ = _search(results, splits)
    metric = get_metric("log_rmse")
    report = table(choice, names, metric, results[0].fold_scores)
    lines = report.splitlines()
    assert lines[0].split() == ["blend", "log_rmse", "std", "delta", "noise", "verdict"]
    assert any(line.startswith(choice.kind) and "<- chosen" in line for line in lines)
    assert f"{choice.kind}: {len(choice.selected)} of 4 candidates" in report
    for c in choice.selected:
        assert f"{choice.weights[c]:.4f}  {names[c]}" in report
    assert "delta" not in table(choice, names, metric)


def test_a_library_member_is_written_as_the_keys_it_differs_in() -> None:
    raw = {"base": {"seed": 42}, "sklearn": {"estimator": "ridge", "lasso": {"alpha": 0.001}},
           "train": {"hidden": [64], "lr": 0.01}}
    ingredients = {"kind": "sklearn", "seed": 1, "sklearn": {"estimator": "lasso", "lasso": {"alpha": 0.001}},
                   "train": {"hidden": (64,), "lr": 0.02}}
    assert member_overrides(ingredients, raw, "model.kind") == {
        "model.kind": "sklearn", "base.seed": 1, "sklearn.estimator": "lasso", "train.lr": 0.02}
    assert member_overrides({**ingredients, "seed": 42}, raw, "kind") == {
        "kind": "sklearn", "sklearn.estimator": "lasso", "train.lr": 0.02}
