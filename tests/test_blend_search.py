"""Choosing a blend from many candidates: every method scored nested, the lowest nested mean of
the weight methods wins, its weights are fit on every fit row, and it is judged against an
incumbent by the tuner's paired fold-noise rule."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import plain_features

from pipeline.house_prices.blend import GREEDY_ROUNDS, blend_weights
from pipeline.house_prices.blend_search import BlendChoice, beats_incumbent, search_blends, table
from pipeline.house_prices.cv import cross_validate_regressor, repeat_of, split_folds

N = 600
RNG = np.random.default_rng(7)
LOG_Y = RNG.normal(12.0, 0.4, N)
PRICES = np.exp(LOG_Y)


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _candidates(noises: tuple[float, ...], repeats: int = 1, seed: int = 0) -> np.ndarray:
    """`[C, repeats, N]` log predictions: a shared error, then each candidate's own."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.04, (repeats, N))
    return np.stack([LOG_Y + common + rng.normal(0, s, (repeats, N)) for s in noises])


def _search(log_oof: np.ndarray, folds: int = 3, repeats: int = 1, fit_mask: np.ndarray | None = None,
            **kwargs: object) -> tuple[BlendChoice, list]:
    splits = split_folds(N, folds, seed=0, repeats=repeats)
    mask = np.ones(N, dtype=bool) if fit_mask is None else fit_mask
    return search_blends(np.exp(log_oof), PRICES, splits, repeat_of(splits, N), mask, **kwargs), splits


def test_the_winner_has_the_lowest_nested_mean_and_ships_a_few_candidates() -> None:
    # Two accurate candidates among eight noisy ones: averaging all ten is worse than choosing.
    log_oof = _candidates((0.08, 0.09) + (0.4,) * 8)
    choice, _ = _search(log_oof)
    assert set(choice.fold_scores) == {"mean", "stack", "ridge_meta", "greedy"}
    weight_methods = ("mean", "stack", "greedy")
    assert choice.method == min(weight_methods, key=lambda m: choice.fold_scores[m].mean())
    assert choice.method != "mean" and choice.mean < choice.fold_scores["mean"].mean()
    assert set(choice.selected) <= set(range(10)) and {0, 1} <= set(choice.selected)
    assert choice.weights[choice.selected].sum() == pytest.approx(1.0)
    assert (choice.weights[2:] < 0.1).all()


def test_candidates_are_chosen_nested_so_an_oracle_on_one_fold_does_not_help_it() -> None:
    """Candidate 3 is exact on fold 0's rows and wildly wrong elsewhere: weights that never saw fold 0
    give it (almost) nothing there, so fold 0 scores what the honest candidates do, not ~0."""
    log_oof = _candidates((0.1, 0.12, 0.15, 0.1))
    splits = split_folds(N, 3, seed=0)
    valid = splits[0][1]
    oracle = LOG_Y + RNG.normal(0, 1.0, N)
    oracle[valid] = LOG_Y[valid]
    log_oof[3, 0] = oracle
    choice, _ = _search(log_oof)
    honest, _ = _search(log_oof[:3])
    for method in ("stack", "greedy"):
        assert choice.fold_scores[method][0] == pytest.approx(honest.fold_scores[method][0], rel=0.05)
        assert choice.fold_scores[method][0] > 0.05


def test_the_shipped_weights_are_fit_on_every_fit_row_of_every_repeat() -> None:
    log_oof = _candidates((0.1, 0.12, 0.2, 0.3), repeats=2)
    keep = np.ones(N, dtype=bool)
    keep[:20] = False  # rows the members dropped: scored, but they steer no weights
    choice, _ = _search(log_oof, repeats=2, fit_mask=keep)
    assert choice.fold_scores["mean"].shape == (6,) and choice.oof.shape == (2, N)
    np.testing.assert_array_equal(choice.weights, blend_weights(choice.method, np.exp(log_oof), PRICES,
                                                                np.flatnonzero(keep)))
    for method in ("stack", "greedy"):
        forced, _ = _search(log_oof, repeats=2, fit_mask=keep, methods=(method,))
        assert forced.method == method
        np.testing.assert_array_equal(forced.weights, blend_weights(method, np.exp(log_oof), PRICES,
                                                                    np.flatnonzero(keep)))
    greedy, _ = _search(log_oof, repeats=2, fit_mask=keep, methods=("greedy",))
    np.testing.assert_allclose(greedy.weights * GREEDY_ROUNDS, np.round(greedy.weights * GREEDY_ROUNDS), atol=1e-9)


def test_the_regression_meta_model_is_reported_but_never_shipped() -> None:
    # Every candidate biased by +0.1: only ridge_meta's intercept can remove it, so it scores best.
    log_oof = _candidates((0.05, 0.06, 0.07)) + 0.1
    choice, _ = _search(log_oof)
    means = {method: scores.mean() for method, scores in choice.fold_scores.items()}
    assert means["ridge_meta"] < min(means["mean"], means["stack"], means["greedy"])
    assert choice.method != "ridge_meta"
    with pytest.raises(ValueError, match="nothing to ship"):
        _search(log_oof, methods=("ridge_meta",))


