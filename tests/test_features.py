"""The shared feature module: fit on training rows only, applied unchanged, never NaN."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import model_params, plain_features, train_params

import pipeline.house_prices.cv as cv_module
from pipeline.house_prices.features import (
    ORDINAL_SCALES,
    encoder,
    fit_transformer,
    numeric_columns,
    outlier_rows,
    transform,
)

PLAIN = plain_features(log_skewed=False)
SKEWED = plain_features(log_skewed=True)


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
    transductive = fit_transformer(train, test, plain_features(fit_on="train+test", log_skewed=False))
    mean = lambda t: encoder(t).named_transformers_["numeric"][-1].mean_  # noqa: E731
    assert not np.allclose(mean(inductive), mean(transductive))
    both = pd.concat([train.drop(columns="SalePrice"), test])
    imputed = encoder(transductive).named_transformers_["numeric"][0].statistics_[0]
    assert imputed == pytest.approx(both["MSSubClass"].mean())


def test_skewed_columns_are_learned_from_the_fit_rows(clean_frames) -> None:
    train, _ = clean_frames
    step = encoder(fit_transformer(train, None, SKEWED)).named_transformers_["numeric"][0]
    assert "LotArea" in step.skewed_ and "OverallQual" not in step.skewed_
    # Rows where LotArea happens to be symmetric: the same step learns not to log it.
    calm = train.sort_values("LotArea").iloc[600:700]
    assert "LotArea" not in encoder(fit_transformer(calm, None, SKEWED)).named_transformers_["numeric"][0].skewed_


def test_each_fold_transformer_never_sees_its_validation_rows(clean_frames, monkeypatch) -> None:
    train, test = clean_frames
    small = train.head(200)
    seen: list[set[int]] = []
    real_fit = cv_module.fit_and_transform

    def recording_fit(frame, fit_idx, extra, params):
        seen.append(set(frame["Id"].iloc[fit_idx]))
        return real_fit(frame, fit_idx, extra, params)

    monkeypatch.setattr(cv_module, "fit_and_transform", recording_fit)
    splits = cv_module.split_folds(len(small), 4, 0)
    cv_module.cross_validate(small, test, SKEWED, model_params("linear"), train_params(epochs=1), splits, 0)
    assert len(seen) == 4
    for fit_ids, (train_idx, valid_idx) in zip(seen, splits, strict=True):
        assert fit_ids == set(small["Id"].iloc[train_idx])
        assert fit_ids.isdisjoint(set(small["Id"].iloc[valid_idx]))


def _description_codes(house_prices_dir) -> dict[str, set[str]]:
    """Codes listed under each column of Kaggle's data_description.txt (from the zip)."""
    import re
    import zipfile

    with zipfile.ZipFile(house_prices_dir / "house-prices-advanced-regression-techniques.zip") as zf:
        text = zf.read("data_description.txt").decode("latin-1")
    codes: dict[str, set[str]] = {}
    column = None
    for line in text.splitlines():
        header = re.match(r"^(\w+):", line)
        if header:
            column = header.group(1)
            codes[column] = set()
        elif column and (m := re.match(r"^\s+(\S+)\t", line)):
            codes[column].add(m.group(1))
    return codes


def test_ordinal_maps_cover_every_category_of_the_data_description(house_prices_dir, clean_frames) -> None:
    described = _description_codes(house_prices_dir)
    train, test = clean_frames
    for column, scale in ORDINAL_SCALES.items():
        assert described[column], f"{column} has no codes in the description"
        assert described[column] <= set(scale), f"{column}: {described[column] - set(scale)} unmapped"
        seen = set(pd.concat([train[column], test[column]]).dropna())
        assert seen <= set(scale), f"{column}: data holds {seen - set(scale)}"
        assert len(set(scale.values())) == len(scale), f"{column}: two grades share a code"


@pytest.mark.parametrize("mode", ["add", "replace"])
def test_ordinal_codes_sit_next_to_or_instead_of_the_one_hot(clean_frames, mode: str) -> None:
    train, _ = clean_frames
    params = plain_features(log_skewed=False, ordinal=mode)
    matrix = transform(fit_transformer(train, None, params), train)
    code = "ExterQual_ord" if mode == "add" else "ExterQual"
    assert code in matrix.columns
    assert ("ExterQual_Gd" in matrix.columns) == (mode == "add")
    # Better grades get higher codes (standardized, so compare order, not values).
    by_grade = matrix[code].groupby(train["ExterQual"]).mean()
    assert by_grade["Ex"] > by_grade["Gd"] > by_grade["TA"] > by_grade["Fa"]
    no_basement = train["BsmtQual"].isna()
    basement = matrix["BsmtQual_ord" if mode == "add" else "BsmtQual"]
    assert basement[no_basement].max() < basement[~no_basement].min()


