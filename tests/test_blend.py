"""Blends: stacked and greedily selected weights are convex combinations fit on out-of-fold log
predictions, and their CV score is nested (each fold blended by weights that never saw it)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.house_prices.blend import (
    GREEDY_ROUNDS,
    blend_weights,
    fit_blend,
    greedy_counts,
    greedy_weights,
    nested_blend,
    stack_weights,
)
from pipeline.house_prices.cv import repeat_of, split_folds

RNG = np.random.default_rng(0)
N = 600
LOG_Y = RNG.normal(12.0, 0.4, N)


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_stack_weights_recover_a_known_mix_and_drop_a_useless_member() -> None:
    # Two members whose errors cancel in a 0.7 / 0.3 mix, and one that is pure noise.
    shared = RNG.normal(0, 0.1, N)
    a, b = LOG_Y + 0.3 * shared, LOG_Y - 0.7 * shared
    useless = LOG_Y + RNG.normal(0, 0.5, N)
    weights = stack_weights(np.stack([a, b, useless]), LOG_Y)
    np.testing.assert_allclose(weights, [0.7, 0.3, 0.0], atol=1e-4)
    assert (weights >= 0).all() and weights.sum() == pytest.approx(1.0)


def test_stack_is_never_worse_than_its_best_member_on_the_rows_it_was_fit_on() -> None:
    members = np.stack([LOG_Y + RNG.normal(bias, noise, N) for bias, noise in ((0.02, 0.1), (-0.05, 0.12), (0, 0.2))])
    weights = stack_weights(members, LOG_Y)
    best = min(_rmse(m, LOG_Y) for m in members)
    assert _rmse(weights @ members, LOG_Y) <= best + 1e-12
    assert _rmse(weights @ members, LOG_Y) <= _rmse(members.mean(axis=0), LOG_Y) + 1e-12


def test_weights_stay_convex_even_when_an_extrapolating_mix_would_fit_better() -> None:
    # b = y + 2e and a = y + e: the unconstrained optimum is 2a - b (weight -1), outside the simplex.
    e = RNG.normal(0, 0.1, N)
    weights = stack_weights(np.stack([LOG_Y + e, LOG_Y + 2 * e]), LOG_Y)
    np.testing.assert_allclose(weights, [1.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("method", ["stack", "greedy"])
def test_nested_weights_never_see_the_fold_they_score(method: str) -> None:
    """Member `oracle` is exact on fold 0's rows and wildly wrong elsewhere. Weights fit on all rows
    would still use it a little; fit on the other folds only, fold 0 must get (almost) nothing from it,
    so its fold-0 score is the honest member's, not the oracle's zero."""
    splits = split_folds(N, 3, seed=0)
    repeat = repeat_of(splits, N)
    prices = np.exp(LOG_Y)
    honest = LOG_Y + RNG.normal(0, 0.1, N)
    oracle = LOG_Y + RNG.normal(0, 1.0, N)
    oracle[splits[0][1]] = LOG_Y[splits[0][1]]
    member_oof = np.exp(np.stack([honest, oracle]))[:, None, :]  # [members, repeats=1, N]
    _, scores = nested_blend(method, member_oof, prices, splits, repeat, np.ones(N, dtype=bool))
    valid = splits[0][1]
    assert scores[0] == pytest.approx(_rmse(honest[valid], LOG_Y[valid]), rel=0.05)
    assert scores[0] > 0.08


def test_dropped_rows_do_not_steer_the_weights() -> None:
    splits = split_folds(N, 3, seed=0)
    good, bad = LOG_Y + RNG.normal(0, 0.1, N), LOG_Y + RNG.normal(0, 0.1, N)
    bad[:5] = LOG_Y[:5] - 3.0  # five rows where `bad` is off by a factor of 20
    member_oof = np.exp(np.stack([good, bad]))[:, None, :]
    keep = np.ones(N, dtype=bool)
    keep[:5] = False
    with_all = blend_weights("stack", member_oof, np.exp(LOG_Y), np.arange(N))
    without = blend_weights("stack", member_oof, np.exp(LOG_Y), np.flatnonzero(keep))
    assert with_all[1] < 0.2 and without[1] == pytest.approx(0.5, abs=0.1)
    _, scores = nested_blend("stack", member_oof, np.exp(LOG_Y), splits, repeat_of(splits, N), keep)
    assert np.isfinite(scores).all()


def test_final_weights_are_fit_on_every_repeat() -> None:
    splits = split_folds(N, 3, seed=0, repeats=2)
    assert len(splits) == 6 and list(repeat_of(splits, N)) == [0, 0, 0, 1, 1, 1]
    member_oof = np.exp(np.stack([np.stack([LOG_Y + RNG.normal(0, s, N) for _ in range(2)]) for s in (0.1, 0.15)]))
    weights = blend_weights("stack", member_oof, np.exp(LOG_Y), np.arange(N))
    pooled = stack_weights(np.log(member_oof).reshape(2, 2 * N), np.tile(LOG_Y, 2))
    np.testing.assert_allclose(weights, pooled)


def test_a_diverged_member_makes_the_blend_non_finite_instead_of_crashing() -> None:
    members = np.stack([LOG_Y, np.full(N, np.nan)])
    assert np.isnan(fit_blend("stack", members, LOG_Y)(members)).all()
    assert np.isnan(fit_blend("ridge_meta", members, LOG_Y)(members)).all()
    assert np.isnan(fit_blend("greedy", members, LOG_Y)(members)).all()
    assert np.isnan(blend_weights("greedy", np.exp(members)[:, None, :], np.exp(LOG_Y), np.arange(N))).all()


def test_the_ridge_meta_model_may_extrapolate_and_shift() -> None:
    # A member biased by +0.1 everywhere: the meta-model's intercept removes the bias, a convex mix cannot.
    members = np.stack([LOG_Y + 0.1 + RNG.normal(0, 0.05, N), LOG_Y + 0.1 + RNG.normal(0, 0.05, N)])
    ridge = fit_blend("ridge_meta", members, LOG_Y)(members)
    stack = fit_blend("stack", members, LOG_Y)(members)
    assert _rmse(ridge, LOG_Y) < 0.05 < _rmse(stack, LOG_Y)


# Greedy ensemble selection (Caruana et al. 2004): rounds of adding, with replacement, the member
# that most lowers the RMSE of the averaged log prediction.

def _library(seed: int, biases: tuple[float, ...] = (0.0,) * 4, noises: tuple[float, ...] = (0.1, 0.12, 0.15, 0.2),
             shared: float = 0.05) -> np.ndarray:
    """Members of log price: each its own bias and noise, plus an error all of them share."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, shared, N)
    return np.stack([LOG_Y + b + common + rng.normal(0, s, N) for b, s in zip(biases, noises, strict=True)])


