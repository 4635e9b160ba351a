"""Stage `features`: the feature matrix of every row, for inspection and as a schema check.

Not part of the main chain (`dvc repro predict` does not need it): CV and the final fit refit
the transformer on their own training rows, and an ensemble's members each see their own
feature options. Run it (`dvc repro features`, `kpipe features`) to look at what the model
sees when the transformer is fit on all training rows; it fails if that matrix holds a NaN
or an infinite value.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline.common.io import write_frame, write_json
from pipeline.common.params import StageParams
from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.features import encoder, fit_transformer, training_rows, transform
from pipeline.house_prices.params import FeatureParams
from pipeline.stages import run_stage

log = logging.getLogger(__name__)


def load_params(params: StageParams) -> FeatureParams:
    return params.section("features", FeatureParams)


def main() -> None:
    paths = ProjectPaths.here()
    features = load_params(StageParams(paths.params))
    train, test = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)
    transformer = fit_transformer(train.iloc[training_rows(train, np.arange(len(train)), features)], test, features)
    x_train, x_test = transform(transformer, train), transform(transformer, test)
    write_frame(x_train, paths.features_train)
    write_frame(x_test, paths.features_test)
    numeric = encoder(transformer).named_transformers_["numeric"]
    skewed = numeric.steps[0][1].skewed_ if features.log_skewed else []
    metrics = {"n_features": int(x_train.shape[1]), "n_numeric": len(numeric.feature_names_in_),
               "n_log_skewed": len(skewed), "n_train_rows": len(x_train), "n_test_rows": len(x_test)}
    write_json(metrics, paths.features_metrics)
    log.info("feature matrix: %s", metrics)


if __name__ == "__main__":
    run_stage(main)
