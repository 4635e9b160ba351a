"""Repeated k-fold: every row validated once per repeat, the first repeat is the plain shuffled
k-fold, and scores are over all folds of all repeats for every kind of model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import SHIPPED_PARAMS
from sklearn.model_selection import KFold

from pipeline.common.params import ParamsError, parse_section, with_overrides
from pipeline.house_prices.cv import repeat_of, split_folds
from pipeline.house_prices.experiment import parse_experiment, run_cv
from pipeline.house_prices.params import CVParams
from pipeline.house_prices.training import log_rmse


def test_each_repeat_validates_every_row_once_with_its_own_shuffle() -> None:
    splits = split_folds(200, 4, seed=5, repeats=3)
    assert len(splits) == 12 and list(repeat_of(splits, 200)) == [0] * 4 + [1] * 4 + [2] * 4
    layouts = []
    for r in range(3):
        block = splits[4 * r: 4 * r + 4]
        assert sorted(np.concatenate([v for _, v in block])) == list(range(200))
        for train_idx, valid_idx in block:
            assert set(train_idx).isdisjoint(valid_idx) and len(train_idx) + len(valid_idx) == 200
        layouts.append(tuple(tuple(sorted(v)) for _, v in block))
    assert len(set(layouts)) == 3


def test_the_first_repeat_is_the_plain_shuffled_kfold() -> None:
    """So `cv.repeats: 1` (the default) scores exactly what the single shuffled k-fold did."""
    plain = list(KFold(5, shuffle=True, random_state=42).split(np.arange(1460)))
    for splits in (split_folds(1460, 5, 42), split_folds(1460, 5, 42, repeats=3)[:5]):
        assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, plain, strict=True))


def test_repeats_need_shuffled_folds() -> None:
    with pytest.raises(ParamsError, match="cv.repeats=2 needs cv.shuffle: true"):
        parse_section({"folds": 5, "shuffle": False, "repeats": 2}, CVParams, "cv")
    with pytest.raises(ParamsError, match="cv.repeats=0: must be >= 1"):
        parse_section({"folds": 5, "shuffle": True, "repeats": 0}, CVParams, "cv")


@pytest.mark.parametrize("kind", [{"model.kind": "linear"}, {"model.kind": "sklearn", "sklearn.estimator": "ridge"}],
                         ids=["torch", "sklearn"])
def test_scores_are_over_all_folds_of_all_repeats(clean_frames, kind: dict) -> None:
    train, test = clean_frames
    small = train.head(240)
    raw = with_overrides(copy.deepcopy(SHIPPED_PARAMS), {"train.epochs": 4, "cv.folds": 3, "cv.repeats": 2,
                                                        "model.members": [], **kind})
    result = run_cv(parse_experiment(raw), small, test)
    assert result.fold_scores.shape == (6,) and result.oof_repeats.shape == (2, 240) and result.repeats == 2
    y = small["SalePrice"].to_numpy()
    splits = split_folds(240, 3, 42, repeats=2)
    for f, (_, valid) in enumerate(splits):
        assert result.fold_scores[f] == pytest.approx(log_rmse(result.oof_repeats[f // 3, valid], y[valid]))
    assert not np.allclose(result.oof_repeats[0], result.oof_repeats[1])  # other folds, other models
    np.testing.assert_allclose(result.oof_prices, np.sqrt(result.oof_repeats[0] * result.oof_repeats[1]))
    if kind["model.kind"] == "sklearn":  # deterministic given the rows: the first repeat is the single run
        single = run_cv(parse_experiment(with_overrides(raw, {"cv.repeats": 1})), small, test)
        np.testing.assert_allclose(single.fold_scores, result.fold_scores[:3], rtol=1e-9)
