"""Blending members' predictions in log space: equal weights, or stacked weights learned from
their out-of-fold predictions, scored by nested cross-validation.

`stack` fits non-negative weights summing to 1 that minimize the squared log error of the
blend (Kaggle's score) on the members' out-of-fold log predictions: a convex combination, so
the blend never extrapolates beyond its members and a weak member simply gets weight 0. The
`ridge_meta` comparison (reported, not shipped) is a ridge regression with an intercept on
the same log predictions, its penalty chosen by leave-one-out on the fit rows.

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

BLENDS = ("mean", "stack", "ridge_meta")
# The ridge meta-model's penalties, chosen among by leave-one-out on each fit (comparison only).
META_RIDGE_ALPHAS = tuple(np.logspace(-3, 3, 13))


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
    weights = {"mean": mean_weights, "stack": stack_weights}[method](log_preds, log_y)
    return lambda x: weights @ x


def _log(prices: np.ndarray) -> np.ndarray:
    """Log prices, clamped at 1 as the score clamps them."""
    return np.log(np.clip(prices, 1.0, None))


def blend_weights(method: str, member_oof: np.ndarray, prices: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """The shipped weights (`mean` or `stack`), fit on the rows `fit_rows` of every repeat.

    member_oof: `[members, repeats, N]` out-of-fold prices.
    """
    repeats = member_oof.shape[1]
    log_preds = _log(member_oof[:, :, fit_rows]).reshape(member_oof.shape[0], repeats * len(fit_rows))
    log_y = np.tile(np.log(prices[fit_rows]), repeats)
    if not np.isfinite(log_preds).all():
        return np.full(member_oof.shape[0], np.nan)
    return {"mean": mean_weights, "stack": stack_weights}[method](log_preds, log_y)


def nested_blend(method: str, member_oof: np.ndarray, prices: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]],
                 repeat: np.ndarray, fit_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The blend's out-of-fold prices `[repeats, N]` and fold scores, each fold's rows blended
    by weights fit on the *other* folds of its repeat (rows where `fit_mask` holds: the rows
    members may learn from, so dropped outliers do not steer the weights either)."""
    oof = np.empty(member_oof.shape[1:])
    log_y = np.log(prices)
    scores = np.empty(len(splits))
    for f, (_, valid_idx) in enumerate(splits):
        r = repeat[f]
        rows = fit_mask.copy()
        rows[valid_idx] = False
        blend = fit_blend(method, _log(member_oof[:, r, rows]), log_y[rows])
        oof[r, valid_idx] = np.exp(blend(_log(member_oof[:, r, valid_idx])))
        scores[f] = log_rmse(oof[r, valid_idx], prices[valid_idx])
    return oof, scores