def test_derived_features_are_the_documented_sums_and_ages(clean_frames) -> None:
    from pipeline.house_prices.features import DerivedFeatures

    train, _ = clean_frames
    out = DerivedFeatures().fit(train).transform(train)
    row = train.iloc[0]
    assert out["TotalSF"].iloc[0] == row["TotalBsmtSF"] + row["1stFlrSF"] + row["2ndFlrSF"]
    halves = row["HalfBath"] + row["BsmtHalfBath"]
    assert out["TotalBath"].iloc[0] == row["FullBath"] + row["BsmtFullBath"] + 0.5 * halves
    assert out["HouseAge"].iloc[0] == row["YrSold"] - row["YearBuilt"]
    matrix = transform(fit_transformer(train, None, plain_features(derived=True)), train)
    assert {"TotalSF", "TotalBath", "TotalPorchSF", "HouseAge", "RemodAge"} <= set(matrix.columns)


def test_outliers_are_dropped_from_training_folds_only(clean_frames, monkeypatch) -> None:
    train, test = clean_frames
    outliers = set(train["Id"][outlier_rows(train)])
    assert len(outliers) == 2  # the two famous partial sales
    seen: list[set[int]] = []
    real_fit = cv_module.fit_and_transform
    monkeypatch.setattr(cv_module, "fit_and_transform", lambda frame, idx, extra, params:
                        seen.append(set(frame["Id"].iloc[idx])) or real_fit(frame, idx, extra, params))
    params = plain_features(drop_outliers=True)
    fast = train_params(epochs=2, batch_size=256)
    result = cv_module.cross_validate(train, test, params, model_params("linear"), fast,
                                      cv_module.split_folds(len(train), 3, 0), 0)
    for fit_ids, (_, valid_idx) in zip(seen, cv_module.split_folds(len(train), 3, 0), strict=True):
        assert fit_ids.isdisjoint(outliers)
        assert fit_ids.isdisjoint(set(train["Id"].iloc[valid_idx]))
    # Every row, outliers included, is still predicted and scored out of fold.
    assert np.isfinite(result.oof_prices).all() and len(result.oof_prices) == len(train)


@pytest.mark.parametrize("fit_on", ["train", "train+test"])
def test_fit_and_transform_equals_fitting_then_transforming(clean_frames, fit_on: str) -> None:
    from pipeline.house_prices.features import fit_and_transform

    train, test = clean_frames
    params = plain_features(fit_on=fit_on, ordinal="add", derived=True, clip=True)
    fit_idx = np.random.default_rng(0).permutation(len(train))[:1000]
    transformer, matrix = fit_and_transform(train, fit_idx, test, params)
    reference = transform(fit_transformer(train.iloc[fit_idx], test, params), train)
    pd.testing.assert_frame_equal(matrix, reference)
    refit = fit_transformer(train.iloc[fit_idx], test, params)
    pd.testing.assert_frame_equal(transform(transformer, test), transform(refit, test))


def test_neighborhood_cap_learns_each_neighbourhoods_max_from_the_fit_rows(clean_frames) -> None:
    from pipeline.house_prices.features import CapWithinGroup

    train, _ = clean_frames
    fit = train[~train["Id"].isin([524, 1299])]  # the two giant Edwards partial sales held out
    cap = CapWithinGroup("Neighborhood", min_rows=30).fit(fit)
    edwards_max = fit.loc[fit["Neighborhood"] == "Edwards", "GrLivArea"].max()
    giants = cap.transform(train[train["Id"].isin([524, 1299])])
    assert edwards_max < 2500 and (giants["GrLivArea"] == edwards_max).all()
    assert (giants["OverallQual"] == fit.loc[fit["Neighborhood"] == "Edwards", "OverallQual"].max()).all()
    # Below the cap nothing moves; the lower end is never raised; text columns are untouched.
    out = cap.transform(fit)
    pd.testing.assert_frame_equal(out, fit, check_dtype=False)  # counts come back as floats


def test_neighborhood_cap_leaves_small_unseen_and_missing_alone(clean_frames) -> None:
    from pipeline.house_prices.features import CapWithinGroup

    train, _ = clean_frames
    sizes = train["Neighborhood"].value_counts()
    small = sizes.index[sizes < 30][0]
    cap = CapWithinGroup("Neighborhood", min_rows=30).fit(train)
    odd = train.head(3).copy()
    odd["Neighborhood"] = [small, "Atlantis", "Edwards"]
    odd["GrLivArea"] = 50_000
    odd.loc[odd.index[2], "LotFrontage"] = np.nan
    out = cap.transform(odd)
    assert list(out["GrLivArea"][:2]) == [50_000, 50_000]  # too few rows / never seen: no cap
    assert out["GrLivArea"].iloc[2] == train.loc[train["Neighborhood"] == "Edwards", "GrLivArea"].max()
    assert np.isnan(out["LotFrontage"].iloc[2])  # imputed later, not replaced by the cap


