"""Stage `study-init`: vanishing and exploding gradients, by activation and initialization."""

from __future__ import annotations

import dataclasses
import logging
import math

from pipeline.common.io import write_columns, write_json
from pipeline.common.params import BaseParams, RuntimeParams, StageParams
from pipeline.common.paths import ProjectPaths
from pipeline.common.runtime import resolve_device
from pipeline.common.tracking import STUDIES_EXPERIMENT, RunRecord, log_record
from pipeline.stages import run_stage
from pipeline.studies import start_study
from pipeline.studies.params import InitStudyParams
from pipeline.studies.stability import ACTIVATIONS, INITS, layer_gradient_norms, matrix_product_norms, plot_stability

log = logging.getLogger(__name__)
STUDY = "init"


def load_params(params: StageParams) -> tuple[BaseParams, InitStudyParams, RuntimeParams]:
    return params.section("base", BaseParams), params.section("study_init", InitStudyParams), params.runtime()


def main(paths: ProjectPaths | None = None) -> dict[str, float]:
    paths = paths or ProjectPaths.here()
    base, params, runtime = load_params(StageParams(paths.params))
    generator = start_study(base.seed)
    device = resolve_device(runtime.device)
    grad_norms = {f"{act}_{init}": layer_gradient_norms(params.depth, params.width,
                                                        params.batch_size, act, init, generator, device)
                  for act in ACTIVATIONS for init in INITS}
    products = matrix_product_norms(params.matrices, params.matrix_size, generator, device)

    metrics: dict[str, float] = {"matrix_product_norm": products[-1],
                                 "matrix_product_log10_norm": math.log10(products[-1])}
    for name, norms in grad_norms.items():
        metrics[f"{name}_first_layer_grad_norm"] = norms[0]
        metrics[f"{name}_last_layer_grad_norm"] = norms[-1]
        metrics[f"{name}_first_over_last"] = norms[0] / norms[-1] if norms[-1] else math.inf
    write_columns("layer", grad_norms, paths.study_curves(STUDY))
    plot_stability(grad_norms, products, paths.study_png(STUDY))
    write_json(metrics, paths.study_metrics(STUDY))
    log.info("%s: %s", STUDY, metrics)
    log_record(paths, STUDIES_EXPERIMENT, RunRecord(
        name=f"study-{STUDY}", params=dataclasses.asdict(params), metrics=metrics,
        curves={"matrix_product_norm": products, **{f"grad_norm_{k}": v
                                                    for k, v in grad_norms.items()}},
        tags={"study": STUDY}, artifacts=[paths.study_png(STUDY)]))
    return metrics


if __name__ == "__main__":
    run_stage(main)
