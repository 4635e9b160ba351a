"""The metric registry: every Kaggle metric scores as scikit-learn's reference does, points the
right way, and says which tasks and predictions it serves."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from sklearn import metrics as skm

from pipeline.common.errors import PipelineError
from pipeline.house_prices.training import log_rmse as house_prices_log_rmse
from pipeline.tabular.metrics import (
    METRICS,
    NEEDS,
    TASKS,
    UnknownMetric,
    default_metric,
    get_metric,
)

N, K = 500, 4


def _log_loss(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    k = 2 if y_pred.ndim == 1 else y_pred.shape[1]
    return skm.log_loss(y_true, y_pred, labels=range(k))


# One scikit-learn reference per registered metric: a metric added without one fails below.
REFERENCES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "rmse": lambda t, p: skm.mean_squared_error(t, p) ** 0.5,
    "rmsle": lambda t, p: skm.mean_squared_log_error(t, p) ** 0.5,
    "log_rmse": lambda t, p: skm.mean_squared_error(np.log(t), np.log(np.clip(p, 1.0, None))) ** 0.5,
    "mae": skm.mean_absolute_error,
    "r2": skm.r2_score,
    "accuracy": skm.accuracy_score,
    "balanced_accuracy": skm.balanced_accuracy_score,
    "f1": skm.f1_score,
    "mcc": skm.matthews_corrcoef,
    "logloss": _log_loss,
    "auc": skm.roc_auc_score,
}


def _inputs(task: str, needs: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random (y_true, y_pred) in the layout a metric on `task` and `needs` expects."""
    rng = np.random.default_rng(seed)
    if task == "regression":
        return rng.lognormal(5.0, 1.0, N), rng.lognormal(5.0, 1.0, N)
    k = 2 if task == "binary" else K
    y_true = rng.integers(0, k, N)
    if needs == "labels":
        return y_true, rng.integers(0, k, N)
    if task == "binary":
        return y_true, rng.uniform(0.01, 0.99, N)
    return y_true, rng.dirichlet(np.ones(k), N)


CASES = [(name, task) for name, metric in METRICS.items() for task in sorted(metric.tasks)]


def test_every_registered_metric_has_a_scikit_learn_reference() -> None:
    assert set(REFERENCES) == set(METRICS)


@pytest.mark.parametrize(("name", "task"), CASES, ids=[f"{n}-{t}" for n, t in CASES])
def test_a_metric_agrees_with_scikit_learn_on_random_inputs(name: str, task: str) -> None:
    metric = get_metric(name)
    for seed in range(3):
        y_true, y_pred = _inputs(task, metric.needs, seed)
        assert metric.score(y_true, y_pred) == pytest.approx(REFERENCES[name](y_true, y_pred), abs=1e-9, rel=1e-9)


def test_log_rmse_is_house_prices_score() -> None:
    y_true, y_pred = _inputs("regression", "values")
    y_pred[:10] = 0.5  # below the clip at 1
    metric = get_metric("log_rmse")
    assert metric.score(y_true, y_pred) == pytest.approx(house_prices_log_rmse(y_pred, y_true), abs=1e-12)
    assert "House Prices" in metric.description


def test_rmsle_clips_negative_predictions_at_zero() -> None:
    y_true, y_pred = _inputs("regression", "values")
    y_pred[:10] = -3.0
    score = get_metric("rmsle").score(y_true, y_pred)
    assert np.isfinite(score)
    assert score == pytest.approx(skm.mean_squared_log_error(y_true, np.clip(y_pred, 0.0, None)) ** 0.5, abs=1e-9)


def test_logloss_stays_finite_on_a_confident_miss() -> None:
    metric = get_metric("logloss")
    assert metric.score([1, 0], [0.0, 0.0]) == pytest.approx(-np.log(1e-15) / 2, rel=1e-6)
    assert np.isfinite(metric.score([0, 2], np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])))


def test_binary_logloss_on_p_positive_equals_its_two_column_form() -> None:
    y_true, p = _inputs("binary", "probabilities")
    metric = get_metric("logloss")
    assert metric.score(y_true, p) == pytest.approx(metric.score(y_true, np.column_stack([1 - p, p])), abs=1e-12)


def test_a_label_metric_refuses_probabilities_and_accepts_whole_floats() -> None:
    metric = get_metric("accuracy")
    with pytest.raises(ValueError, match="class indices"):
        metric.score([0, 1, 1], [0.2, 0.9, 0.6])
    assert metric.score([0, 1, 1], [0.0, 1.0, 0.0]) == pytest.approx(2 / 3)


def test_mismatched_lengths_fail() -> None:
    with pytest.raises(ValueError, match="rows"):
        get_metric("rmse").score([1.0, 2.0], [1.0])


def test_directions_sign_and_worst() -> None:
    rmse, auc = get_metric("rmse"), get_metric("auc")
    assert rmse.better(0.1, 0.2) and not rmse.better(0.2, 0.1) and not rmse.better(0.1, 0.1)
    assert auc.better(0.9, 0.8) and not auc.better(0.8, 0.9) and not auc.better(0.8, 0.8)
    for metric in METRICS.values():
        assert metric.sign == (-1.0 if metric.greater_is_better else 1.0)
        assert metric.better(0.5, metric.worst())
        assert metric.sign * metric.worst() == np.inf  # the worst score is the largest loss


@pytest.mark.parametrize("name", ["r2", "accuracy", "balanced_accuracy", "f1", "mcc", "auc"])
def test_scores_that_grow_with_skill_are_greater_is_better(name: str) -> None:
    assert get_metric(name).greater_is_better


@pytest.mark.parametrize("name", ["rmse", "rmsle", "log_rmse", "mae", "logloss"])
def test_errors_and_losses_are_smaller_is_better(name: str) -> None:
    assert not get_metric(name).greater_is_better


def test_every_metric_names_its_tasks_and_what_it_needs() -> None:
    for name, metric in METRICS.items():
        assert metric.name == name
        assert metric.tasks and metric.tasks <= set(TASKS)
        assert metric.needs in NEEDS
        assert (metric.needs == "values") == (metric.tasks == {"regression"})
        assert metric.description
        assert not metric.fits_log or metric.tasks == {"regression"}
    assert {n for n, m in METRICS.items() if m.fits_log} == {"rmsle", "log_rmse"}


def test_an_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(UnknownMetric) as info:
        get_metric("rmsee")
    assert isinstance(info.value, PipelineError) and isinstance(info.value, ValueError)
    assert "--metric" in str(info.value)
    for name in METRICS:
        assert name in str(info.value)


@pytest.mark.parametrize(("task", "needs", "expected"), [
    ("regression", None, "rmse"), ("regression", "values", "rmse"),
    ("binary", None, "auc"), ("binary", "probabilities", "auc"), ("binary", "labels", "accuracy"),
    ("multiclass", None, "logloss"), ("multiclass", "probabilities", "logloss"), ("multiclass", "labels", "accuracy"),
])
def test_default_metric_serves_the_task_and_its_predictions(task: str, needs: str | None, expected: str) -> None:
    name = default_metric(task, needs)
    assert name == expected
    metric = get_metric(name)
    assert task in metric.tasks
    assert needs is None or metric.needs == needs


@pytest.mark.parametrize(("task", "needs"), [("ranking", None), ("regression", "labels"), ("binary", "values")])
def test_default_metric_refuses_an_unknown_task_or_prediction(task: str, needs: str | None) -> None:
    with pytest.raises(PipelineError):
        default_metric(task, needs)
