"""Kaggle's evaluation metrics by Kaggle's names: one registry row per metric.

A competition file names its metric (`metric: rmsle`), and every stage that scores folds,
blends or picks members asks this table what that name means: which tasks it scores, what
the predictions must be (values, class labels, probabilities), which direction is better,
and whether members should fit a log target. A new metric is a new row, not a new branch.

The simple metrics (rmse, mae, rmsle, log_rmse, accuracy, logloss) are a line of numpy each,
so they follow Kaggle's definitions exactly (rmsle clips negative predictions at 0, logloss
clips at 1e-15 as Kaggle does). The ones with subtle edge cases (ties in ROC AUC, the
multiclass form of MCC, constant targets in R^2, classes absent from a fold in balanced
accuracy) call `sklearn.metrics`: scikit-learn's implementations are the reference, and
`tests/test_tabular_metrics.py` checks every row against them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.common.errors import PipelineError

Task = Literal["regression", "binary", "multiclass"]
TASKS: tuple[str, ...] = ("regression", "binary", "multiclass")
Needs = Literal["values", "labels", "probabilities"]
NEEDS: tuple[str, ...] = ("values", "labels", "probabilities")

_EPS = 1e-15  # Kaggle's (and sklearn's former) probability clip: a confident miss costs -log(1e-15), not inf


class UnknownMetric(PipelineError, ValueError):
    """A metric name that the registry does not hold (a typo in `--metric` or competition.yaml)."""


@dataclass(frozen=True)
class Metric:
    """One Kaggle metric: what it scores, what it needs, and which way is better."""

    name: str
    tasks: frozenset[str]
    needs: str
    greater_is_better: bool
    fits_log: bool
    description: str
    fn: Callable[[np.ndarray, np.ndarray], float]

    def score(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        """`fn` on arrays of the dtypes it expects, so callers may pass lists, frames' columns or floats."""
        y_pred = np.asarray(y_pred, dtype=np.float64)
        if self.needs == "values":
            y_true = np.asarray(y_true, dtype=np.float64)
        else:
            y_true = _as_labels(y_true, "y_true")
            if self.needs == "labels":
                y_pred = _as_labels(y_pred, "y_pred")
        if len(y_true) != len(y_pred):
            raise ValueError(f"{self.name}: y_true has {len(y_true)} rows but y_pred has {len(y_pred)}")
        return float(self.fn(y_true, y_pred))

    def better(self, a: float, b: float) -> bool:
        """Whether score `a` is strictly better than score `b`."""
        return a > b if self.greater_is_better else a < b

    def worst(self) -> float:
        """A score every real score beats: the starting point of a search for the best."""
        return -np.inf if self.greater_is_better else np.inf

    @property
    def sign(self) -> float:
        """+1 when smaller is better, -1 otherwise, so that `sign * score` is always a loss to minimise."""
        return -1.0 if self.greater_is_better else 1.0


def _as_labels(y: np.ndarray, what: str) -> np.ndarray:
    """Int class indices; a float that is not whole (a probability passed by mistake) fails rather than truncates."""
    y = np.asarray(y)
    if y.dtype.kind in "iub":
        return y.astype(np.int64)
    y = y.astype(np.float64)
    if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
        raise ValueError(f"{what} must hold class indices 0..k-1, not probabilities or other floats")
    return y.astype(np.int64)


def _rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y_pred - y_true) ** 2)))


def _rmsle(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return _rmse(np.log1p(y_true), np.log1p(np.clip(y_pred, 0.0, None)))


def _log_rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """House Prices' score, as `pipeline.house_prices.training.log_rmse` (mirrored: that module imports torch)."""
    return _rmse(np.log(y_true), np.log(np.clip(y_pred, 1.0, None)))


def _mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.abs(y_pred - y_true)))


def _accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred))


