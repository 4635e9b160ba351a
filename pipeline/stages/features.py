"""Stage `features`: the feature matrix of every row, for inspection and as a schema check.

CV and the final fit refit the same transformer on their own training rows; this stage shows
what the model sees when it is fit on all training rows, and fails early if that matrix has
a NaN or an infinite value.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline.features import encoder, fit_transformer, training_rows, transform
from pipeline.params import FeatureParams, load_section
from pipeline.outputs import write_json
from pipeline.paths import ProjectPaths
from pipeline.stages import run_stage

log = logging.getLogger(__name__)


def main() -> None:
    paths = ProjectPaths.here()
    params = load_section(paths.params, "features", FeatureParams)
    train, test = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)
    transformer = fit_transformer(train.iloc[training_rows(train, np.arange(len(train)), params)], test, params)
    x_train, x_test = transform(transformer, train), transform(transformer, test)
    paths.processed_dir.mkdir(parents=True, exist_ok=True)
    x_train.to_parquet(paths.features_train, index=False)
    x_test.to_parquet(paths.features_test, index=False)
    numeric = encoder(transformer).named_transformers_["numeric"]
    skewed = numeric.steps[0][1].skewed_ if params.log_skewed else []
    metrics = {"n_features": int(x_train.shape[1]), "n_numeric": len(numeric.feature_names_in_),
               "n_log_skewed": len(skewed), "n_train_rows": len(x_train), "n_test_rows": len(x_test)}
    write_json(metrics, paths.features_metrics)
    log.info("feature matrix: %s", metrics)


if __name__ == "__main__":
    run_stage(main)
