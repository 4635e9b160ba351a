"""Stage `study-linreg`: recover w and b of a synthetic linear model, scratch vs nn.Linear."""

from __future__ import annotations

import dataclasses
import logging

import torch

from pipeline.common.io import write_columns, write_json
from pipeline.common.params import BaseParams, RuntimeParams, StageParams
from pipeline.common.paths import ProjectPaths
from pipeline.common.runtime import resolve_device
from pipeline.common.tracking import STUDIES_EXPERIMENT, RunRecord, log_record
from pipeline.stages import run_stage
from pipeline.studies import start_study
from pipeline.studies.linreg import fit_nn, fit_scratch, make_linear_data, plot_linreg
from pipeline.studies.params import LinregStudyParams

log = logging.getLogger(__name__)
STUDY = "linreg"


def load_params(params: StageParams) -> tuple[BaseParams, LinregStudyParams, RuntimeParams]:
    return params.section("base", BaseParams), params.section("study_linreg", LinregStudyParams), params.runtime()


def main(paths: ProjectPaths | None = None) -> dict[str, float]:
    paths = paths or ProjectPaths.here()
    base, params, runtime = load_params(StageParams(paths.params))
    generator = start_study(base.seed)
    device = resolve_device(runtime.device)
    true_w = torch.tensor(params.true_w)
    x, y = make_linear_data(true_w, params.true_b, params.rows, params.noise, generator)
    fits = {name: fit(x, y, params.epochs, params.batch_size, params.lr, generator, device)
            for name, fit in (("scratch", fit_scratch), ("nn", fit_nn))}

    metrics: dict[str, float] = {}
    for name, fit in fits.items():
        metrics.update({f"{name}_w{i}": v for i, v in enumerate(fit.w)})
        metrics[f"{name}_b"] = fit.b
        metrics[f"{name}_w_error"] = float((torch.tensor(fit.w) - true_w).norm())
        metrics[f"{name}_b_error"] = abs(fit.b - params.true_b)
        metrics[f"{name}_final_loss"] = fit.epoch_losses[-1]
    write_columns("epoch", {f"{n}_loss": f.epoch_losses for n, f in fits.items()},
                  paths.study_curves(STUDY))
    plot_linreg(fits, params.true_w, params.true_b, paths.study_png(STUDY))
    write_json(metrics, paths.study_metrics(STUDY))
    log.info("%s: %s", STUDY, metrics)
    log_record(paths, STUDIES_EXPERIMENT, RunRecord(
        name=f"study-{STUDY}", params=dataclasses.asdict(params),
        metrics=metrics,
        curves={f"{n}_epoch_loss": f.epoch_losses for n, f in fits.items()},
        tags={"study": STUDY}, artifacts=[paths.study_png(STUDY)]))
    return metrics


if __name__ == "__main__":
    run_stage(main)