def test_capped_transformer_round_trips_through_skops(clean_frames, tmp_path) -> None:
    from pipeline.house_prices.features import load_transformer, save_transformer

    train, test = clean_frames
    params = plain_features(derived=True, clip=True, neighborhood_cap=True)
    transformer = fit_transformer(train, None, params)
    save_transformer(transformer, tmp_path / "t.skops")
    pd.testing.assert_frame_equal(transform(load_transformer(tmp_path / "t.skops"), test), transform(transformer, test))


SAVE_ONE_FIT = """
import sys, zipfile
import pandas as pd
from pathlib import Path
from pipeline.house_prices.features import fit_transformer, save_transformer
from pipeline.common.params import StageParams
from pipeline.house_prices.params import FeatureParams
from pipeline.house_prices.validation import validate_raw
archive = zipfile.ZipFile(sys.argv[1])
train, test, _ = validate_raw(pd.read_csv(archive.open("train.csv")).head(200),
                              pd.read_csv(archive.open("test.csv")).head(50))
params = StageParams(Path(sys.argv[3])).section("features", FeatureParams)  # the shipped options
save_transformer(fit_transformer(train, test, params), Path(sys.argv[2]))
"""


def test_saving_the_same_fit_gives_the_same_bytes_in_any_process(tmp_path) -> None:
    """skops names arrays after memory addresses and stamps times: the canonical archive does not."""
    import subprocess
    import sys

    from conftest import BUNDLED_ZIP

    params_file = BUNDLED_ZIP.parents[2] / "params.yaml"
    subprocess.run([sys.executable, "-c", SAVE_ONE_FIT, str(BUNDLED_ZIP), str(tmp_path / "first.skops"),
                    str(params_file)], check=True)
    # The same fit saved in this process: other memory addresses, a later time, the same bytes.
    from pipeline.common.params import StageParams
    from pipeline.house_prices.features import save_transformer
    from pipeline.house_prices.params import FeatureParams
    from pipeline.house_prices.validation import validate_raw

    with zipfile.ZipFile(BUNDLED_ZIP) as archive:
        train, test, _ = validate_raw(pd.read_csv(archive.open("train.csv")).head(200),
                                      pd.read_csv(archive.open("test.csv")).head(50))
    params = StageParams(params_file).section("features", FeatureParams)
    save_transformer(fit_transformer(train, test, params), tmp_path / "second.skops")
    assert (tmp_path / "first.skops").read_bytes() == (tmp_path / "second.skops").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.skops", "second.skops"]  # no temp files


def test_price_cap_is_each_neighbourhoods_dearest_fit_row_sale(clean_frames) -> None:
    from pipeline.house_prices.features import apply_price_cap, fit_price_cap

    train, _ = clean_frames
    rows = np.flatnonzero(~train["Id"].isin([524, 1299]).to_numpy())  # the Edwards partial sales held out
    cap = fit_price_cap(train, rows, plain_features(price_cap=True, neighborhood_min_rows=30))
    fit = train.iloc[rows]
    sizes = fit["Neighborhood"].value_counts()
    assert set(cap) == set(sizes.index[sizes >= 30])  # small neighbourhoods are left alone
    assert cap["Edwards"] == fit.loc[fit["Neighborhood"] == "Edwards", "SalePrice"].max() < 400_000
    houses = train.head(4).assign(Neighborhood=["Edwards", "Edwards", sizes.index[sizes < 30][0], "Atlantis"])
    capped = apply_price_cap(np.array([1e6, 1e5, 1e7, 1e7]), houses, cap)
    assert list(capped) == [cap["Edwards"], 1e5, 1e7, 1e7]  # above: capped; below, small, unseen: unchanged
    assert fit_price_cap(train, rows, plain_features(price_cap=False)) is None


def test_native_encoding_clips_numbers_but_never_codes(clean_frames) -> None:
    train, test = clean_frames
    params = plain_features(encoding="native", clip=True)
    transformer = fit_transformer(train.head(300), None, params)
    huge = test.head(2).assign(GrLivArea=1e6, MSZoning="Nowhere")
    out = transform(transformer, huge)
    assert (out["GrLivArea"] == transform(transformer, train.head(300))["GrLivArea"].max()).all()
    assert (out["MSZoning"] == -1).all()
