"""`dvc repro` of the fashion stages, in a clone of this repository, on a real slice.

Proves what a unit test cannot: dvc.yaml's commands, deps and outs line up with the code,
the matrix expands to all six models, and every declared output is produced.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import edit_params, run_dvc

from pipeline.common.paths import ProjectPaths
from pipeline.fashion.params import FASHION_MODELS


def shrink_params(params_file: Path) -> None:
    """A 3000-row, 2-epoch run: seconds per model instead of minutes."""
    params = yaml.safe_load(params_file.read_text())
    params["fashion_train"].update(epochs=2)
    params["runtime"].update(fashion_max_train_rows=3000, fashion_max_test_rows=500, threads=1)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.e2e
def test_dvc_repro_trains_all_six_models(repo_copy: Path, tmp_path: Path, fashion_dir: Path, mlflow_uri: str) -> None:
    repo = repo_copy
    paths = ProjectPaths(repo)
    shrink_params(paths.params)
    env = {"MLFLOW_TRACKING_URI": mlflow_uri}  # a store already migrated: the stages only log
    result = run_dvc(repo, "repro", "train-fashion", env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    assert paths.fashion_arrays.exists()
    for model in FASHION_MODELS:
        metrics = json.loads(paths.fashion_metrics(model).read_text())
        # No time in a committed file: the same commit computes the same bytes (times go to MLflow).
        assert set(metrics) == {"test_accuracy", "train_accuracy", "train_loss", "train_rows", "test_rows"}
        assert (metrics["train_rows"], metrics["test_rows"]) == (3000, 500)
        assert metrics["test_accuracy"] > 0.6, (model, metrics)
        curves = paths.fashion_curves(model).read_text().splitlines()
        assert curves[0] == "epoch,train_loss,train_accuracy,test_accuracy"
        assert len(curves) == 1 + 2
        for png in (paths.fashion_curves_png(model), paths.fashion_predictions_png(model)):
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png

    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert {f"train-fashion@{m}" for m in FASHION_MODELS} | {"fetch-fashion"} <= set(lock["stages"])
    import mlflow

    runs = mlflow.search_runs(experiment_names=["fashion-mnist"], output_format="list")
    assert sorted(r.info.run_name for r in runs) == sorted(FASHION_MODELS)  # one run per model
    # Data and pictures are DVC's, never git's: DVC wrote .gitignore entries for them.
    assert "/fashion_mnist.npz" in (repo / "data/fashion/.gitignore").read_text()

    # The runtime section says how to run, not what: changing it leaves every stage up to date.
    edit_params(repo, runtime__threads=2, runtime__fashion_prediction_images=4)
    status = run_dvc(repo, "status", "train-fashion")
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout
    # One model more in fashion_models adds a stage and changes none of the others.
    edit_params(repo, fashion_models=[*FASHION_MODELS[:-1]])
    status = run_dvc(repo, "status", "train-fashion")
    assert "changed" not in status.stdout, status.stdout
