"""Stage `train-fashion@<model>`: train one of the six classifiers; curves, pictures, metrics.

DVC runs it once per model (a `matrix` over `fashion_models`); the model is the one argument,
every other setting comes from the `fashion_train` section, shared by all six so that their
metrics compare.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from pipeline.common.io import write_json
from pipeline.common.params import BaseParams, RuntimeParams, StageParams
from pipeline.common.paths import ProjectPaths
from pipeline.common.runtime import resolve_device, set_threads
from pipeline.common.seed import seed_everything
from pipeline.common.tracking import FASHION_EXPERIMENT, RunRecord, log_record
from pipeline.fashion.arrays import load_arrays, to_tensors
from pipeline.fashion.figures import plot_predictions, plot_training_curves
from pipeline.fashion.models import build_classifier
from pipeline.fashion.params import FashionTrainParams, check_model
from pipeline.fashion.train import (
    TrainSettings,
    mean_epoch_seconds,
    predict_labels,
    summarize,
    train_classifier,
    write_epoch_stats,
)
from pipeline.stages import run_stage

log = logging.getLogger(__name__)


def load_params(params: StageParams) -> tuple[BaseParams, FashionTrainParams, RuntimeParams]:
    return params.section("base", BaseParams), params.section("fashion_train", FashionTrainParams), params.runtime()


def main(model: str, paths: ProjectPaths | None = None) -> dict[str, float]:
    paths = paths or ProjectPaths.here()
    base, params, runtime = load_params(StageParams(paths.params))
    check_model(model)
    threads = set_threads(runtime.threads)
    device = resolve_device(runtime.device)
    log.info("%s: %s, %d torch thread(s)", model, device, threads)

    data = load_arrays(paths.fashion_arrays)
    x_train, y_train = to_tensors(data.train_images, data.train_labels, runtime.fashion_max_train_rows)
    x_test, y_test = to_tensors(data.test_images, data.test_labels, runtime.fashion_max_test_rows)
    generator = seed_everything(base.seed)
    clf = build_classifier(model, params.mlp_hidden, params.dropout_hidden, params.dropout_rates,
                           generator)
    settings = TrainSettings(params.epochs, params.batch_size, params.optimizer, params.lr,
                             params.momentum, params.weight_decay, params.schedule)
    history = train_classifier(clf, x_train, y_train, x_test, y_test, settings, generator, device=device)

    shown = min(runtime.fashion_prediction_images, len(x_test))
    predicted = predict_labels(clf.model, x_test[:shown]).numpy()
    # The row counts make a capped run (runtime.fashion_max_*_rows) visible in `dvc metrics show`.
    metrics = {**summarize(history), "train_rows": len(x_train), "test_rows": len(x_test)}
    write_epoch_stats(history, paths.fashion_curves(model))
    plot_training_curves(history, model, paths.fashion_curves_png(model))
    plot_predictions(data.test_images[:shown], data.test_labels[:shown], predicted,
                     f"{model}: first {shown} test images (misses in red)",
                     paths.fashion_predictions_png(model))
    write_json(metrics, paths.fashion_metrics(model))
    log.info("%s: %s", model, metrics)

    log_record(paths, FASHION_EXPERIMENT, RunRecord(
        name=model,
        params={**dataclasses.asdict(params), "model": model, "seed": base.seed, "num_threads_used": threads,
                "device": str(device)},
        metrics={**metrics, "epoch_seconds": mean_epoch_seconds(history)},
        curves={"epoch_train_loss": [s.train_loss for s in history],
                "epoch_train_accuracy": [s.train_accuracy for s in history],
                "epoch_test_accuracy": [s.test_accuracy for s in history],
                "epoch_seconds_each": [s.seconds for s in history]},
        tags={"model": model, "implementation": "scratch" if clf.scratch else "torch.nn"},
        artifacts=[paths.fashion_curves(model), paths.fashion_curves_png(model),
                   paths.fashion_predictions_png(model)],
    ))
    return metrics


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    model = parser.parse_args().model
    run_stage(lambda: main(model))
