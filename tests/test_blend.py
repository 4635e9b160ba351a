"""The one blend module: weights per member in link space, chosen with the competition's metric
(whichever way it points) and scored nested, on real members' out-of-fold predictions.

Members: small scikit-learn models cross-validated on scikit-learn's diabetes (regression,
RMSE), breast cancer (binary: log-odds, AUC, log-loss, accuracy) and wine (multiclass:
log-probabilities, log-loss) tables, 5 folds each.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import datasets
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from pipeline.tabular.blend import (
    BLEND_KINDS,
    GREEDY_ROUNDS,
    Scorer,
    UnknownBlend,
    combine,
    fit_repeats,
    fit_weights,
    greedy_counts,
    nested_blend,
    search_blends,
)
from pipeline.tabular.members import Task
from pipeline.tabular.metrics import get_metric


class Table:
    """Members' out-of-fold links on one real table, with the folds they come from."""

    def __init__(self, links: np.ndarray, y: np.ndarray, splits: list, task: Task) -> None:
        self.links, self.y, self.splits, self.task = links, y, splits, task
        self.rows = np.arange(len(y))

    def scorer(self, metric: str) -> Scorer:
        needs = get_metric(metric).needs
        if self.task.kind == "regression":
            return Scorer(get_metric(metric), self.y.astype(float), lambda link: link)
        if needs == "labels":
            return Scorer(get_metric(metric), self.y, lambda link: np.argmax(self.task.probabilities(link), axis=1)
                          if self.task.kind == "multiclass" else (self.task.probabilities(link) >= 0.5).astype(int))
        return Scorer(get_metric(metric), self.y, self.task.probabilities)

    def member_scores(self, scorer: Scorer) -> list[float]:
        return [scorer.score(link, self.rows) for link in self.links]


def _oof(models: list, x: np.ndarray, y: np.ndarray, task: Task) -> Table:
    splitter = (KFold if task.kind == "regression" else StratifiedKFold)(5, shuffle=True, random_state=0)
    splits = list(splitter.split(x, y))
    links = []
    for model in models:
        if task.kind == "regression":
            links.append(cross_val_predict(model, x, y, cv=splits))
            continue
        p = np.clip(cross_val_predict(model, x, y, cv=splits, method="predict_proba"), 1e-6, 1 - 1e-6)
        links.append(np.log(p[:, 1] / p[:, 0]) if task.kind == "binary" else np.log(p / p.sum(axis=1, keepdims=True)))
    return Table(np.stack(links), y, splits, task)


def _scaled(model: object) -> object:
    return make_pipeline(StandardScaler(), model)


@pytest.fixture(scope="module")
def diabetes() -> Table:
    from sklearn.linear_model import Lasso, Ridge

    x, y = datasets.load_diabetes(return_X_y=True)
    models = [Ridge(alpha=0.1), Ridge(alpha=10.0), Lasso(alpha=0.5), KNeighborsRegressor(10),
              KNeighborsRegressor(40), DecisionTreeRegressor(max_depth=3, random_state=0)]
    return _oof(models, x, y, Task("regression", 0))


@pytest.fixture(scope="module")
def cancer() -> Table:
    from sklearn.linear_model import LogisticRegression

    x, y = datasets.load_breast_cancer(return_X_y=True)
    models = [_scaled(LogisticRegression(C=1.0)), _scaled(LogisticRegression(C=0.003)), GaussianNB(),
              _scaled(KNeighborsClassifier(15)), DecisionTreeClassifier(max_depth=2, random_state=0)]
    return _oof(models, x, y, Task("binary", 2))


@pytest.fixture(scope="module")
def wine() -> Table:
    from sklearn.linear_model import LogisticRegression

    x, y = datasets.load_wine(return_X_y=True)
    models = [_scaled(LogisticRegression(C=0.05)), GaussianNB(), _scaled(KNeighborsClassifier(10)),
              DecisionTreeClassifier(max_depth=3, random_state=0)]
    return _oof(models, x, y, Task("multiclass", 3))


def _naive_greedy(table: Table, scorer: Scorer, rounds: int) -> np.ndarray:
    """The algorithm as the paper writes it: try every member in the running average, keep the
    best, repeat."""
    chosen: list[int] = []
    for _ in range(rounds):
        losses = [scorer.loss(table.links[[*chosen, m]].mean(axis=0), table.rows) for m in range(len(table.links))]
        chosen.append(int(np.argmin(losses)))
    return np.bincount(chosen, minlength=len(table.links))


