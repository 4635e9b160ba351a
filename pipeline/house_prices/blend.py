"""Blending members' predictions in log space: equal weights, or stacked or greedily selected
weights learned from their out-of-fold predictions, scored by nested cross-validation.

`stack` fits non-negative weights summing to 1 that minimize the squared log error of the
blend (Kaggle's score) on the members' out-of-fold log predictions: a convex combination, so
the blend never extrapolates beyond its members and a weak member simply gets weight 0. The
`ridge_meta` comparison (reported, not shipped) is a ridge regression with an intercept on
the same log predictions, its penalty chosen by leave-one-out on the fit rows.

`greedy` is Caruana et al.'s ensemble selection ("Ensemble selection from libraries of
models", ICML 2004), the weighted ensemble of AutoGluon and auto-sklearn: starting from nothing,
each of `GREEDY_ROUNDS` rounds adds the member (repeats allowed) whose addition gives the
lowest RMSE of the averaged log prediction, and a member's weight is how often it was added
over the number of rounds. Like `stack` it is convex, but it cannot reach every point of the
simplex: a few members with coarse weights, which over a large library of candidates overfits
the rows less than solving for every weight at once.

Nested: the score of a learned blend on fold k uses weights fit on the other folds' rows of the
same repeat only, so the weights are never scored on the rows that chose them. The shipped
model's weights are then fit on every out-of-fold row (of every repeat).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import RidgeCV

from pipeline.house_prices.training import log_rmse

BLENDS = ("mean", "stack", "ridge_meta", "greedy")
# The ridge meta-model's penalties, chosen among by leave-one-out on each fit (comparison only).
META_RIDGE_ALPHAS = tuple(np.logspace(-3, 3, 13))
# Greedy selection's rounds: weights on a grid of 1/25 = 0.04. Rounding the ideal convex weights
# to that grid moves each by at most 0.02, which costs a blend's RMSE a second-order amount, far
# below the fold noise of a 1,460-row CV; and at most 25 distinct members can be chosen, which is
# the sparsity that makes greedy worth having beside `stack`. More rounds only refine weights the
# fit rows cannot tell apart: AutoGluon's weighted ensemble defaults to 25 rounds too, citing
# TabRepo's finding that more bring no measurable improvement.
GREEDY_ROUNDS = 25


def mean_weights(log_preds: np.ndarray, log_y: np.ndarray) -> np.ndarray:
    """Equal weights (`log_preds`: `[members, rows]`)."""
    return np.full(log_preds.shape[0], 1.0 / log_preds.shape[0])


def stack_weights(log_preds: np.ndarray, log_y: np.ndarray) -> np.ndarray:
    """argmin_w ||w @ log_preds - log_y||^2 subject to w >= 0, sum(w) = 1.

    SLSQP from equal weights; the problem is a small convex quadratic program, so the answer
    does not depend on the start. Centering on the mean prediction keeps it well scaled (log
    prices are about 12; their differences are what the weights trade off).
    """
    m = log_preds.shape[0]
    if m == 1:
        return np.ones(1)
    center = log_preds.mean(axis=0)
    a, b = (log_preds - center).T, log_y - center
    gram, cross = a.T @ a / len(b), a.T @ b / len(b)
    result = minimize(lambda w: w @ gram @ w - 2 * w @ cross, np.full(m, 1.0 / m),
                      jac=lambda w: 2 * (gram @ w - cross), method="SLSQP", bounds=[(0.0, 1.0)] * m,
                      constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(m)}],
                      options={"ftol": 1e-12, "maxiter": 500})
    weights = np.clip(result.x, 0.0, None)
    return weights / weights.sum()


def greedy_counts(log_preds: np.ndarray, log_y: np.ndarray, rounds: int = GREEDY_ROUNDS) -> np.ndarray:
    """How often each member (`log_preds`: `[members, rows]`) is added in `rounds` rounds of
    greedy forward selection with replacement; `counts.sum() == rounds`.

    Round t adds the member that minimizes the RMSE of the mean of the t chosen ones, i.e. the
    sum of squares of (running sum of the chosen members' errors + the candidate's error):
    every candidate is evaluated at once per round, `O(members * rows)`. Ties go to the lowest
    index (`argmin`; identical members give bit-identical sums), so the result is deterministic.

    The empty start makes round 1 pick the best single member, so it is the same as starting
    from that member (Caruana's "sorted initialization" with the N best members guards against
    overfitting libraries of hundreds of models; a few dozen candidates do not need it).

    No early stop: the best addition is often a repeat of a chosen member that leaves the fit
    unchanged or a little worse just before a round that refines a weight. With A best alone
    and the ideal mix 0.8 A + 0.2 B, round 2 re-adds A (1/2 each would be worse): no
    improvement, yet round 3 adds B for 2/3 and 1/3, which beats A alone.

    No trimming to the trajectory's best round either (AutoGluon's `use_best`): every round's
    ensemble is already at least as good on these rows as the best single member (re-adding
    it is always a candidate and the squared error is convex, so MSE_t <= max(MSE_{t-1},
    MSE_1), by induction MSE_t <= MSE_1), the weights stay on the 1/rounds grid, and choosing a
    round by the same rows would be one more choice fit to them, for a gain of the order of the
    grid's rounding.
    """
    if rounds < 1:
        raise ValueError(f"greedy selection needs at least one round, got {rounds}")
    m = log_preds.shape[0]
    counts = np.zeros(m, dtype=np.int64)
    if m == 1:
        counts[0] = rounds
        return counts
    errors = np.asarray(log_preds - log_y, dtype=np.float64)  # [members, rows]; ~0.1, well scaled
    running = np.zeros(errors.shape[1])
    buffer = np.empty_like(errors)
    for _ in range(rounds):
        np.add(errors, running, out=buffer)
        np.square(buffer, out=buffer)
        best = int(np.argmin(buffer.sum(axis=1)))
        counts[best] += 1
        running += errors[best]
    return counts


def greedy_weights(log_preds: np.ndarray, log_y: np.ndarray) -> np.ndarray:
    """Caruana's greedy ensemble selection: `greedy_counts / GREEDY_ROUNDS`, non-negative,
    summing to 1, each a multiple of 1/GREEDY_ROUNDS."""
    return greedy_counts(log_preds, log_y) / GREEDY_ROUNDS


# The blends that are a weight per member (`ridge_meta` is a regression, with no such weights).
WEIGHTS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "mean": mean_weights, "stack": stack_weights, "greedy": greedy_weights}


def fit_blend(method: str, log_preds: np.ndarray, log_y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function from members' log predictions `[members, rows]` to the blend's, fit on these rows.

    A member that diverged (a non-finite prediction) makes the blend non-finite, as averaging
    would: the caller's divergence checks see it, and no solver runs on NaN.
    """
    if not np.isfinite(log_preds).all():
        return lambda x: np.full(x.shape[1], np.nan)
    if method == "ridge_meta":
        ridge = RidgeCV(alphas=META_RIDGE_ALPHAS).fit(log_preds.T, log_y)
        return lambda x: ridge.predict(x.T)
    weights = WEIGHTS[method](log_preds, log_y)
    return lambda x: weights @ x


