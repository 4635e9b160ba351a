"""Stage `train-fashion@<model>`: train one of the six classifiers; curves, pictures, metrics.

DVC runs it once per model (a `matrix` over `fashion_train.models`); the model is the one
argument, every other setting comes from the `fashion_train` section, shared by all six so
that their metrics compare.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path


from pipeline.fashion.data import load_arrays, to_tensors
from pipeline.fashion.figures import plot_predictions, plot_training_curves
from pipeline.fashion.models import build_classifier
from pipeline.fashion.train import EpochStats, TrainSettings, \
    predict_labels, train_classifier
from pipeline.params import BaseParams, FashionTrainParams, ParamsError, load_section
from pipeline.paths import ProjectPaths
from pipeline.runtime import set_threads
from pipeline.stages import run_stage
from pipeline.seed import seed_everything
from pipeline.outputs import write_json
from pipeline.tracking import FASHION_EXPERIMENT, RunRecord, log_record

log = logging.getLogger(__name__)


def main(model: str, paths: ProjectPaths | None = None) -> dict[str, float]:
    paths = paths or ProjectPaths.here()
    base = load_section(paths.params, "base", BaseParams)
    params = load_section(paths.params, "fashion_train", FashionTrainParams)
    if model not in params.models:
        raise ParamsError(f"model {model!r} is not in fashion_train.models {params.models}")
    threads = set_threads(params.num_threads)
    log.info("%s: %d torch thread(s)", model, threads)

    data = load_arrays(paths.fashion_arrays)
    x_train, y_train = to_tensors(data.train_images, data.train_labels, params.max_train_rows)
    x_test, y_test = to_tensors(data.test_images, data.test_labels, params.max_test_rows)
    generator = seed_everything(base.seed)
    clf = build_classifier(model, params.mlp_hidden, params.dropout_hidden, params.dropout_rates,
                           generator)
    settings = TrainSettings(params.epochs, params.batch_size, params.optimizer, params.lr,
                             params.momentum, params.weight_decay, params.schedule)
    history = train_classifier(clf, x_train, y_train, x_test, y_test, settings, generator)

    shown = min(params.prediction_images, len(x_test))
    predicted = predict_labels(clf.model, x_test[:shown]).numpy()
    metrics = summarize(history)
    write_curves(history, paths.fashion_curves(model))
    plot_training_curves(history, model, paths.fashion_curves_png(model))
    plot_predictions(data.test_images[:shown], data.test_labels[:shown], predicted,
                     f"{model}: first {shown} test images (misses in red)",
                     paths.fashion_predictions_png(model))
    write_json(metrics, paths.fashion_metrics(model))
    log.info("%s: %s", model, metrics)

    log_record(paths, FASHION_EXPERIMENT, RunRecord(
        name=model,
        params={**{k: v for k, v in dataclasses.asdict(params).items() if k != "models"},
                "model": model, "seed": base.seed, "num_threads_used": threads,
                "train_rows": len(x_train), "test_rows": len(x_test)},
        metrics=metrics,
        curves={"epoch_train_loss": [s.train_loss for s in history],
                "epoch_train_accuracy": [s.train_accuracy for s in history],
                "epoch_test_accuracy": [s.test_accuracy for s in history],
                "epoch_seconds_each": [s.seconds for s in history]},
        tags={"model": model, "implementation": "scratch" if clf.scratch else "torch.nn"},
        artifacts=[paths.fashion_curves(model), paths.fashion_curves_png(model),
                   paths.fashion_predictions_png(model)],
    ))
    return metrics


def summarize(history: Sequence[EpochStats]) -> dict[str, float]:
    """Final-epoch loss and accuracies, and the mean seconds of a training epoch."""
    final = history[-1]
    return {"test_accuracy": final.test_accuracy, "train_accuracy": final.train_accuracy,
            "train_loss": final.train_loss,
            "epoch_seconds": sum(s.seconds for s in history) / len(history)}


def write_curves(history: Sequence[EpochStats], path: Path) -> None:
    """One CSV row per epoch: what `dvc plots` draws."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = [f.name for f in dataclasses.fields(EpochStats)]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(dataclasses.asdict(s) for s in history)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    model = parser.parse_args().model
    run_stage(lambda: main(model))