def test_greedy_is_caruanas_selection_with_replacement(diabetes: Table) -> None:
    scorer = diabetes.scorer("rmse")
    counts = greedy_counts(diabetes.links, scorer, diabetes.rows)
    np.testing.assert_array_equal(counts, _naive_greedy(diabetes, scorer, GREEDY_ROUNDS))
    assert counts.sum() == GREEDY_ROUNDS
    # With replacement: a member is added more than once while another is in the blend too,
    # a weight that choosing each member at most once cannot give.
    assert counts.max() >= 2 and np.count_nonzero(counts) >= 2


@pytest.mark.parametrize(("table", "metric"), [("diabetes", "rmse"), ("diabetes", "mae"), ("cancer", "auc"),
                                               ("cancer", "logloss"), ("cancer", "accuracy"), ("wine", "logloss"),
                                               ("wine", "accuracy")])
def test_greedy_never_scores_worse_than_the_best_member_on_the_rows_it_was_fit_on(
        table: str, metric: str, request: pytest.FixtureRequest) -> None:
    data: Table = request.getfixturevalue(table)
    scorer = data.scorer(metric)
    weights = fit_weights("greedy", data.links, scorer, data.rows)
    assert (weights >= 0).all() and weights.sum() == pytest.approx(1.0)
    best = min(scorer.loss(link, data.rows) for link in data.links)
    assert scorer.loss(combine(weights, data.links), data.rows) <= best + 1e-12


def test_a_metric_to_maximize_is_maximized(cancer: Table) -> None:
    """AUC: the first member chosen is the one with the highest AUC, not the member whose log-odds
    are reversed (the lowest AUC, which a minimizer would pick), and the blend's AUC is at least
    the best member's."""
    reversed_member = -cancer.links[0]
    table = Table(np.concatenate([cancer.links, reversed_member[None]]), cancer.y, cancer.splits, cancer.task)
    scorer = table.scorer("auc")
    aucs = table.member_scores(scorer)
    assert aucs[-1] < 0.1
    counts = greedy_counts(table.links, scorer, table.rows, rounds=1)
    assert int(np.argmax(counts)) == int(np.argmax(aucs)) != len(aucs) - 1
    weights = fit_weights("greedy", table.links, scorer, table.rows)
    assert scorer.score(combine(weights, table.links), table.rows) >= max(aucs)


def test_multiclass_blends_average_log_probabilities_row_by_row(wine: Table) -> None:
    scorer = wine.scorer("logloss")
    weights = fit_weights("greedy", wine.links, scorer, wine.rows)
    blend = combine(weights, wine.links)
    assert blend.shape == (len(wine.y), 3)
    np.testing.assert_allclose(blend, np.einsum("m,mnk->nk", weights, wine.links))
    np.testing.assert_allclose(wine.task.probabilities(blend).sum(axis=1), 1.0)


def test_mean_is_equal_weights_and_a_lone_member_is_taken_whole(diabetes: Table) -> None:
    scorer = diabetes.scorer("rmse")
    np.testing.assert_array_equal(fit_weights("mean", diabetes.links, scorer, diabetes.rows),
                                  np.full(len(diabetes.links), 1 / len(diabetes.links)))
    for kind in BLEND_KINDS:
        lone = diabetes.links[:1]
        assert np.array_equal(combine(fit_weights(kind, lone, scorer, diabetes.rows), lone), lone[0])


def test_greedy_breaks_ties_by_the_lowest_index(diabetes: Table) -> None:
    a = diabetes.links[0]
    twins = np.stack([a, a, diabetes.links[4]])
    counts = greedy_counts(twins, diabetes.scorer("rmse"), diabetes.rows)
    assert counts[1] == 0 and counts[0] > 0


def test_nested_weights_never_see_the_fold_they_score(diabetes: Table) -> None:
    """An `oracle` member is exact on fold 0's rows and far off elsewhere: weights fit on the other
    folds give it nothing, so fold 0 scores what the honest members do, not the oracle's zero."""
    valid = diabetes.splits[0][1]
    oracle = diabetes.links[0] + 200.0
    oracle[valid] = diabetes.y[valid]
    links = np.concatenate([diabetes.links, oracle[None]])[:, None]
    repeat = np.zeros(len(diabetes.splits), dtype=int)
    every = np.ones(len(diabetes.y), dtype=bool)
    scorer = diabetes.scorer("rmse")
    _, with_oracle = nested_blend("greedy", links, scorer, diabetes.splits, repeat, every)
    _, honest = nested_blend("greedy", links[:-1], scorer, diabetes.splits, repeat, every)
    assert with_oracle[0] == pytest.approx(honest[0]) and with_oracle[0] > 40


