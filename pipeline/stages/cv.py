"""Stage `cv`: k-fold log-RMSE of the configured model; metrics, curves, OOF predictions."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from pipeline.common.io import write_frame, write_json
from pipeline.common.params import RuntimeParams, StageParams
from pipeline.common.paths import ProjectPaths
from pipeline.common.runtime import set_threads
from pipeline.common.seed import seed_everything
from pipeline.common.tracking import HOUSE_PRICES_EXPERIMENT, RunRecord, log_record
from pipeline.house_prices.experiment import (
    EnsembleCV,
    ExperimentParams,
    final_epochs,
    read_experiment,
    run_cv,
)
from pipeline.house_prices.plots import write_history
from pipeline.house_prices.schemas import ID, TARGET
from pipeline.stages import run_stage

log = logging.getLogger(__name__)


def fold_names(folds: int, repeats: int) -> list[str]:
    """`fold1`.. for one repeat; `repeat1_fold1`.. for several (the order of the splits)."""
    if repeats == 1:
        return [f"fold{k + 1}" for k in range(folds)]
    return [f"repeat{r + 1}_fold{k + 1}" for r in range(repeats) for k in range(folds)]


def load_params(params: StageParams) -> tuple[ExperimentParams, dict[str, Any], RuntimeParams]:
    return read_experiment(params)


def main() -> None:
    paths = ProjectPaths.here()
    params, raw, runtime = load_params(StageParams(paths.params))
    model, cv = params.model, params.cv
    seed_everything(params.base.seed)
    set_threads(runtime.threads)
    frame, test = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)

    result = run_cv(params, frame, test, device=runtime.device)

    members = result.members if isinstance(result, EnsembleCV) else []
    names = fold_names(cv.folds, cv.repeats)
    metrics = {"log_rmse_mean": result.mean, "log_rmse_std": result.std, "log_rmse_oof": result.oof_score,
               "repeats": cv.repeats, "folds": dict(zip(names, map(float, result.fold_scores), strict=True)),
               "members": {f"member{i}": m.mean for i, m in enumerate(members)},
               "final_epochs": final_epochs(result)}
    if isinstance(result, EnsembleCV):
        # The shipped weights (fit on every out-of-fold row), and each blend's nested CV score.
        metrics.update(blend=model.blend, weights={f"member{i}": float(w) for i, w in enumerate(result.weights)},
                       blends={k: float(v.mean()) for k, v in result.blends.items()})
    oof = pd.DataFrame({ID: frame[ID], TARGET: frame[TARGET], "oof_prediction": result.oof_prices,
                        **{f"oof_member{i}": m.oof_prices for i, m in enumerate(members)}})
    write_frame(oof, paths.oof_predictions)
    write_history(result.history, paths.cv_curves, paths.cv_curves_png,
                  f"{model.kind}: {cv.repeats}x{cv.folds}-fold CV log-RMSE {result.mean:.4f} ± {result.std:.4f}")
    write_json(metrics, paths.cv_metrics)
    log.info("CV log-RMSE %.4f ± %.4f over %d folds x %d repeat(s)", result.mean, result.std, cv.folds, cv.repeats)
    if isinstance(result, EnsembleCV):
        log.info("%s blend weights %s; nested CV of each blend: %s", model.blend,
                 " ".join(f"{w:.3f}" for w in result.weights),
                 ", ".join(f"{k} {v:.4f}" for k, v in metrics["blends"].items()))

    folds = [RunRecord(name=names[i], params={"fold": i + 1},
                       metrics={"log_rmse": float(score)},
                       curves={"train_log_rmse": result.history.train[:, i],
                               "valid_log_rmse": result.history.valid[:, i]},
                       tags={"stage": "cv-fold"})
             for i, score in enumerate(result.fold_scores)]
    log_record(paths, HOUSE_PRICES_EXPERIMENT, RunRecord(
        name=f"cv-{model.kind}", params=raw,
        metrics={**{k: v for k, v in metrics.items() if isinstance(v, (int, float))},
                 **{f"{k}_log_rmse_mean": v for k, v in metrics["members"].items()},
                 **{f"weight_{k}": v for k, v in metrics.get("weights", {}).items()},
                 **{f"blend_{k}_log_rmse_mean": v for k, v in metrics.get("blends", {}).items()}},
        tags={"stage": "cv", "model.kind": model.kind},
        artifacts=[paths.cv_curves_png], children=folds))


if __name__ == "__main__":
    run_stage(main)
