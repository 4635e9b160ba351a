"""On a machine with a GPU: `train.device` cuda/auto trains there and agrees with the CPU.

Skipped without CUDA (CI has none); run on a GPU machine with `pytest tests/test_cuda.py`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from pipeline.cv import cross_validate, fit_final, predict_frame
from pipeline.params import FeatureParams, ModelParams, TrainParams
from pipeline.training import resolve_device

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

FEATURES = FeatureParams("train", True, 0.75)
MLP = ModelParams("mlp", (32,), 0.0, False)
CPU = TrainParams(target="log", loss="mse", huber_delta=0.1, epochs=10, batch_size=64, lr=0.003, weight_decay=0.02, schedule="cosine", device="cpu", threads=1)


def test_auto_takes_the_gpu() -> None:
    assert resolve_device("auto").type == "cuda"


def test_cv_on_the_gpu_matches_the_cpu(clean_frames) -> None:
    train, test = clean_frames
    cpu = cross_validate(train, test, FEATURES, MLP, CPU, folds=5, seed=0)
    gpu = cross_validate(train, test, FEATURES, MLP, dataclasses.replace(CPU, device="cuda"), folds=5, seed=0)
    # Same data order and init; only floating-point summation order differs.
    assert np.allclose(gpu.fold_scores, cpu.fold_scores, atol=5e-3)


def test_final_fit_on_the_gpu_predicts_on_the_cpu(clean_frames) -> None:
    train, test = clean_frames
    final = fit_final(train, test, FEATURES, MLP, dataclasses.replace(CPU, device="cuda"), seed=0)
    assert next(final.model.parameters()).device.type == "cpu"
    prices = predict_frame(final, test)["SalePrice"]
    assert np.isfinite(prices).all() and (prices > 0).all()
