"""Training: the score, the folds, weight decay on weights only, repeatable runs, saved models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SHIPPED_PARAMS, model_params, plain_features, train_params

from pipeline.common.runtime import resolve_device
from pipeline.house_prices.artifacts import load_final, save_final
from pipeline.house_prices.cv import cross_validate, split_folds
from pipeline.house_prices.final import fit_final, predict_frame
from pipeline.house_prices.models import FoldBatchedRegressor, ModelSpec, parameter_groups
from pipeline.house_prices.training import log_rmse

ROOT = Path(__file__).resolve().parents[1]

FEATURES = plain_features()
LINEAR = model_params("linear")
MLP = model_params("mlp", (8,), dropout=0.1)
FAST = train_params(epochs=4, weight_decay=0.01, schedule="cosine")


def test_log_rmse_matches_a_numpy_reference_with_clamping() -> None:
    rng = np.random.default_rng(0)
    y = rng.uniform(5e4, 5e5, 50)
    pred = y * rng.lognormal(0, 0.1, 50)
    pred[:3] = [0.5, -10.0, 1.0]  # below 1: clamped to 1 before the log
    reference = np.sqrt(np.mean((np.log(np.maximum(pred, 1)) - np.log(y)) ** 2))
    assert log_rmse(pred, y) == pytest.approx(reference, rel=1e-12)


@pytest.mark.parametrize(("n", "k"), [(1460, 5), (101, 3), (10, 10)])
def test_folds_validate_every_row_exactly_once(n: int, k: int) -> None:
    splits = split_folds(n, k, seed=7)
    valid = np.concatenate([v for _, v in splits])
    assert sorted(valid) == list(range(n))
    for train_idx, valid_idx in splits:
        assert set(train_idx).isdisjoint(valid_idx) and len(train_idx) + len(valid_idx) == n
    assert [list(v) for _, v in split_folds(n, k, seed=7)] == [list(v) for _, v in splits]


def test_unshuffled_folds_are_the_books_contiguous_blocks_whatever_the_seed() -> None:
    splits = split_folds(1460, 5, seed=7, shuffle=False)
    assert [(v[0], v[-1]) for _, v in splits] == [(0, 291), (292, 583), (584, 875), (876, 1167), (1168, 1459)]
    other_seed = split_folds(1460, 5, seed=8, shuffle=False)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, other_seed, strict=True))


def test_an_experiment_validates_on_the_folds_cv_params_name(clean_frames) -> None:
    from pipeline.common.params import with_overrides
    from pipeline.house_prices.experiment import parse_experiment, run_cv

    train, test = clean_frames
    small = train.head(120)
    raw = with_overrides(SHIPPED_PARAMS, {
        "model.kind": "linear", "model.members": [], "train.epochs": 2, "cv.folds": 3, "cv.shuffle": False})
    result = run_cv(parse_experiment(raw), small, test)
    for score, (_, valid) in zip(result.fold_scores, split_folds(120, 3, seed=0, shuffle=False), strict=True):
        assert score == pytest.approx(log_rmse(result.oof_prices[valid], result.prices[valid]))
        assert list(valid) == list(range(valid[0], valid[0] + 40))


def test_too_many_folds_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="cv.folds"):
        split_folds(5, 6, seed=0)


def test_weight_decay_spares_every_bias() -> None:
    model = FoldBatchedRegressor(ModelSpec("mlp", 10, (4, 3), n_models=2, linear_skip=True))
    decayed, spared = parameter_groups(model, 0.5)
    assert decayed["weight_decay"] == 0.5 and spared["weight_decay"] == 0.0
    assert {id(p) for p in spared["params"]} == {id(b) for b in model.biases}
    assert all(p.dim() == 3 and p.shape[-1] != 1 or p is model.skip or p is model.weights[-1]
               for p in decayed["params"])


def test_stacked_models_are_independent() -> None:
    """Model 0's output does not depend on model 1's weights: stacking is only batching."""
    model = FoldBatchedRegressor(ModelSpec("mlp", 5, (4,), n_models=2), torch.Generator().manual_seed(0))
    x = torch.randn(2, 3, 5)
    before = model(x)[0].clone()
    with torch.no_grad():
        for w in model.weights:
            w[1].add_(1.0)
    assert torch.equal(model(x)[0], before)


def test_cv_is_repeatable_and_scores_from_out_of_fold_predictions(clean_frames) -> None:
    train, test = clean_frames
    small = train.head(300)
    first = cross_validate(small, test, FEATURES, MLP, FAST, split_folds(len(small), 3, 1), 1)
    again = cross_validate(small, test, FEATURES, MLP, FAST, split_folds(len(small), 3, 1), 1)
    assert np.array_equal(first.fold_scores, again.fold_scores)
    assert first.history.train.shape == (4, 3) and np.isfinite(first.history.valid).all()
    y = small["SalePrice"].to_numpy()
    for score, (_, valid_idx) in zip(first.fold_scores, split_folds(300, 3, 1), strict=True):
        assert score == pytest.approx(log_rmse(first.oof_prices[valid_idx], y[valid_idx]))


def test_log_target_beats_predicting_the_mean_price(clean_frames) -> None:
    train, test = clean_frames
    longer = train_params(epochs=20, weight_decay=0.02, schedule="cosine")
    result = cross_validate(train, test, FEATURES, LINEAR, longer, split_folds(len(train), 3, 0), 0)
    y = train["SalePrice"].to_numpy()
    baseline = log_rmse(np.full_like(y, np.exp(np.log(y).mean())), y)
    assert result.mean < 0.6 * baseline


def test_saved_model_predicts_exactly_what_the_fitted_one_did(clean_frames, tmp_path) -> None:
    train, test = clean_frames
    final = fit_final(train.head(400), test, FEATURES, MLP, FAST, seed=3)
    expected = predict_frame(final, test)
    save_final(final, tmp_path / "model", {"note": "test"})
    loaded = load_final(tmp_path / "model")
    got = predict_frame(loaded, test)
    pd.testing.assert_frame_equal(got, expected)
    assert (got["SalePrice"] > 0).all() and list(got["Id"]) == list(test["Id"])


def test_cuda_requested_without_a_gpu_is_an_error_not_a_silent_fallback() -> None:
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"


def test_huber_loss_resists_far_off_training_rows() -> None:
    """A few wildly mispriced rows bend a squared-error fit; Huber barely moves."""
    from pipeline.house_prices.models import ModelSpec
    from pipeline.house_prices.training import fit_batched

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 400, 1, generator=gen)
    log_price = 12.0 + 0.3 * x[0, :, 0] + 0.02 * torch.randn(400, generator=gen)
    log_price[x[0, :, 0].argsort()[-8:]] -= 1.5  # the largest houses sold far below trend
    prices = torch.exp(log_price).double()
    mask = torch.ones(1, 400, dtype=torch.bool)

    def slope(loss: str) -> float:
        params = train_params(loss=loss, huber_delta=0.1, epochs=60, batch_size=50, lr=0.02, schedule="cosine")
        model, _ = fit_batched(x, prices, mask, ModelSpec("linear", 1), params, torch.Generator().manual_seed(1))
        return float(model.weights[0].detach().reshape(-1)[0])

    assert abs(slope("huber") - 0.3) < 0.03
    assert abs(slope("mse") - 0.3) > 2 * abs(slope("huber") - 0.3)


def test_a_fold_feature_cache_gives_the_same_scores_and_fits_each_fold_once(clean_frames, monkeypatch) -> None:
    import pipeline.house_prices.cv as cv_module
    from pipeline.house_prices.cv import FoldFeatureCache

    train, test = clean_frames
    small = train.head(150)
    fits: list[int] = []
    real_fit = cv_module.fit_and_transform
    monkeypatch.setattr(cv_module, "fit_and_transform",
                        lambda frame, idx, extra, params: fits.append(len(idx)) or real_fit(frame, idx, extra, params))
    fast = train_params(epochs=2)
    plain = cross_validate(small, test, FEATURES, LINEAR, fast, split_folds(len(small), 3, 1), 1)
    cache = FoldFeatureCache()
    first = cross_validate(small, test, FEATURES, LINEAR, fast, split_folds(len(small), 3, 1), 1, cache=cache)
    again = cross_validate(small, test, FEATURES, LINEAR, fast, split_folds(len(small), 3, 1), 1, cache=cache)
    np.testing.assert_array_equal(first.fold_scores, plain.fold_scores)
    np.testing.assert_array_equal(again.fold_scores, plain.fold_scores)
    assert len(fits) == 6 and (cache.misses, cache.hits) == (3, 3)
    # Other feature options or other folds are other matrices, never a stale hit.
    unlogged = plain_features(log_skewed=False)
    cross_validate(small, test, unlogged, LINEAR, fast, split_folds(len(small), 3, 1), 1, cache=cache)
    cross_validate(small, test, FEATURES, LINEAR, fast, split_folds(len(small), 3, 2), 2, cache=cache)
    assert len(fits) == 12 and cache.misses == 9
