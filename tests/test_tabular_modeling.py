"""The generic path's core on real tables: features decided per fold, every family on every task,
link-space blends, the decision threshold, the saved model, the submission's layouts, hooks.

Tables: scikit-learn's breast cancer (binary, shipped with scikit-learn), the Palmer penguins
and the Auto MPG cars (tests/public_tables.py), at their real small sizes.
"""

from __future__ import annotations

import dataclasses
import sys
import types

import numpy as np
import pandas as pd
import pytest

from pipeline.tabular.competition import Competition, SubmissionFormat
from pipeline.tabular.features import column_roles
from pipeline.tabular.hooks import HookError, Hooks, load_hooks
from pipeline.tabular.members import FAMILIES
from pipeline.tabular.modeling import Problem, cross_validate, fit_blend, load_blend, save_blend
from pipeline.tabular.params import DEFAULTS, parse_tabular
from pipeline.tabular.submission import InvalidSubmission, check_submission, submission_frame

FAST = {"train.epochs": 15, "train.batch_size": 64, "lightgbm.num_boost_round": 60, "catboost.iterations": 60}


def experiment(members: list[dict], folds: int = 3, blend: str = "mean"):
    raw = {k: v for k, v in DEFAULTS.items() if k not in ("data", "runtime")}
    raw = {**raw, "cv": {"folds": folds, "shuffle": True},
           "model": {"blend": blend, "members": [{**m, **FAST} for m in members]}}
    return parse_tabular(raw, tuple(FAMILIES))


EVERY_FAMILY = [{"kind": k} for k in FAMILIES]


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = np.where(frame["diagnosis"] == 1, "benign", "malignant")
    frame.insert(0, "id", np.arange(len(frame)))
    return frame


def binary(metric: str, layout: str) -> Competition:
    return Competition("cancer", "id", "diagnosis", "binary", metric,
                       SubmissionFormat(("id", "diagnosis"), layout, positive="malignant"), {},
                       classes=("benign", "malignant"))


def test_every_family_beats_the_trivial_baseline_on_a_binary_table(cancer):
    problem = Problem.of(binary("auc", "probability"), Hooks())
    result = cross_validate(problem, experiment(EVERY_FAMILY), cancer, cancer.drop(columns="diagnosis").head(20))
    assert np.allclose(result.baseline_scores, 0.5)  # a constant probability ranks nothing
    for kind, scores in zip(FAMILIES, result.member_scores, strict=True):
        assert scores.mean() > 0.95, kind
    assert result.mean > 0.98 and result.test.shape == (20,)


def test_a_label_metric_gets_a_threshold_chosen_on_out_of_fold_probabilities(cancer):
    problem = Problem.of(binary("f1", "labels"), Hooks())
    result = cross_validate(problem, experiment([{"kind": "sklearn"}]), cancer, cancer.drop(columns="diagnosis"))
    y = problem.fit_target(cancer)
    assert 0 < result.threshold < 1
    assert problem.score(y, result.oof, result.threshold) >= problem.score(y, result.oof, 0.5)
    assert result.mean > 0.9


def test_the_saved_blend_predicts_what_the_fitted_one_did(cancer, tmp_path):
    competition = binary("logloss", "probability")
    problem = Problem.of(competition, Hooks())
    exp = experiment(EVERY_FAMILY)
    blend = fit_blend(problem, exp.members, problem.features(cancer), problem.fit_target(cancer))
    blend.weights = np.arange(1, len(FAMILIES) + 1) / sum(range(1, len(FAMILIES) + 1))  # the CV's blend weights
    save_blend(blend, problem, tmp_path / "model")
    loaded, spec = load_blend(tmp_path / "model")
    features = problem.features(cancer.drop(columns="diagnosis"))
    assert np.allclose(loaded.link(features), blend.link(features), atol=1e-6)
    np.testing.assert_allclose(loaded.link(features), blend.weights @ np.stack(blend.member_links(features)),
                               atol=1e-6)
    assert [m["kind"] for m in spec["members"]] == list(FAMILIES)
    assert not list((tmp_path / "model").glob("*.pkl"))


def test_multiclass_members_blend_log_probabilities_into_rows_that_sum_to_one(tmp_path):
    from tests.public_tables import penguins

    layout = penguins(tmp_path / "k")
    train, test = pd.read_csv(layout.folder / "train.csv"), pd.read_csv(layout.folder / "test.csv")
    classes = tuple(sorted(train["Species"].unique()))
    competition = Competition("penguins", "id", "Species", "multiclass", "logloss",
                              SubmissionFormat(("id", *classes), "class_probabilities"), {}, classes=classes)
    problem = Problem.of(competition, Hooks())
    result = cross_validate(problem, experiment([{"kind": "lightgbm"}, {"kind": "linear"}]), train, test)
    assert result.mean < 0.3 < result.baseline_scores.mean()
    frame = submission_frame(competition, test["id"].to_numpy(), result.test, 0.5)
    check_submission(frame, competition, test["id"].to_numpy())
    assert np.allclose(frame[list(classes)].sum(axis=1), 1)
    roles = column_roles(problem.features(train), experiment([{"kind": "sklearn"}]).members[0].features)
    assert "Individual ID" in roles.dropped and "Island" in roles.onehot  # ids dropped, few values one-hot


def test_label_layouts_write_the_classes_as_train_spells_them(cancer):
    competition = binary("accuracy", "labels")
    link = np.array([-3.0, 3.0, 0.1])
    frame = submission_frame(competition, np.array([1, 2, 3]), link, threshold=0.6)
    assert frame["diagnosis"].tolist() == ["benign", "malignant", "benign"]  # 0.52 < 0.6
    probability = submission_frame(binary("auc", "probability"), np.array([1, 2, 3]), link, 0.5)
    assert probability["diagnosis"].between(0, 1).all() and probability["diagnosis"].iloc[1] > 0.9


