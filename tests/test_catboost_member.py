"""The CatBoost member: it learns log price from the shared features, reads native category codes
as CatBoost categoricals, and is saved in CatBoost's own format, byte for byte the same for the
same fit, and loaded back (without pickle) to the very same predictions."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from pipeline.common.params import parse_section, read_params
from pipeline.house_prices.features import fit_and_transform, native_categorical, text_as_object
from pipeline.house_prices.params import FeatureParams
from pipeline.tabular.catboost_member import CATBOOST_FILE, CatBoostParams, CatBoostRegressor

ROWS, FIT_ROWS = 400, 300
# Small and quick: a few hundred shallow trees.
PARAMS = CatBoostParams(iterations=200, learning_rate=0.1, depth=4, l2_leaf_reg=3.0, random_strength=1.0,
                        bagging_temperature=1.0, border_count=64, one_hot_max_size=2, rsm=1.0,
                        boosting_type="Plain")


@dataclasses.dataclass(frozen=True)
class Fold:
    x: np.ndarray  # [ROWS, d] features of every row, from a transformer fit on the first FIT_ROWS
    y: np.ndarray  # [ROWS] log price
    categorical: np.ndarray  # [d] which columns hold native category codes


def shipped_features(encoding: str) -> FeatureParams:
    features = parse_section(read_params(ROOT / "params.yaml")["features"], FeatureParams, "features")
    return dataclasses.replace(features, encoding=encoding)


def make_fold(clean_frames, encoding: str) -> Fold:
    train, _ = clean_frames
    frame = text_as_object(train.head(ROWS))
    features = shipped_features(encoding)
    transformer, matrix = fit_and_transform(frame, np.arange(FIT_ROWS), None, features)
    return Fold(matrix.to_numpy(), np.log(frame["SalePrice"].to_numpy(dtype=np.float64)),
                native_categorical(transformer, features))


@pytest.fixture(scope="module")
def native(clean_frames) -> Fold:
    return make_fold(clean_frames, "native")


@pytest.fixture(scope="module")
def fitted(native: Fold) -> CatBoostRegressor:
    return CatBoostRegressor(PARAMS, 42).fit(native.x[:FIT_ROWS], native.y[:FIT_ROWS], native.categorical)


def rmse(prediction: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((prediction - target) ** 2)))


def test_it_learns_log_price_far_better_than_the_mean(native: Fold, fitted: CatBoostRegressor) -> None:
    held_out = slice(FIT_ROWS, None)
    prediction = fitted.predict(native.x[held_out])
    assert prediction.dtype == np.float64 and prediction.shape == (ROWS - FIT_ROWS,)
    baseline = rmse(np.full(ROWS - FIT_ROWS, native.y[:FIT_ROWS].mean()), native.y[held_out])
    assert rmse(prediction, native.y[held_out]) < 0.6 * baseline


def test_native_code_columns_are_catboost_categoricals(native: Fold, fitted: CatBoostRegressor,
                                                       tmp_path: Path) -> None:
    expected = list(np.flatnonzero(native.categorical))
    assert expected  # the native view has categorical columns
    assert fitted.model.get_cat_feature_indices() == expected
    fitted.save(tmp_path)
    assert CatBoostRegressor.load(tmp_path).model.get_cat_feature_indices() == expected


def test_one_hot_features_have_no_categoricals(clean_frames) -> None:
    onehot = make_fold(clean_frames, "onehot")
    small = dataclasses.replace(PARAMS, iterations=20)
    model = CatBoostRegressor(small, 42).fit(onehot.x[:FIT_ROWS], onehot.y[:FIT_ROWS], onehot.categorical)
    assert model.model.get_cat_feature_indices() == []
    assert np.isfinite(model.predict(onehot.x[FIT_ROWS:])).all()


def test_a_saved_model_loads_to_identical_predictions(native: Fold, fitted: CatBoostRegressor,
                                                      tmp_path: Path) -> None:
    assert fitted.save(tmp_path)["file"] == CATBOOST_FILE
    assert [p.name for p in tmp_path.iterdir()] == [CATBOOST_FILE]  # atomic: no temporary file left
    loaded = CatBoostRegressor.load(tmp_path)
    assert loaded.kind == loaded.name == "catboost"
    assert np.array_equal(loaded.predict(native.x), fitted.predict(native.x))


def test_the_same_fit_writes_the_same_bytes(native: Fold, fitted: CatBoostRegressor, tmp_path: Path) -> None:
    """CatBoost stamps each model with a random GUID and its finish time; `save` drops both
    (and the thread count), so only the trees and their training options are written."""
    again = CatBoostRegressor(PARAMS, 42).fit(native.x[:FIT_ROWS], native.y[:FIT_ROWS], native.categorical)
    fitted.save(tmp_path / "first")
    again.save(tmp_path / "again")
    assert (tmp_path / "first" / CATBOOST_FILE).read_bytes() == (tmp_path / "again" / CATBOOST_FILE).read_bytes()
    other_seed = CatBoostRegressor(PARAMS, 7).fit(native.x[:FIT_ROWS], native.y[:FIT_ROWS], native.categorical)
    assert not np.array_equal(other_seed.predict(native.x), fitted.predict(native.x))


def test_category_codes_must_be_whole_numbers(native: Fold) -> None:
    x = native.x[:FIT_ROWS].copy()
    column = int(np.flatnonzero(native.categorical)[0])
    x[0, column] = 0.5
    with pytest.raises(ValueError, match="integer category codes"):
        CatBoostRegressor(PARAMS, 42).fit(x, native.y[:FIT_ROWS], native.categorical)


def test_params_out_of_range_are_refused() -> None:
    from pipeline.common.params import ParamsError

    raw = {field.name: getattr(PARAMS, field.name) for field in dataclasses.fields(CatBoostParams)}
    assert parse_section(raw, CatBoostParams, "catboost") == PARAMS
    for key, bad in (("learning_rate", 0.0), ("depth", 0), ("rsm", 0.0), ("boosting_type", "Lossguide")):
        with pytest.raises(ParamsError, match=key):
            parse_section({**raw, key: bad}, CatBoostParams, "catboost")
