"""The shared feature module: fit on training rows only, applied unchanged, never NaN."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pipeline.cv as cv_module
from pipeline.features import fit_transformer, numeric_columns, transform
from pipeline.params import FeatureParams, ModelParams, TrainParams

PLAIN = FeatureParams(fit_on="train", log_skewed=False, skew_threshold=0.75)
SKEWED = FeatureParams(fit_on="train", log_skewed=True, skew_threshold=0.75)


def test_numeric_columns_are_chosen_by_dtype_kind_not_by_object(clean_frames) -> None:
    train, _ = clean_frames
    numeric = numeric_columns(train)
    assert "LotArea" in numeric and "Neighborhood" not in numeric
    assert train["Neighborhood"].dtype != object  # pandas 3: text is `str`, not object


def test_matrix_is_finite_standardized_and_one_hot(clean_frames) -> None:
    train, test = clean_frames
    transformer = fit_transformer(train, None, PLAIN)
    matrix = transform(transformer, train)
    assert np.isfinite(matrix.to_numpy()).all()
    assert matrix["GrLivArea"].mean() == pytest.approx(0, abs=1e-9)
    assert matrix["GrLivArea"].std(ddof=0) == pytest.approx(1, abs=1e-9)
    assert "Alley_missing" in matrix.columns  # NaN is a category of its own
    assert transform(transformer, test).shape[1] == matrix.shape[1]


def test_unseen_category_at_prediction_is_ignored_not_an_error(clean_frames) -> None:
    train, test = clean_frames
    transformer = fit_transformer(train, None, PLAIN)
    odd = test.head(2).copy()
    odd["Neighborhood"] = "Atlantis"
    matrix = transform(transformer, odd)
    assert (matrix.filter(like="Neighborhood_") == 0).all().all()


def test_transductive_variant_fits_on_test_rows_too(clean_frames) -> None:
    train, test = clean_frames
    inductive = fit_transformer(train, test, PLAIN)
    transductive = fit_transformer(train, test, FeatureParams("train+test", False, 0.75))
    mean = lambda t: t.named_transformers_["numeric"][-1].mean_  # noqa: E731
    assert not np.allclose(mean(inductive), mean(transductive))
    both = pd.concat([train.drop(columns="SalePrice"), test])
    assert transductive.named_transformers_["numeric"][0].statistics_[0] == pytest.approx(both["MSSubClass"].mean())


def test_skewed_columns_are_learned_from_the_fit_rows(clean_frames) -> None:
    train, _ = clean_frames
    step = fit_transformer(train, None, SKEWED).named_transformers_["numeric"][0]
    assert "LotArea" in step.skewed_ and "OverallQual" not in step.skewed_
    # Rows where LotArea happens to be symmetric: the same step learns not to log it.
    calm = train.sort_values("LotArea").iloc[600:700]
    assert "LotArea" not in fit_transformer(calm, None, SKEWED).named_transformers_["numeric"][0].skewed_


def test_each_fold_transformer_never_sees_its_validation_rows(clean_frames, monkeypatch) -> None:
    train, test = clean_frames
    small = train.head(200)
    seen: list[set[int]] = []
    real_fit = cv_module.fit_transformer

    def recording_fit(rows, extra, params):
        seen.append(set(rows["Id"]))
        return real_fit(rows, extra, params)

    monkeypatch.setattr(cv_module, "fit_transformer", recording_fit)
    params = TrainParams(target="log", loss="mse", huber_delta=0.1, epochs=1, batch_size=64, lr=0.01, weight_decay=0.0, schedule="constant", device="cpu", threads=1)
    cv_module.cross_validate(small, test, SKEWED, ModelParams("linear", (), 0.0, False), params, folds=4, seed=0)
    splits = cv_module.split_folds(len(small), 4, 0)
    assert len(seen) == 4
    for fit_ids, (train_idx, valid_idx) in zip(seen, splits):
        assert fit_ids == set(small["Id"].iloc[train_idx])
        assert fit_ids.isdisjoint(set(small["Id"].iloc[valid_idx]))