def test_a_submission_that_kaggle_would_reject_is_refused():
    competition = binary("accuracy", "labels")
    ids = np.array([1, 2])
    check_submission(pd.DataFrame({"id": [2, 1], "diagnosis": ["benign", "malignant"]}), competition, ids)
    for bad, why in [(pd.DataFrame({"id": [1, 2], "label": ["benign", "benign"]}), "columns"),
                     (pd.DataFrame({"id": [1, 1], "diagnosis": ["benign", "benign"]}), "repeats ids"),
                     (pd.DataFrame({"id": [1, 3], "diagnosis": ["benign", "benign"]}), "differ from the test ids"),
                     (pd.DataFrame({"id": [1, 2], "diagnosis": ["benign", "maybe"]}), "outside the classes")]:
        with pytest.raises(InvalidSubmission, match=why):
            check_submission(bad, competition, ids)
    probabilities = binary("auc", "probability")
    with pytest.raises(InvalidSubmission, match=r"outside \[0, 1\]"):
        check_submission(pd.DataFrame({"id": [1, 2], "diagnosis": [0.5, 1.5]}), probabilities, ids)


def test_a_log_metric_fits_log_values_and_submits_values(tmp_path):
    from tests.public_tables import cars

    layout = cars(tmp_path / "k")
    train, test = pd.read_csv(layout.folder / "train.csv"), pd.read_csv(layout.folder / "test.csv")
    competition = Competition("cars", "id", "Miles_per_Gallon", "regression", "rmsle",
                              SubmissionFormat(("id", "Miles_per_Gallon"), "values"), {})
    problem = Problem.of(competition, Hooks())
    assert np.allclose(problem.fit_target(train), np.log1p(train["Miles_per_Gallon"]))
    result = cross_validate(problem, experiment([{"kind": "lightgbm"}, {"kind": "mlp"}]), train, test)
    assert result.mean < 0.5 * result.baseline_scores.mean()
    frame = submission_frame(competition, test["id"].to_numpy(), result.test, 0.5)
    assert frame["Miles_per_Gallon"].between(5, 60).all()  # miles per gallon, not their logs


def test_a_competition_module_hook_adds_columns_before_the_features(tmp_path, monkeypatch, cancer):
    module = types.ModuleType("cancer_hooks")
    module.prepare = lambda frame: frame.assign(area_ratio=frame["worst area"] / frame["mean area"])
    monkeypatch.setitem(sys.modules, "cancer_hooks", module)
    competition = dataclasses.replace(binary("auc", "probability"), module="cancer_hooks")
    problem = Problem.of(competition, load_hooks(competition.module))
    assert "area_ratio" in problem.features(cancer).columns
    assert "diagnosis" not in problem.features(cancer).columns and "id" not in problem.features(cancer).columns
    with pytest.raises(HookError, match="cannot be imported"):
        load_hooks("no_such_competition_module")


def test_the_oof_library_reads_back_exactly_the_members_whose_ingredients_did_not_change(cancer, tmp_path):
    from pipeline.tabular.library import MemberLibrary
    from pipeline.tabular.oof_library import OOFLibrary

    library = MemberLibrary(OOFLibrary(tmp_path / "oof"))
    problem = Problem.of(binary("auc", "probability"), Hooks())
    test = cancer.drop(columns="diagnosis").head(30)
    members = [{"kind": "lightgbm"}, {"kind": "linear"}]
    first = cross_validate(problem, experiment(members), cancer, test, library)
    again = cross_validate(problem, experiment(members), cancer, test, library)
    assert (first.hits, again.hits) == (0, 2)
    assert np.array_equal(first.oof, again.oof) and np.array_equal(first.test, again.test)
    assert again.mean == first.mean
    # a torch key leaves the tree member alone; the torch member is recomputed
    changed = cross_validate(problem, experiment([{"kind": "lightgbm"}, {"kind": "linear", "train.lr": 0.02}]),
                             cancer, test, library)
    assert changed.hits == 1 and np.array_equal(changed.member_oof[0], first.member_oof[0])
    assert len(library.library.entries()) == 3


def test_a_greedy_blend_leaves_out_a_member_that_drags_the_mean_down_and_is_scored_nested(cancer):
    from pipeline.tabular.blend import nested_blend
    from pipeline.tabular.modeling import fold_plan

    problem = Problem.of(binary("logloss", "probability"), Hooks())
    test = cancer.drop(columns="diagnosis").head(10)
    members = [{"kind": "lightgbm"}, {"kind": "sklearn"}, {"kind": "linear", "train.epochs": 1, "train.lr": 1e-4}]
    everyone = cross_validate(problem, experiment(members), cancer, test)
    greedy = cross_validate(problem, experiment(members, blend="greedy"), cancer, test)
    np.testing.assert_array_equal(everyone.weights, [1 / 3] * 3)
    assert greedy.weights[2] == 0 and greedy.weights.sum() == pytest.approx(1.0)
    assert greedy.mean < everyone.mean
    assert np.array_equal(greedy.oof, greedy.weights @ np.stack(greedy.member_oof))
    # Its fold scores are nested: each fold blended by weights fit on the other folds.
    y = problem.fit_target(cancer)
    splits = fold_plan(y, problem.task, 3, True, DEFAULTS["base"]["seed"])
    _, scores = nested_blend("greedy", np.stack(greedy.member_oof)[:, None], problem.link_scorer(y), splits,
                             np.zeros(3, dtype=int), np.ones(len(y), dtype=bool))
    np.testing.assert_allclose(greedy.fold_scores, scores)
