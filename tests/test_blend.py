"""Blends: stacked weights are a convex combination fit on out-of-fold log predictions, and their
CV score is nested (each fold blended by weights that never saw it)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.house_prices.blend import blend_weights, fit_blend, nested_blend, stack_weights
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


def test_nested_weights_never_see_the_fold_they_score() -> None:
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
    _, scores = nested_blend("stack", member_oof, prices, splits, repeat, np.ones(N, dtype=bool))
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


def test_the_ridge_meta_model_may_extrapolate_and_shift() -> None:
    # A member biased by +0.1 everywhere: the meta-model's intercept removes the bias, a convex mix cannot.
    members = np.stack([LOG_Y + 0.1 + RNG.normal(0, 0.05, N), LOG_Y + 0.1 + RNG.normal(0, 0.05, N)])
    ridge = fit_blend("ridge_meta", members, LOG_Y)(members)
    stack = fit_blend("stack", members, LOG_Y)(members)
    assert _rmse(ridge, LOG_Y) < 0.05 < _rmse(stack, LOG_Y)
