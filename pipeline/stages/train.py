"""Stage `train`: the final fit on every training row; model files under models/."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from pipeline.common.io import ensure_writable, write_json
from pipeline.common.params import RuntimeParams, StageParams
from pipeline.common.paths import ProjectPaths
from pipeline.common.runtime import set_threads
from pipeline.common.seed import seed_everything
from pipeline.common.tracking import HOUSE_PRICES_EXPERIMENT, RunRecord
from pipeline.house_prices.artifacts import save_members
from pipeline.house_prices.competition import HOUSE_PRICES
from pipeline.house_prices.experiment import (
    ExperimentParams,
    describe,
    fit_experiment,
    member_column,
    read_experiment,
    trained_histories,
)
from pipeline.house_prices.plots import write_curves
from pipeline.house_prices.runs import train_run
from pipeline.house_prices.serving import REGISTERED_MODEL, log_model
from pipeline.stages import run_stage
from pipeline.submissions.source import CV_RUN_ID_TAG, MODEL_DIGEST_TAG, cv_run_of, cv_scores, folder_digest

log = logging.getLogger(__name__)


def load_params(params: StageParams) -> tuple[ExperimentParams, dict[str, Any], RuntimeParams]:
    return read_experiment(params)


def main() -> None:
    paths = ProjectPaths.here()
    params, raw, runtime = load_params(StageParams(paths.params))
    ensure_writable(paths.model_dir.parent, paths.house_metrics_dir, paths.house_plots_dir)
    seed_everything(params.base.seed)
    set_threads(runtime.threads)
    frame, test = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)
    cv = json.loads(paths.cv_metrics.read_text())
    # With early stopping, the folds chose how long to train; there is no valid set left.
    stops_early = any(m.train.patience > 0 for m in params.members)
    epochs = member_column(cv, "final_epochs", paths.cv_metrics) if stops_early else None
    # The blend weights the cv stage fit on every out-of-fold row (one model: [1.0]).
    weights = member_column(cv, "weight", paths.cv_metrics)

    with train_run(paths, params, raw, frame) as tracked:  # open from the start: live curves, true duration
        members = fit_experiment(params, frame, test, epochs, weights, device=runtime.device,
                                 member_epochs=tracked.member_epochs)

        save_members(members, paths.model_dir, {"params": raw, "cv_log_rmse_mean": cv["log_rmse_mean"],
                                                "blend": params.model.blend})
        last = [float(m.history.train[-1, 0]) for m in members]
        metrics = {"train_log_rmse": float(np.mean(last)), "n_members": len(members),
                   "n_features": len(members[0].feature_names)}
        histories = trained_histories(params, [m.history for m in members])
        write_curves(histories, paths.train_curves_dir, paths.train_curves_png,
                     f"final fit of {describe(params)} on every training row: train log-RMSE per epoch")
        write_json(metrics, paths.train_metrics)
        log.info("final fit of %d model(s): train log-RMSE %.4f; saved in %s", len(members),
                 metrics["train_log_rmse"], paths.model_dir)

        # The CV this configuration scored, beside the run's own metrics (kpipe submit compares
        # the two scores), and the CV run it was trained after.
        # The CV this configuration scored beside the run's own metrics, the CV run that scored it,
        # and the model folder's digest (the predict stage finds this run by it).
        cv_run_id = cv_run_of(paths, HOUSE_PRICES_EXPERIMENT, paths.cv_metrics) or ""
        tags = {CV_RUN_ID_TAG: cv_run_id, MODEL_DIGEST_TAG: folder_digest(paths.model_dir)}
        tracked.run.log(RunRecord("train", metrics={**metrics, **cv_scores(cv, HOUSE_PRICES.metric)}, tags=tags,
                                  artifacts=[paths.train_curves_png]))
        # The whole predictor as a pyfunc model, registered as `house-prices`; its signature
        # and input example are test.csv as read.
        logged = tracked.run.log_model(lambda: log_model(paths.model_dir, pd.read_csv(paths.raw_test)))
        if logged is not None:
            log.info("registered %s version %s (%s)", REGISTERED_MODEL, logged.registered_model_version,
                     logged.model_uri)


if __name__ == "__main__":
    run_stage(main)