def _logloss(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Binary when `y_pred` is P(positive) of shape (n,); multiclass when it is (n, k).

    Multiclass rows are renormalised after clipping, as Kaggle does, so a clipped row still
    sums to 1; rows that already sum to 1 and need no clipping score exactly as sklearn's.
    """
    if y_pred.ndim == 1:
        p = np.clip(y_pred, _EPS, 1.0 - _EPS)
        return float(-np.mean(np.where(y_true == 1, np.log(p), np.log1p(-p))))
    k = y_pred.shape[1]
    if y_true.size and (y_true.min() < 0 or y_true.max() >= k):
        raise ValueError(f"logloss: y_true holds a class outside 0..{k - 1}, the columns of y_pred")
    p = np.clip(y_pred, _EPS, 1.0 - _EPS)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(len(y_true)), y_true])))


def _auc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn import metrics as skm  # imported when scored: reading a competition file needs none

    return float(skm.roc_auc_score(y_true, y_pred))


def _f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn import metrics as skm  # imported when scored: reading a competition file needs none

    return float(skm.f1_score(y_true, y_pred))


def _mcc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn import metrics as skm  # imported when scored: reading a competition file needs none

    return float(skm.matthews_corrcoef(y_true, y_pred))


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn import metrics as skm  # imported when scored: reading a competition file needs none

    return float(skm.balanced_accuracy_score(y_true, y_pred))


def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn import metrics as skm  # imported when scored: reading a competition file needs none

    return float(skm.r2_score(y_true, y_pred))


_REG = frozenset({"regression"})
_BIN = frozenset({"binary"})
_CLS = frozenset({"binary", "multiclass"})

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("rmse", _REG, "values", False, False, "root mean squared error", _rmse),
        Metric("rmsle", _REG, "values", False, True,
               "root mean squared log error: RMSE of log(1+y), negative predictions clipped at 0", _rmsle),
        Metric("log_rmse", _REG, "values", False, True,
               "House Prices' score: RMSE of log(y), predictions clipped at 1", _log_rmse),
        Metric("mae", _REG, "values", False, False, "mean absolute error", _mae),
        Metric("r2", _REG, "values", True, False, "coefficient of determination R^2", _r2),
        Metric("accuracy", _CLS, "labels", True, False, "fraction of rows whose predicted class is right", _accuracy),
        Metric("balanced_accuracy", _CLS, "labels", True, False, "mean recall over the classes", _balanced_accuracy),
        Metric("f1", _BIN, "labels", True, False, "F1 score of the positive class (1)", _f1),
        Metric("mcc", _CLS, "labels", True, False, "Matthews correlation coefficient", _mcc),
        Metric("logloss", _CLS, "probabilities", False, False,
               "log loss (cross-entropy) of class probabilities, clipped to [1e-15, 1-1e-15]", _logloss),
        Metric("auc", _BIN, "probabilities", True, False, "area under the ROC curve of P(positive)", _auc),
    )
}

_DEFAULTS: dict[tuple[str, str], str] = {
    ("regression", "values"): "rmse",
    ("binary", "probabilities"): "auc",
    ("binary", "labels"): "accuracy",
    ("multiclass", "probabilities"): "logloss",
    ("multiclass", "labels"): "accuracy",
}


def get_metric(name: str) -> Metric:
    """The registry row for Kaggle's metric `name`; an unknown name lists every known one."""
    try:
        return METRICS[name]
    except KeyError:
        known = ", ".join(sorted(METRICS))
        raise UnknownMetric(f"unknown metric {name!r}: give --metric one of: {known}") from None


def default_metric(task: str, needs: str | None = None) -> str:
    """The metric a competition gets when its file names none: Kaggle's usual choice for the task.

    `needs=None` means "whatever suits the task best": values for regression, probabilities
    for classification.
    """
    if task not in TASKS:
        raise PipelineError(f"unknown task {task!r}: give one of {', '.join(TASKS)}")
    if needs is None:
        needs = "values" if task == "regression" else "probabilities"
    try:
        return _DEFAULTS[(task, needs)]
    except KeyError:
        served = ", ".join(n for t, n in _DEFAULTS if t == task)
        raise PipelineError(f"a {task} task has no metric on {needs!r}: give needs as one of {served}") from None