def test_non_finite_candidates_are_dropped_with_a_reason() -> None:
    log_oof = _candidates((0.1, 0.12, 0.15, 0.2))
    broken = log_oof.copy()
    broken[1, 0, 5] = np.nan  # a diverged fold
    broken[3, 0, :] = np.inf
    choice, _ = _search(broken)
    assert set(choice.dropped) == {1, 3}
    assert "1 of 600" in choice.dropped[1] and "not finite" in choice.dropped[1]
    assert choice.weights[1] == choice.weights[3] == 0.0
    kept, _ = _search(log_oof[[0, 2]])
    np.testing.assert_array_equal(choice.weights[[0, 2]], kept.weights)
    for method, scores in kept.fold_scores.items():
        np.testing.assert_array_equal(choice.fold_scores[method], scores)
    report = table(choice, [f"trial{i}" for i in range(4)])
    assert "dropped:" in report and "trial1: 1 of 600" in report and "trial3: 600 of 600" in report
    with pytest.raises(ValueError, match="every candidate was dropped"):
        _search(broken[[1, 3]])


def test_a_blend_scoring_like_the_incumbent_is_not_better_and_a_clearly_better_one_is() -> None:
    incumbent = np.array([0.120, 0.131, 0.118, 0.125, 0.140])
    assert beats_incumbent(incumbent, incumbent) == (False, 0.0, 0.0)
    # Lower on average, but by less than the paired differences' standard error.
    lucky = incumbent + np.array([-0.006, 0.004, -0.005, 0.003, -0.001])
    better, delta, noise = beats_incumbent(lucky, incumbent)
    assert delta < 0 and not better and noise > -delta
    # Lower on every fold by about 0.004.
    clear = incumbent - 0.004 + np.array([0.0005, -0.0005, 0.0, 0.0003, -0.0003])
    better, delta, noise = beats_incumbent(clear, incumbent)
    assert better and delta == pytest.approx(-0.004) and noise < 0.001


def test_the_table_lists_methods_verdicts_and_the_chosen_candidates() -> None:
    log_oof = _candidates((0.08, 0.09) + (0.4,) * 3)
    choice, _ = _search(log_oof)
    names = ["lgbm_a", "ridge_b", "noise_c", "noise_d", "noise_e"]
    report = table(choice, names, choice.fold_scores["mean"])
    lines = report.splitlines()
    assert lines[0].split() == ["method", "mean", "std", "delta", "noise", "verdict"]
    assert any(line.startswith(choice.method) and "<- chosen" in line for line in lines)
    assert any(line.startswith("ridge_meta") and "(comparison only)" in line for line in lines)
    assert any(line.startswith("mean") and "not better" in line for line in lines)  # equal to itself
    assert f"{choice.method}: {len(choice.selected)} of 5 candidates" in report
    for c in choice.selected:
        assert f"{choice.weights[c]:.4f}  {names[c]}" in report
    assert "method" in table(choice, names) and "delta" not in table(choice, names)


class _Linear:
    """A scikit-learn linear model behind the members' `fit(x, y, categorical)` / `predict(x)`."""

    def __init__(self, estimator: object) -> None:
        self.estimator = estimator

    def fit(self, x: np.ndarray, y: np.ndarray, categorical: np.ndarray) -> _Linear:
        self.estimator.fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict(x), dtype=np.float64)


def test_a_search_over_real_candidates_on_house_prices(clean_frames) -> None:
    from sklearn.linear_model import Lasso, Ridge

    train, test = clean_frames
    small = train.head(400).reset_index(drop=True)
    features = plain_features()
    splits = split_folds(len(small), 4, seed=0)
    makers = {"ridge_10": lambda: _Linear(Ridge(alpha=10.0)), "ridge_100": lambda: _Linear(Ridge(alpha=100.0)),
              "lasso_0.001": lambda: _Linear(Lasso(alpha=0.001, max_iter=5000))}
    results = [cross_validate_regressor(small, None, features, make, splits) for make in makers.values()]
    prices = results[0].prices
    choice = search_blends(np.stack([r.oof_repeats for r in results]), prices, splits,
                           repeat_of(splits, len(small)), np.ones(len(small), dtype=bool))
    best_single = min(r.mean for r in results)
    assert np.isfinite(choice.mean) and all(np.isfinite(s).all() for s in choice.fold_scores.values())
    assert choice.mean < best_single * 1.05
    assert choice.weights.sum() == pytest.approx(1.0) and (choice.weights >= 0).all()
    assert "<- chosen" in table(choice, list(makers), results[int(np.argmin([r.mean for r in results]))].fold_scores)
