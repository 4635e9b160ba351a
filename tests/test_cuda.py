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
    assert next(final.model.network.parameters()).device.type == "cpu"
    prices = predict_frame(final, test)["SalePrice"]
    assert np.isfinite(prices).all() and (prices > 0).all()


# --- Fashion-MNIST and the studies: the same runtime.device choice ----------------------------

@pytest.fixture(scope="module")
def fashion_tensors() -> tuple[torch.Tensor, ...]:
    """A slice of the real data: the stage's .npz when present, else Debian's files."""
    from conftest import DEBIAN_FASHION_DIR, ROOT

    from pipeline.common.paths import ProjectPaths
    from pipeline.fashion.arrays import load_arrays, to_tensors
    from pipeline.fashion.fetch import FASHION_FILES, read_arrays

    npz = ProjectPaths(ROOT).fashion_arrays
    if npz.exists():
        data = load_arrays(npz)
    elif DEBIAN_FASHION_DIR.exists():
        data = read_arrays({f.key: DEBIAN_FASHION_DIR / f.name for f in FASHION_FILES}, 200 << 20)
    else:
        pytest.skip("needs data/fashion/fashion_mnist.npz or Debian's dataset-fashion-mnist")
    return (*to_tensors(data.train_images, data.train_labels, 20_000),
            *to_tensors(data.test_images, data.test_labels))


@pytest.mark.parametrize("name", ["softmax_scratch", "softmax", "mlp_scratch", "mlp", "dropout_scratch", "dropout"])
def test_fashion_on_the_gpu_matches_the_cpu(name: str, fashion_tensors) -> None:
    from pipeline.common.seed import seed_everything
    from pipeline.fashion.models import build_classifier
    from pipeline.fashion.train import TrainSettings, train_classifier

    settings = TrainSettings(epochs=2, batch_size=256, optimizer="adam", lr=0.003, momentum=0.9,
                             weight_decay=0.0, schedule="cosine")
    accuracy = {}
    for device in ("cpu", "cuda"):
        generator = seed_everything(0)
        clf = build_classifier(name, (256,), (256, 256), (0.2, 0.5), generator)
        history = train_classifier(clf, *fashion_tensors, settings, generator, progress=False,
                                   device=torch.device(device))
        assert next(clf.model.parameters()).device.type == device  # the model stayed there
        accuracy[device] = history[-1].test_accuracy
    # Same data, order and initial weights; dropout masks come from each device's own RNG.
    assert abs(accuracy["cuda"] - accuracy["cpu"]) <= 0.005, accuracy


def test_a_study_on_the_gpu_recovers_the_same_weights() -> None:
    from pipeline.studies.linreg import fit_scratch, make_linear_data

    x, y = make_linear_data(torch.tensor([2.0, -3.4]), 4.2, 1000, 0.01, torch.Generator().manual_seed(0))
    cpu, gpu = (fit_scratch(x, y, 3, 10, 0.03, torch.Generator().manual_seed(1), torch.device(d))
                for d in ("cpu", "cuda"))
    assert np.allclose(cpu.w, gpu.w, atol=1e-4) and abs(cpu.b - gpu.b) < 1e-4
