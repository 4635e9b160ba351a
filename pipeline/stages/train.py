"""Stage `train`: the final fit on every training row; model files under models/."""

from __future__ import annotations

import json
import logging

import pandas as pd

from pipeline.artifacts import save_final
from pipeline.cv import fit_final
from pipeline.params import BaseParams, FeatureParams, ModelParams, TrainParams, load_section, read_params
from pipeline.outputs import write_json
from pipeline.paths import ProjectPaths
from pipeline.plots import write_curves
from pipeline.runtime import set_threads
from pipeline.seed import seed_everything
from pipeline.stages import run_stage
from pipeline.tracking import HOUSE_PRICES_EXPERIMENT, RunRecord, log_record

log = logging.getLogger(__name__)
SECTIONS = ("base", "features", "model", "train")


def main() -> None:
    paths = ProjectPaths.here()
    base = load_section(paths.params, "base", BaseParams)
    features = load_section(paths.params, "features", FeatureParams)
    model = load_section(paths.params, "model", ModelParams)
    train = load_section(paths.params, "train", TrainParams)
    seed_everything(base.seed)
    set_threads(train.threads)
    frame, test = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)

    final = fit_final(frame, test, features, model, train, base.seed)

    all_params = read_params(paths.params)
    cv_score = json.loads(paths.cv_metrics.read_text()).get("log_rmse_mean") if paths.cv_metrics.exists() else None
    save_final(final, paths.model_dir, {"params": {s: all_params[s] for s in SECTIONS},
                                        "cv_log_rmse_mean": cv_score})
    metrics = {"train_log_rmse": float(final.history.train[-1, 0]), "n_features": len(final.feature_names)}
    write_json(metrics, paths.train_metrics)
    write_curves(final.history, paths.train_curve, None, "final fit")
    log.info("final fit: train log-RMSE %.4f; model in %s", metrics["train_log_rmse"], paths.model_dir)

    log_record(paths, HOUSE_PRICES_EXPERIMENT, RunRecord(
        name=f"train-{model.kind}", params={s: all_params[s] for s in SECTIONS}, metrics=metrics,
        curves={"train_log_rmse": final.history.train[:, 0]},
        tags={"stage": "train", "model.kind": model.kind}, artifacts=[paths.model_dir]))


if __name__ == "__main__":
    run_stage(main)