def _log(prices: np.ndarray) -> np.ndarray:
    """Log prices, clamped at 1 as the score clamps them."""
    return np.log(np.clip(prices, 1.0, None))


def blend_weights(method: str, member_oof: np.ndarray, prices: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """The shipped weights (`mean`, `stack` or `greedy`), fit on the rows `fit_rows` of every repeat.

    member_oof: `[members, repeats, N]` out-of-fold prices.
    """
    repeats = member_oof.shape[1]
    log_preds = _log(member_oof[:, :, fit_rows]).reshape(member_oof.shape[0], repeats * len(fit_rows))
    log_y = np.tile(np.log(prices[fit_rows]), repeats)
    if not np.isfinite(log_preds).all():
        return np.full(member_oof.shape[0], np.nan)
    return WEIGHTS[method](log_preds, log_y)


def nested_blend(method: str, member_oof: np.ndarray, prices: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]],
                 repeat: np.ndarray, fit_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The blend's out-of-fold prices `[repeats, N]` and fold scores, each fold's rows blended
    by weights fit on the *other* folds of its repeat (rows where `fit_mask` holds: the rows
    members may learn from, so dropped outliers do not steer the weights either).

    One member (a single model) blended by weights is that member, exactly: its own
    predictions, not their round trip through log and exp.
    """
    oof = np.empty(member_oof.shape[1:])
    log_y = np.log(prices)
    scores = np.empty(len(splits))
    alone = member_oof.shape[0] == 1 and method in WEIGHTS
    for f, (_, valid_idx) in enumerate(splits):
        r = repeat[f]
        if alone:
            oof[r, valid_idx] = member_oof[0, r, valid_idx]
            scores[f] = log_rmse(oof[r, valid_idx], prices[valid_idx])
            continue
        rows = fit_mask.copy()
        rows[valid_idx] = False
        blend = fit_blend(method, _log(member_oof[:, r, rows]), log_y[rows])
        oof[r, valid_idx] = np.exp(blend(_log(member_oof[:, r, valid_idx])))
        scores[f] = log_rmse(oof[r, valid_idx], prices[valid_idx])
    return oof, scores
