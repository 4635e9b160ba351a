"""The chapter studies show what the book says they show."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.studies.linreg import fit_nn, fit_scratch, make_linear_data
from pipeline.studies.stability import layer_gradient_norms, matrix_product_norms
from pipeline.studies.weight_decay import make_high_dim_data, train_with_decay

TRUE_W = torch.tensor([2.0, -3.4])


@pytest.mark.parametrize("fit", [fit_scratch, fit_nn])
def test_linear_regression_recovers_w_and_b(fit):
    g = torch.Generator().manual_seed(0)
    x, y = make_linear_data(TRUE_W, 4.2, 1000, 0.01, g)
    result = fit(x, y, 3, 10, 0.03, g)
    assert result.w == pytest.approx(TRUE_W.tolist(), abs=0.01)
    assert result.b == pytest.approx(4.2, abs=0.01)
    assert len(result.epoch_losses) == 3
    assert result.epoch_losses[-1] < min(1e-3, result.epoch_losses[0])


def test_synthetic_data_follows_the_formula():
    g = torch.Generator().manual_seed(1)
    x, y = make_linear_data(TRUE_W, 4.2, 5000, 0.01, g)
    residual = y.flatten() - (x @ TRUE_W + 4.2)
    assert float(residual.std()) == pytest.approx(0.01, rel=0.05)


@pytest.fixture(scope="module")
def decay_data():
    return make_high_dim_data(20, 100, 200, 0.01, torch.Generator().manual_seed(0))


def test_weight_decay_shrinks_w_and_cuts_the_test_loss(decay_data):
    train, test = decay_data
    plain = train_with_decay(train, test, 0.0, "penalty", 100, 5, 0.003, seed=0)
    decayed = train_with_decay(train, test, 3.0, "penalty", 100, 5, 0.003, seed=0)
    assert plain.train_losses[-1] < 0.01 and plain.test_loss > 1.0  # overfit
    assert decayed.w_norm < plain.w_norm / 5
    assert decayed.test_loss < plain.test_loss / 5


@pytest.mark.parametrize("lam", [0.0, 3.0])
def test_explicit_penalty_and_optimizer_weight_decay_agree(decay_data, lam):
    train, test = decay_data
    explicit = train_with_decay(train, test, lam, "penalty", 30, 5, 0.003, seed=0)
    builtin = train_with_decay(train, test, lam, "optimizer", 30, 5, 0.003, seed=0)
    assert explicit.w_norm == pytest.approx(builtin.w_norm, rel=1e-4)
    assert explicit.test_losses == pytest.approx(builtin.test_losses, rel=1e-3)


def test_product_of_random_matrices_explodes():
    norms = matrix_product_norms(100, 4, torch.Generator().manual_seed(0))
    assert len(norms) == 100
    assert math.isfinite(norms[-1]) and norms[-1] > 1e15
    assert norms[-1] > 1e10 * norms[0]


def test_sigmoid_gradients_vanish_towards_the_input():
    norms = layer_gradient_norms(12, 64, 64, "sigmoid", "default", torch.Generator().manual_seed(0))
    assert len(norms) == 12
    assert norms[0] < 1e-6 * norms[-1]


def test_normal_init_explodes_relu_gradients_and_xavier_keeps_them_in_range():
    g = torch.Generator().manual_seed(0)
    exploding = layer_gradient_norms(12, 64, 64, "relu", "normal", g)
    xavier = layer_gradient_norms(12, 64, 64, "relu", "xavier", g)
    assert min(exploding) > 1e10
    assert 1e-2 < xavier[0] / xavier[-1] < 1e2


def test_study_commands_write_metrics_curves_and_pictures(tmp_path, monkeypatch):
    """`kpipe study-*` run each stage against a params.yaml and write its declared outputs."""
    import json
    import shutil
    from pathlib import Path

    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.common.paths import ProjectPaths

    for name in ("params.yaml", "dvc.yaml"):  # what makes a folder a project (kpipe refuses any other)
        shutil.copy(Path(__file__).resolve().parents[1] / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    paths = ProjectPaths(tmp_path)
    for command, study in (("study-linreg", "linreg"), ("study-weight-decay", "weight_decay"),
                           ("study-init", "init")):
        result = CliRunner().invoke(app, [command])
        assert result.exit_code == 0, result.output
        metrics = json.loads(paths.study_metrics(study).read_text())
        assert all(isinstance(v, float) for v in metrics.values()), metrics
        assert paths.study_curves(study).read_text().count("\n") > 2
        assert paths.study_png(study).read_bytes()[:4] == b"\x89PNG"
    import mlflow

    # The studies are runs of their own experiment, apart from the Fashion-MNIST classifiers.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        assert mlflow.get_experiment_by_name("fashion-mnist") is None
        runs = mlflow.search_runs(experiment_names=["d2l-studies"], output_format="list")
    finally:
        mlflow.set_tracking_uri(None)
    assert len(runs) == 3
    linreg = json.loads(paths.study_metrics("linreg").read_text())
    assert linreg["scratch_w_error"] < 0.01 and linreg["nn_b_error"] < 0.01
    decay = json.loads(paths.study_metrics("weight_decay").read_text())
    assert decay["lambda_3_penalty_w_norm"] < decay["lambda_0_penalty_w_norm"]