def _naive_greedy(log_preds: np.ndarray, log_y: np.ndarray, rounds: int) -> np.ndarray:
    """The algorithm as written in the paper: try every member, keep the best, repeat."""
    chosen: list[int] = []
    for _ in range(rounds):
        losses = [_rmse(log_preds[chosen + [m]].mean(axis=0), log_y) for m in range(len(log_preds))]
        chosen.append(int(np.argmin(losses)))
    return np.bincount(chosen, minlength=len(log_preds))


def test_greedy_is_caruanas_selection_with_replacement() -> None:
    members = _library(1, biases=(0.03, -0.04, 0.0, 0.05))
    np.testing.assert_array_equal(greedy_counts(members, LOG_Y, 12), _naive_greedy(members, LOG_Y, 12))
    np.testing.assert_array_equal(greedy_counts(members, LOG_Y), _naive_greedy(members, LOG_Y, GREEDY_ROUNDS))


def test_greedy_repeats_a_good_member_and_never_picks_a_useless_one() -> None:
    members = np.concatenate([_library(2), (LOG_Y + RNG.normal(0, 1.0, N))[None]])  # member 4: noise
    weights = greedy_weights(members, LOG_Y)
    assert weights[4] == 0.0
    assert weights[0] == weights.max() > 1 / GREEDY_ROUNDS  # the best member, chosen again and again


def test_greedy_weights_are_counts_over_the_rounds() -> None:
    for seed in range(5):
        weights = greedy_weights(_library(seed, biases=(0.02, -0.03, 0.0, 0.04)), LOG_Y)
        assert (weights >= 0).all() and weights.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(weights * GREEDY_ROUNDS, np.round(weights * GREEDY_ROUNDS), atol=1e-9)


def test_with_replacement_the_best_member_gets_the_weight_its_accuracy_earns() -> None:
    # Independent errors with variances 1 : 4: the best mix is 0.8 / 0.2, which choosing each
    # member at most once (1/2 each) cannot reach.
    a, b = LOG_Y + RNG.normal(0, 0.1, N), LOG_Y + RNG.normal(0, 0.2, N)
    weights = greedy_weights(np.stack([a, b]), LOG_Y)
    assert weights[0] == pytest.approx(0.8, abs=0.1) and weights[1] > 0
    assert _rmse(weights @ np.stack([a, b]), LOG_Y) < _rmse((a + b) / 2, LOG_Y)


def test_greedy_is_never_worse_than_its_best_member_on_the_rows_it_was_fit_on() -> None:
    libraries = [_library(seed, biases=tuple(RNG.normal(0, 0.05, 4)), noises=tuple(RNG.uniform(0.05, 0.3, 4)),
                          shared=float(RNG.uniform(0, 0.2))) for seed in range(20)]
    for members in libraries:
        blend = greedy_weights(members, LOG_Y) @ members
        assert _rmse(blend, LOG_Y) <= min(_rmse(m, LOG_Y) for m in members) + 1e-12


def test_greedy_breaks_ties_by_the_lowest_index_and_takes_a_lone_member_whole() -> None:
    a = LOG_Y + RNG.normal(0, 0.1, N)
    np.testing.assert_array_equal(greedy_weights(np.stack([a, a, a + 0.5]), LOG_Y), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(greedy_weights(a[None], LOG_Y), [1.0])
    assert fit_blend("greedy", a[None], LOG_Y)(a[None]) == pytest.approx(a)


def test_greedy_handles_a_large_library() -> None:
    # 50 members x 20,000 rows: the shape of a blend search over a tuning study's trials.
    rng = np.random.default_rng(3)
    y = rng.normal(12.0, 0.4, 20_000)
    members = y + rng.normal(0, 0.05, 20_000) + rng.normal(0, rng.uniform(0.05, 0.3, (50, 1)), (50, 20_000))
    counts = greedy_counts(members, y)
    assert counts.sum() == GREEDY_ROUNDS and 1 < np.count_nonzero(counts) < 50
