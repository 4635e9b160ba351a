"""Members from other families: scikit-learn and LightGBM regressors on the shared folds and
features, the trees' native-category view, and every kind saved and loaded without pickle."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from conftest import SHIPPED_PARAMS, plain_features

from pipeline.common.params import ParamsError, parse_section, with_overrides
from pipeline.house_prices.artifacts import load_members, save_members
from pipeline.house_prices.cv import split_folds
from pipeline.house_prices.experiment import EnsembleCV, fit_experiment, parse_experiment, run_cv
from pipeline.house_prices.features import categorical_columns, fit_and_transform, native_categorical, text_as_object
from pipeline.house_prices.final import predict_blend, predict_frame
from pipeline.house_prices.training import log_rmse
from pipeline.tuning.space import parse_space

# Small and quick: 3 folds, short torch training, a few hundred boosting rounds.
FAST = {"train.epochs": 4, "train.batch_size": 128, "cv.folds": 3, "cv.repeats": 1, "lightgbm.num_boost_round": 60,
        "sklearn.hist_gradient_boosting.max_iter": 40, "model.members": []}
LGBM_NATIVE = {"model.kind": "lightgbm", "features.encoding": "native"}


def _raw(**overrides: object) -> dict:
    return with_overrides(copy.deepcopy(SHIPPED_PARAMS), {**FAST, **overrides})


@pytest.fixture(autouse=True, scope="module")
def _one_thread_each():
    """One thread for torch, LightGBM (which takes torch's count) and OpenMP/BLAS (scikit-learn's
    HistGradientBoosting takes every core otherwise): on a few hundred rows more threads gain
    nothing, and on the test runner's busy cores they wait on each other (a 40-tree
    HistGradientBoosting CV took seconds instead of under one)."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("overrides", [
    {"model.kind": "sklearn", "sklearn.estimator": "lasso_cv", "sklearn.lasso_cv.inner_folds": 3},
    {"model.kind": "sklearn", "sklearn.estimator": "svr"},
    {"model.kind": "sklearn", "sklearn.estimator": "hist_gradient_boosting", "features.encoding": "native"},
    LGBM_NATIVE,
    {"model.kind": "lightgbm"},
], ids=["lasso_cv", "svr", "hist_gb_native", "lightgbm_native", "lightgbm_onehot"])
def test_a_member_of_another_family_is_scored_like_the_torch_models(clean_frames, overrides: dict) -> None:
    train, test = clean_frames
    small = train.head(300)
    result = run_cv(parse_experiment(_raw(**overrides)), small, test)
    y = small["SalePrice"].to_numpy()
    assert np.isfinite(result.oof_prices).all()
    for score, (_, valid) in zip(result.fold_scores, split_folds(300, 3, 42), strict=True):
        assert score == pytest.approx(log_rmse(result.oof_prices[valid], y[valid]))
    assert result.mean < 0.3  # a model, not a constant (the price spread alone is ~0.4)
    assert result.history.valid.shape == (1, 3) and np.allclose(result.history.valid[0], result.fold_scores)


def test_lightgbm_members_are_repeatable(clean_frames) -> None:
    train, test = clean_frames
    params = parse_experiment(_raw(**LGBM_NATIVE))
    first, again = (run_cv(params, train.head(300), test) for _ in range(2))
    np.testing.assert_array_equal(first.oof_repeats, again.oof_repeats)
    other_seed = run_cv(parse_experiment(_raw(**LGBM_NATIVE, **{"base.seed": 1})), train.head(300), test)
    assert not np.array_equal(first.oof_repeats, other_seed.oof_repeats)


def test_native_encoding_gives_one_integer_code_per_categorical_column(clean_frames) -> None:
    train, test = clean_frames
    features = plain_features(encoding="native", clip=True)
    frame = text_as_object(train.head(200))
    transformer, matrix = fit_and_transform(frame, np.arange(100), None, features)
    mask = native_categorical(transformer, features)
    names = list(matrix.columns[mask])
    assert names == categorical_columns(frame.drop(columns=["Id", "SalePrice"]))  # one column each, no one-hot
    codes = matrix.loc[:, mask].to_numpy()
    assert (codes == np.round(codes)).all() and codes[:100].min() >= 0  # fit rows: every category known
    assert codes[100:].min() >= -1  # rows outside the fit: -1 for a category the fit never saw
    onehot = plain_features()
    transformer, _ = fit_and_transform(frame, np.arange(100), None, onehot)
    assert not native_categorical(transformer, onehot).any()


@pytest.mark.parametrize("overrides", [
    {"model.kind": "mlp", "features.encoding": "native"},
    {"model.kind": "sklearn", "sklearn.estimator": "lasso", "features.encoding": "native"},
])
def test_native_codes_are_refused_for_models_that_would_read_them_as_sizes(overrides: dict) -> None:
    with pytest.raises(ParamsError, match="features.encoding: native .* is for tree models"):
        parse_experiment(_raw(**overrides))


def test_a_bad_member_names_its_position(clean_frames) -> None:
    raw = _raw(**{"model.kind": "ensemble", "model.members": [{"model.kind": "linear"},
                                                              {"model.kind": "mlp", "features.encoding": "native"}]})
    with pytest.raises(ParamsError, match=r"model.members\[1\]: features.encoding"):
        parse_experiment(raw)


