"""Ensembles and early stopping: blends scored from out-of-fold predictions, best epochs kept."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import SHIPPED_PARAMS, model_params, plain_features, train_params

from pipeline.common.params import ParamsError
from pipeline.house_prices.cv import cross_validate, split_folds
from pipeline.house_prices.experiment import EnsembleCV, final_epochs, fit_experiment, parse_experiment, run_cv
from pipeline.house_prices.training import log_rmse

FAST = {"train": {"epochs": 6, "batch_size": 128}, "cv": {"folds": 3}, "runtime": {"threads": 1}}


def _params(**model: object) -> dict:
    raw = copy.deepcopy(SHIPPED_PARAMS)
    for section, values in FAST.items():
        raw[section].update(values)
    raw["model"].update(model)
    return raw


ENSEMBLE = dict(kind="ensemble", blend="mean", members=[{"model.kind": "linear"},
                                                        {"model.kind": "mlp", "model.hidden": [16], "base.seed": 7}])


def test_ensemble_members_are_parsed_from_overrides() -> None:
    params = parse_experiment(_params(**ENSEMBLE))
    assert [m.model.kind for m in params.members] == ["linear", "mlp"]
    assert params.members[1].base.seed == 7 and params.members[1].model.hidden == (16,)


@pytest.mark.parametrize(("members", "message"), [
    ([], "members is empty"),
    ([{"model.kind": "ensemble"}], "set model.kind to a model family, not ensemble"),
    ([{"model.kind": "linear", "cv.folds": 3}], "share the ensemble's folds"),
    ([{"model.kind": "linear", "train.lr_typo": 1}], "no key 'lr_typo'"),
])
def test_bad_ensembles_are_refused_with_the_reason(members: list, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        parse_experiment(_params(kind="ensemble", members=members))


def test_blend_is_the_log_mean_of_members_on_shared_folds(clean_frames) -> None:
    train, test = clean_frames
    small = train.head(300)
    result = run_cv(parse_experiment(_params(**ENSEMBLE)), small, test)
    assert isinstance(result, EnsembleCV) and len(result.members) == 2
    blend = np.exp((np.log(result.members[0].oof_prices) + np.log(result.members[1].oof_prices)) / 2)
    np.testing.assert_allclose(result.oof_prices, blend)
    y = small["SalePrice"].to_numpy()
    for score, (_, valid) in zip(result.fold_scores, split_folds(300, 3, 42), strict=True):
        assert score == pytest.approx(log_rmse(blend[valid], y[valid]))


def test_cv_stage_writes_oof_that_reproduces_the_ensemble_score(clean_frames, tmp_path, monkeypatch,
                                                               mlflow_uri) -> None:
    from pipeline.common.paths import ProjectPaths
    from pipeline.stages import cv as cv_stage

    train, test = clean_frames
    paths = ProjectPaths(tmp_path)
    paths.interim_dir.mkdir(parents=True)
    train.head(300).to_parquet(paths.clean_train)
    test.to_parquet(paths.clean_test)
    paths.params.write_text(yaml.safe_dump(_params(**ENSEMBLE)))
    monkeypatch.chdir(tmp_path)
    cv_stage.main()

    metrics = json.loads(paths.cv_metrics.read_text())
    oof = pd.read_csv(paths.oof_predictions)
    assert {"oof_prediction", "oof_member0", "oof_member1"} <= set(oof.columns)
    # Curves are each member's, by name; the picture's title names the blend it scores.
    assert sorted(p.name for p in paths.cv_curves_dir.iterdir()) == ["member0-linear.csv", "member1-mlp.csv"]
    assert paths.cv_curves_png.read_bytes()[:4] == b"\x89PNG"
    folds = split_folds(len(oof), 3, 42)
    recomputed = [log_rmse(oof["oof_prediction"].to_numpy()[v], oof["SalePrice"].to_numpy()[v]) for _, v in folds]
    assert metrics["log_rmse_mean"] == pytest.approx(np.mean(recomputed), rel=1e-9)
    # Details are lists of records (DVC's tables show only the top-level numbers).
    assert [(m["member"], m["model"], m["weight"]) for m in metrics["members"]] == [
        ("member0", "linear", 0.5), ("member1", "mlp", 0.5)]
    assert metrics["blend"] == "mean" and len(metrics["folds"]) == 3
    blends = {b["method"]: b["log_rmse"] for b in metrics["blends"]}
    assert set(blends) == {"mean", "greedy"}
    assert blends["mean"] == pytest.approx(metrics["log_rmse_mean"])


def test_early_stopping_keeps_each_folds_best_epoch(clean_frames) -> None:
    train, test = clean_frames
    small = train.head(400)
    # A learning rate high enough to overshoot after a few epochs, without a schedule.
    params = train_params(epochs=60, lr=0.05, patience=5)
    result = cross_validate(small, test, plain_features(), model_params("mlp", (64,)), params,
                            split_folds(len(small), 3, 0), 0)
    best = result.history.best_epochs
    run = result.history.valid.shape[0]
    assert run < 60 and (best <= run).all()
    assert run - best.max() >= 5  # it stopped because nobody improved for `patience` epochs
    for fold, epoch in enumerate(best):
        assert result.fold_scores[fold] == pytest.approx(result.history.valid[epoch - 1, fold], rel=1e-5)
    assert final_epochs([result]) == [int(round(best.mean()))]


def test_final_fit_uses_the_epochs_the_folds_chose(clean_frames) -> None:
    train, test = clean_frames
    raw = _params(**ENSEMBLE)
    members = fit_experiment(parse_experiment(raw), train.head(200), test, epochs=[2, 3])
    assert [m.history.train.shape[0] for m in members] == [2, 3]
    with pytest.raises(ParamsError, match="rerun the cv stage"):
        fit_experiment(parse_experiment(raw), train.head(200), test, epochs=[2])
