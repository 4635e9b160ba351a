"""Stage `cv`: k-fold log-RMSE of the configured model; metrics, curves, OOF predictions."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from pipeline.common.io import ensure_writable, sha1_of, write_frame, write_json
from pipeline.common.params import RuntimeParams, StageParams
from pipeline.common.paths import ProjectPaths
from pipeline.common.runtime import THREADS_TAG, set_threads
from pipeline.common.seed import seed_everything
from pipeline.common.tracking import RunRecord
from pipeline.house_prices.experiment import (
    ExperimentParams,
    cv_metrics,
    describe,
    member_histories,
    member_lines,
    read_experiment,
    run_cv,
)
from pipeline.house_prices.plots import write_curves
from pipeline.house_prices.runs import cv_run
from pipeline.house_prices.schemas import ID, TARGET
from pipeline.stages import run_stage
from pipeline.submissions.source import CV_METRICS_TAG
from pipeline.tabular.oof_library import OOFLibrary

log = logging.getLogger(__name__)


def load_params(params: StageParams) -> tuple[ExperimentParams, dict[str, Any], RuntimeParams]:
    return read_experiment(params)


def main() -> None:
    paths = ProjectPaths.here()
    params, raw, runtime = load_params(StageParams(paths.params))
    cv = params.cv
    ensure_writable(paths.processed_dir, paths.house_metrics_dir, paths.house_plots_dir)
    seed_everything(params.base.seed)
    threads = set_threads(runtime.threads)
    frame, test = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)

    with cv_run(paths, params, raw, frame) as tracked:  # open from the start: live curves, true duration
        result = run_cv(params, frame, test, device=runtime.device, member_epochs=tracked.member_epochs,
                        on_member=member_lines(params), library=OOFLibrary.for_project(paths.root))

        members = result.members
        metrics = cv_metrics(params, result)
        oof = pd.DataFrame({ID: frame[ID], TARGET: frame[TARGET], "oof_prediction": result.oof_prices,
                            **{f"oof_member{i}": m.oof_prices for i, m in enumerate(members)}})
        write_frame(oof, paths.oof_predictions)
        histories = member_histories(params, result)
        write_curves(histories, paths.cv_curves_dir, paths.cv_curves_png,
                     f"{describe(params)}: {cv.repeats}x{cv.folds}-fold CV log-RMSE "
                     f"{result.mean:.4f} ± {result.std:.4f}"
                     + ("\nlines: each trained member's mean over its folds (a blend has no curve per epoch)"
                        if len(members) > 1 else ""))
        write_json(metrics, paths.cv_metrics)
        log.info("CV log-RMSE %.4f ± %.4f over %d folds x %d repeat(s); %d of %d member(s) read from the OOF "
                 "library", result.mean, result.std, cv.folds, cv.repeats, result.hits, len(members))
        log.info("%s blend weights %s; nested CV of each blend: %s", params.model.blend,
                 " ".join(f"{w:.3f}" for w in result.weights),
                 ", ".join(f"{b['method']} {b['log_rmse']:.4f}" for b in metrics["blends"]))
        tracked.finish(result, metrics, histories, paths.cv_curves_png)
        # The content address the train stage finds this run by (pipeline/submissions/source.py),
        # and the thread count `runtime.threads` came to (0 = the cores free when the stage began).
        tracked.run.log(RunRecord("cv", tags={CV_METRICS_TAG: sha1_of(paths.cv_metrics), THREADS_TAG: str(threads)}))


if __name__ == "__main__":
    run_stage(main)