def test_every_member_kind_round_trips_through_its_safe_file_format(clean_frames, tmp_path) -> None:
    """What the predict stage (and any other consumer) does: load_members + predict_blend."""
    train, test = clean_frames
    members = [{"model.kind": "linear"},
               {"model.kind": "sklearn", "sklearn.estimator": "ridge"},
               {"model.kind": "sklearn", "sklearn.estimator": "hist_gradient_boosting", "features.encoding": "native"},
               LGBM_NATIVE]
    params = parse_experiment(_raw(**{"model.kind": "ensemble", "model.members": members}))
    weights = [0.1, 0.2, 0.3, 0.4]
    fitted = fit_experiment(params, train.head(400), test, weights=weights)
    save_members(fitted, tmp_path / "model", {"blend": "greedy"})

    loaded = load_members(tmp_path / "model")
    assert [m.weight for m in loaded] == weights
    rows = test.head(50)
    for original, again in zip(fitted, loaded, strict=True):
        np.testing.assert_allclose(predict_frame(again, rows)["SalePrice"], predict_frame(original, rows)["SalePrice"],
                                   rtol=1e-6)
    blend = predict_blend(loaded, rows)["SalePrice"].to_numpy()
    logs = np.array([np.log(predict_frame(m, rows)["SalePrice"].to_numpy()) for m in loaded])
    np.testing.assert_allclose(blend, np.exp(np.array(weights) @ logs), rtol=1e-9)
    files = sorted(p.name for p in (tmp_path / "model").rglob("*") if p.is_file())
    assert {"weights.safetensors", "estimator.skops", "lightgbm.txt"} <= set(files)
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".joblib"))]
    assert json.loads((tmp_path / "model" / "member3" / "config.json").read_text())["model"]["kind"] == "lightgbm"

    # Saved again, later and on another thread count, the same fit is the same bytes (DVC sees
    # no change): no timestamps, memory addresses or thread counts in the files.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)
    try:
        save_members(fitted, tmp_path / "again", {"blend": "greedy"})
    finally:
        torch.set_num_threads(threads)
    for path in (tmp_path / "model").rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (tmp_path / "again" / path.relative_to(tmp_path / "model")).read_bytes(), path


def test_an_ensemble_across_families_blends_with_learned_weights(clean_frames) -> None:
    train, test = clean_frames
    members = [{"model.kind": "linear"}, {"model.kind": "sklearn", "sklearn.estimator": "ridge"}, LGBM_NATIVE]
    raw = _raw(**{"model.kind": "ensemble", "model.blend": "greedy", "model.members": members})
    result = run_cv(parse_experiment(raw), train.head(300), test)
    assert isinstance(result, EnsembleCV) and len(result.members) == 3
    assert (result.weights >= 0).all() and result.weights.sum() == pytest.approx(1.0)
    assert set(result.blends) == {"mean", "greedy"}
    np.testing.assert_allclose(result.fold_scores, result.blends["greedy"])
    mean = run_cv(parse_experiment(with_overrides(raw, {"model.blend": "mean"})), train.head(300), test)
    np.testing.assert_allclose(mean.fold_scores, result.blends["mean"])
    np.testing.assert_allclose(mean.weights, 1 / 3)


def test_sklearn_and_lightgbm_keys_are_searchable_by_tune() -> None:
    raw = _raw(**{"model.kind": "lightgbm"})
    space = parse_space({"lightgbm.num_leaves": {"type": "int", "low": 4, "high": 32},
                         "lightgbm.feature_fraction": {"type": "float", "low": 0.1, "high": 0.6},
                         "sklearn.svr.C": {"type": "float", "low": 1.0, "high": 50.0, "log": True},
                         "sklearn.estimator": {"type": "categorical", "choices": ["svr", "lasso_cv"]},
                         "features.encoding": {"type": "categorical", "choices": ["onehot", "native"]}}, raw)
    assert [d.key for d in space.dimensions][:2] == ["lightgbm.num_leaves", "lightgbm.feature_fraction"]
    tuned = parse_experiment(with_overrides(raw, {"lightgbm.num_leaves": 5, "sklearn.svr.C": 3.0}))
    assert tuned.lightgbm.num_leaves == 5 and tuned.sklearn.svr.C == 3.0
    with pytest.raises(ParamsError, match="lightgbm.num_leaves=1: must be >= 2"):
        parse_section({**raw["lightgbm"], "num_leaves": 1}, type(tuned.lightgbm), "lightgbm")


FAMILY_MEMBERS = {
    "linear": {"model.kind": "linear"},
    "mlp": {"model.kind": "mlp", "model.hidden": [16]},
    "sklearn": {"model.kind": "sklearn", "sklearn.estimator": "kernel_ridge"},
    "lightgbm": LGBM_NATIVE,
    "catboost": {"model.kind": "catboost", "features.encoding": "native", "catboost.iterations": 30},
}


def test_every_family_of_the_registry_is_covered_here() -> None:
    from pipeline.house_prices.families import FAMILIES

    assert set(FAMILY_MEMBERS) == set(FAMILIES)


@pytest.mark.parametrize("kind", list(FAMILY_MEMBERS))
def test_every_family_round_trips_save_load_with_identical_predictions(clean_frames, tmp_path, kind: str) -> None:
    train, test = clean_frames
    params = parse_experiment(_raw(**FAMILY_MEMBERS[kind]))
    fitted = fit_experiment(params, train.head(200), test)
    save_members(fitted, tmp_path / "model", {})
    loaded = load_members(tmp_path / "model")
    assert type(loaded[0].model) is type(fitted[0].model)
    before, after = predict_blend(fitted, test), predict_blend(loaded, test)
    assert np.array_equal(before.to_numpy(), after.to_numpy())
    assert not any(p.suffix in (".pkl", ".pickle", ".joblib") for p in (tmp_path / "model").rglob("*"))
