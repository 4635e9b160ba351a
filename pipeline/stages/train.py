"""Stage `train`: the final fit on every training row; model files under models/."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from pipeline.artifacts import save_members
from pipeline.experiment import fit_experiment, parse_experiment
from pipeline.params import read_params
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
    all_params = read_params(paths.params)
    params = parse_experiment(all_params)
    seed_everything(params.base.seed)
    set_threads(params.train.threads)
    frame, test = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)
    cv = json.loads(paths.cv_metrics.read_text())
    # With early stopping, the folds chose how long to train; there is no valid set left.
    stops_early = any(m.train.patience > 0 for m in (params.members or (params,)))
    epochs = cv["final_epochs"] if stops_early else None

    members = fit_experiment(params, frame, test, epochs)

    save_members(members, paths.model_dir, {"params": {s: all_params[s] for s in SECTIONS},
                                            "cv_log_rmse_mean": cv["log_rmse_mean"]})
    last = [float(m.history.train[-1, 0]) for m in members]
    metrics = {"train_log_rmse": float(np.mean(last)), "n_members": len(members),
               "n_features": len(members[0].feature_names)}
    write_json(metrics, paths.train_metrics)
    write_curves(members[0].history, paths.train_curve, None, "final fit")
    log.info("final fit of %d model(s): train log-RMSE %.4f; saved in %s", len(members),
             metrics["train_log_rmse"], paths.model_dir)

    log_record(paths, HOUSE_PRICES_EXPERIMENT, RunRecord(
        name=f"train-{params.model.kind}", params={s: all_params[s] for s in SECTIONS}, metrics=metrics,
        curves={"train_log_rmse": members[0].history.train[:, 0]},
        tags={"stage": "train", "model.kind": params.model.kind}, artifacts=[paths.model_dir]))


if __name__ == "__main__":
    run_stage(main)
