"""Stage `train`: the final fit on every training row; model files under models/."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from pipeline.common.io import write_json
from pipeline.common.params import ParamsError, RuntimeParams, StageParams
from pipeline.common.paths import ProjectPaths
from pipeline.common.runtime import set_threads
from pipeline.common.seed import seed_everything
from pipeline.common.tracking import HOUSE_PRICES_EXPERIMENT, RunRecord, log_record
from pipeline.house_prices.artifacts import save_members
from pipeline.house_prices.experiment import ExperimentParams, fit_experiment, read_experiment
from pipeline.house_prices.plots import write_history
from pipeline.stages import run_stage

log = logging.getLogger(__name__)


def load_params(params: StageParams) -> tuple[ExperimentParams, dict[str, Any], RuntimeParams]:
    return read_experiment(params)


def main() -> None:
    paths = ProjectPaths.here()
    params, raw, runtime = load_params(StageParams(paths.params))
    seed_everything(params.base.seed)
    set_threads(runtime.threads)
    frame, test = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)
    cv = json.loads(paths.cv_metrics.read_text())
    # With early stopping, the folds chose how long to train; there is no valid set left.
    stops_early = any(m.train.patience > 0 for m in (params.members or (params,)))
    epochs = cv["final_epochs"] if stops_early else None
    # The blend weights the cv stage fit on every out-of-fold row (one model: none).
    weights = None
    if params.members:
        if "weights" not in cv:
            raise ParamsError(f"{paths.cv_metrics} holds no blend weights: rerun the cv stage")
        weights = list(cv["weights"].values())

    members = fit_experiment(params, frame, test, epochs, weights, device=runtime.device)

    save_members(members, paths.model_dir, {"params": raw, "cv_log_rmse_mean": cv["log_rmse_mean"],
                                            "blend": params.model.blend if params.members else None})
    last = [float(m.history.train[-1, 0]) for m in members]
    metrics = {"train_log_rmse": float(np.mean(last)), "n_members": len(members),
               "n_features": len(members[0].feature_names)}
    write_history(members[0].history, paths.train_curve, None, "final fit")
    write_json(metrics, paths.train_metrics)
    log.info("final fit of %d model(s): train log-RMSE %.4f; saved in %s", len(members),
             metrics["train_log_rmse"], paths.model_dir)

    log_record(paths, HOUSE_PRICES_EXPERIMENT, RunRecord(
        name=f"train-{params.model.kind}", params=raw, metrics=metrics,
        curves={"train_log_rmse": members[0].history.train[:, 0]},
        tags={"stage": "train", "model.kind": params.model.kind}, artifacts=[paths.model_dir]))


if __name__ == "__main__":
    run_stage(main)
