"""Stage `study-weight-decay`: train/test loss and ||w|| per lambda, penalty vs weight_decay."""

from __future__ import annotations

import dataclasses
import logging

from pipeline.common.io import write_columns, write_json
from pipeline.common.params import BaseParams, RuntimeParams, StageParams
from pipeline.common.paths import ProjectPaths
from pipeline.common.runtime import resolve_device
from pipeline.common.tracking import STUDIES_EXPERIMENT, RunRecord, log_record
from pipeline.stages import run_stage
from pipeline.studies import start_study
from pipeline.studies.params import WeightDecayStudyParams
from pipeline.studies.weight_decay import make_high_dim_data, plot_weight_decay, train_with_decay

log = logging.getLogger(__name__)
STUDY = "weight_decay"


def load_params(params: StageParams) -> tuple[BaseParams, WeightDecayStudyParams, RuntimeParams]:
    study = params.section("study_weight_decay", WeightDecayStudyParams)
    return params.section("base", BaseParams), study, params.runtime()


def main(paths: ProjectPaths | None = None) -> dict[str, float]:
    paths = paths or ProjectPaths.here()
    base, params, runtime = load_params(StageParams(paths.params))
    generator = start_study(base.seed)
    device = resolve_device(runtime.device)
    train, test = make_high_dim_data(params.train_rows, params.test_rows, params.features,
                                     params.noise, generator)
    runs = [train_with_decay(train, test, lam, mode, params.epochs, params.batch_size,
                             params.lr, base.seed, device)
            for lam in params.lambdas for mode in ("penalty", "optimizer")]

    metrics: dict[str, float] = {}
    for run in runs:
        key = f"lambda_{run.lam:g}_{run.mode}"
        metrics[f"{key}_w_norm"] = run.w_norm
        metrics[f"{key}_test_loss"] = run.test_loss
        metrics[f"{key}_train_loss"] = run.train_losses[-1]
    curves = {}
    for run in runs:
        curves[f"train_lambda_{run.lam:g}_{run.mode}"] = run.train_losses
        curves[f"test_lambda_{run.lam:g}_{run.mode}"] = run.test_losses
    write_columns("epoch", curves, paths.study_curves(STUDY))
    plot_weight_decay(runs, paths.study_png(STUDY))
    write_json(metrics, paths.study_metrics(STUDY))
    log.info("%s: %s", STUDY, metrics)
    log_record(paths, STUDIES_EXPERIMENT, RunRecord(
        name=f"study-{STUDY}", params=dataclasses.asdict(params), metrics=metrics,
        curves=curves, tags={"study": STUDY}, artifacts=[paths.study_png(STUDY)]))
    return metrics


if __name__ == "__main__":
    run_stage(main)
