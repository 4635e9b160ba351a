"""Stage `residuals`: where the out-of-fold predictions are wrong (worst houses, error by group)."""

from __future__ import annotations

import logging

import pandas as pd

from pipeline.common.io import write_frame, write_json
from pipeline.common.params import StageParams
from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.params import ResidualsParams
from pipeline.house_prices.residuals import PRICE_BIN, error_by, plot_residuals, residual_frame, summary, worst_houses
from pipeline.stages import run_stage

log = logging.getLogger(__name__)


def load_params(params: StageParams) -> ResidualsParams:
    return params.section("residuals", ResidualsParams)


def main() -> None:
    paths = ProjectPaths.here()
    params = load_params(StageParams(paths.params))
    oof, train = pd.read_csv(paths.oof_predictions), pd.read_parquet(paths.clean_train)
    columns = list(dict.fromkeys([*params.by, *params.show]))
    residuals = residual_frame(oof, train, columns, params.price_bins)
    worst = worst_houses(residuals, params.worst)
    tables = {column: error_by(residuals, column) for column in (*params.by, PRICE_BIN)}

    write_frame(worst, paths.worst_houses)
    for column, table in tables.items():
        write_frame(table, paths.residuals_by(column))
    metrics = summary(residuals, worst, tables)
    write_json(metrics, paths.residuals_metrics)
    plot_residuals(residuals, worst, tables, paths.residuals_png)
    log.info("out-of-fold log-RMSE %.4f; the worst %d houses carry %.0f%% of the squared error",
             metrics["log_rmse_all"], len(worst), 100 * metrics["worst_houses_share"])
    log.info("worst houses:\n%s", worst.head(10).to_string(index=False))
    for column, table in tables.items():
        log.info("by %s (largest share first):\n%s", column, table.head(5).to_string(index=False))


if __name__ == "__main__":
    run_stage(main)
