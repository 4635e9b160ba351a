"""On a machine with a GPU: `runtime.device` cuda/auto trains there and agrees with the CPU.

Skipped without CUDA (CI has none); run on a GPU machine with `pytest tests/test_cuda.py`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import model_params, plain_features, train_params

from pipeline.common.runtime import resolve_device
from pipeline.house_prices.cv import cross_validate, split_folds
from pipeline.house_prices.final import fit_final, predict_frame

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

FEATURES = plain_features()
MLP = model_params("mlp", (32,))
FAST = train_params(epochs=10, lr=0.003, weight_decay=0.02, schedule="cosine")


def test_auto_takes_the_gpu() -> None:
    assert resolve_device("auto").type == "cuda"


def test_cv_on_the_gpu_matches_the_cpu(clean_frames) -> None:
    train, test = clean_frames
    splits = split_folds(len(train), 5, seed=0)
    cpu = cross_validate(train, test, FEATURES, MLP, FAST, splits, seed=0, device="cpu")
    gpu = cross_validate(train, test, FEATURES, MLP, FAST, splits, seed=0, device="cuda")
    # Same data order and init; only floating-point summation order differs.
    assert np.allclose(gpu.fold_scores, cpu.fold_scores, atol=5e-3)


def test_final_fit_on_the_gpu_predicts_on_the_cpu(clean_frames) -> None:
    train, test = clean_frames
    final = fit_final(train, test, FEATURES, MLP, FAST, seed=0, device="cuda")
    assert next(final.model.parameters()).device.type == "cpu"
    prices = predict_frame(final, test)["SalePrice"]
    assert np.isfinite(prices).all() and (prices > 0).all()