def test_rows_outside_the_fit_mask_steer_no_weights(diabetes: Table) -> None:
    scorer, rows = diabetes.scorer("rmse"), diabetes.rows
    spoiled = diabetes.links.copy()
    spoiled[0, :20] += 1000.0  # member 0 far off on twenty rows
    keep = np.ones(len(rows), dtype=bool)
    keep[:20] = False
    np.testing.assert_array_equal(fit_repeats("greedy", spoiled[:, None], scorer, np.flatnonzero(keep)),
                                  fit_repeats("greedy", diabetes.links[:, None], scorer, np.flatnonzero(keep)))


def test_shipped_weights_are_fit_on_the_rows_of_every_repeat(diabetes: Table) -> None:
    scorer = diabetes.scorer("rmse")
    two = np.stack([diabetes.links, diabetes.links[:, ::-1]], axis=1)  # [members, 2 repeats, N]
    rows = np.arange(100, 300)
    pooled = np.concatenate([two[:, 0, rows], two[:, 1, rows]], axis=1)
    np.testing.assert_array_equal(fit_repeats("greedy", two, scorer, rows),
                                  fit_weights("greedy", pooled, scorer, np.tile(rows, 2)))


def test_a_diverged_member_makes_the_blend_non_finite_instead_of_crashing(diabetes: Table) -> None:
    links = diabetes.links.copy()
    links[1, 3] = np.nan
    for kind in BLEND_KINDS:
        assert np.isnan(fit_weights(kind, links, diabetes.scorer("rmse"), diabetes.rows)).all()


def test_an_unknown_or_removed_kind_fails_naming_the_kinds_that_exist(diabetes: Table) -> None:
    with pytest.raises(UnknownBlend, match=r"^unknown blend 'stack': the blends are mean, greedy$"):
        fit_weights("stack", diabetes.links, diabetes.scorer("rmse"), diabetes.rows)


def test_a_search_picks_the_kind_with_the_best_nested_score_in_the_metrics_direction(cancer: Table) -> None:
    repeat = np.zeros(len(cancer.splits), dtype=int)
    every = np.ones(len(cancer.y), dtype=bool)
    for metric in ("auc", "logloss"):
        scorer = cancer.scorer(metric)
        choice = search_blends(cancer.links[:, None], scorer, cancer.splits, repeat, every)
        means = {kind: scores.mean() for kind, scores in choice.fold_scores.items()}
        assert set(means) == set(BLEND_KINDS)
        best = max(means, key=means.get) if scorer.metric.greater_is_better else min(means, key=means.get)
        assert choice.kind == best
        np.testing.assert_array_equal(choice.weights, fit_weights(best, cancer.links, scorer, cancer.rows))
        assert choice.oof.shape == (1, len(cancer.y))


def test_non_finite_candidates_are_dropped_with_a_reason(cancer: Table) -> None:
    broken = cancer.links.copy()
    broken[1, 5] = np.nan
    broken[3] = np.inf
    repeat, every = np.zeros(len(cancer.splits), dtype=int), np.ones(len(cancer.y), dtype=bool)
    scorer = cancer.scorer("logloss")
    choice = search_blends(broken[:, None], scorer, cancer.splits, repeat, every)
    assert set(choice.dropped) == {1, 3} and "1 of 569" in choice.dropped[1]
    assert choice.weights[1] == choice.weights[3] == 0.0
    kept = search_blends(cancer.links[[0, 2, 4], None], scorer, cancer.splits, repeat, every)
    np.testing.assert_array_equal(choice.weights[[0, 2, 4]], kept.weights)
    with pytest.raises(ValueError, match="every candidate was dropped"):
        search_blends(broken[[1, 3], None], scorer, cancer.splits, repeat, every)


def test_a_metric_of_labels_cuts_the_selection_back_to_its_best_round() -> None:
    """Accuracy is not convex in the link: on these six rows, rounds 5 and 6 of greedy selection
    score worse than its first (the best member alone), so the selection is cut back to that round."""
    y = np.array([1, 1, 1, 0, 1, 0])
    links = np.array([[1.0, 0.0, -2.0, 3.0, -1.0, 1.0], [-2.0, 1.0, 3.0, 0.0, 2.0, 0.0],
                      [3.0, 3.0, 0.0, -1.0, -3.0, 3.0]])
    scorer = Scorer(get_metric("accuracy"), y, lambda link: (link >= 0).astype(int))
    rows = np.arange(len(y))
    counts = greedy_counts(links, scorer, rows, rounds=6)
    np.testing.assert_array_equal(counts, [0, 0, 1])
    assert scorer.score(combine(counts / counts.sum(), links), rows) == max(scorer.score(m, rows) for m in links)
