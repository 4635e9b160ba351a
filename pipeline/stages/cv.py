"""Stage `cv`: k-fold log-RMSE of the configured model; metrics, curves, OOF predictions."""

from __future__ import annotations

import json
import logging

import pandas as pd

from pipeline.cv import cross_validate
from pipeline.params import BaseParams, CVParams, FeatureParams, ModelParams, TrainParams, load_section, read_params
from pipeline.paths import ProjectPaths
from pipeline.plots import write_curves
from pipeline.runtime import set_threads
from pipeline.schemas import ID, TARGET
from pipeline.seed import seed_everything
from pipeline.stages import run_stage
from pipeline.tracking import HOUSE_PRICES_EXPERIMENT, RunRecord, log_record

log = logging.getLogger(__name__)
SECTIONS = ("base", "features", "model", "train", "cv")


def main() -> None:
    paths = ProjectPaths.here()
    base = load_section(paths.params, "base", BaseParams)
    features = load_section(paths.params, "features", FeatureParams)
    model = load_section(paths.params, "model", ModelParams)
    train = load_section(paths.params, "train", TrainParams)
    cv = load_section(paths.params, "cv", CVParams)
    seed_everything(base.seed)
    set_threads(train.threads)
    frame, test = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)

    result = cross_validate(frame, test, features, model, train, cv.folds, base.seed)

    metrics = {"log_rmse_mean": result.mean, "log_rmse_std": result.std, "log_rmse_oof": result.oof_score,
               "folds": {f"fold{i + 1}": float(s) for i, s in enumerate(result.fold_scores)}}
    paths.metrics_dir.mkdir(parents=True, exist_ok=True)
    paths.cv_metrics.write_text(json.dumps(metrics, indent=2))
    write_curves(result.history, paths.cv_curves, paths.cv_curves_png,
                 f"{model.kind}: {cv.folds}-fold CV log-RMSE {result.mean:.4f} ± {result.std:.4f}")
    paths.processed_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({ID: frame[ID], TARGET: frame[TARGET], "oof_prediction": result.oof_prices}).to_csv(
        paths.oof_predictions, index=False)
    log.info("CV log-RMSE %.4f ± %.4f over %d folds", result.mean, result.std, cv.folds)

    all_params = read_params(paths.params)
    folds = [RunRecord(name=f"fold{i + 1}", params={"fold": i + 1},
                       metrics={"log_rmse": float(score)},
                       curves={"train_log_rmse": result.history.train[:, i],
                               "valid_log_rmse": result.history.valid[:, i]},
                       tags={"stage": "cv-fold"})
             for i, score in enumerate(result.fold_scores)]
    log_record(paths, HOUSE_PRICES_EXPERIMENT, RunRecord(
        name=f"cv-{model.kind}", params={s: all_params[s] for s in SECTIONS},
        metrics={k: v for k, v in metrics.items() if k != "folds"},
        tags={"stage": "cv", "model.kind": model.kind},
        artifacts=[paths.cv_curves_png], children=folds))


if __name__ == "__main__":
    run_stage(main)
