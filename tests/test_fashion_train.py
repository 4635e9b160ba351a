"""The in-memory training loop learns, reports honest per-epoch numbers, and is repeatable."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
import torch

from pipeline.common.runtime import free_cores, resolve_threads
from pipeline.fashion.arrays import to_tensors
from pipeline.fashion.fetch import FASHION_FILES
from pipeline.fashion.idx import parse_idx
from pipeline.fashion.models import build_classifier
from pipeline.fashion.train import TrainSettings, evaluate_accuracy, train_classifier

SETTINGS = TrainSettings(epochs=2, batch_size=128, optimizer="adam", lr=0.003, momentum=0.9,
                         weight_decay=0.0, schedule="cosine")


@pytest.fixture(scope="module")
def small_split(fashion_dir: Path) -> tuple[torch.Tensor, ...]:
    """The first 4000 training and 1000 test images of the real dataset."""
    arrays = {f.key: parse_idx(gzip.decompress((fashion_dir / f.name).read_bytes()), f.name,
                               f.ndim) for f in FASHION_FILES}
    return (*to_tensors(arrays["train_images"], arrays["train_labels"], 4000),
            *to_tensors(arrays["test_images"], arrays["test_labels"], 1000))


@pytest.mark.parametrize("name", ["softmax_scratch", "mlp", "dropout_scratch"])
def test_training_beats_chance_by_far(small_split, name):
    x_train, y_train, x_test, y_test = small_split
    g = torch.Generator().manual_seed(0)
    clf = build_classifier(name, (64,), (64, 64), (0.2, 0.5), g)
    history = train_classifier(clf, x_train, y_train, x_test, y_test, SETTINGS, g,
                               progress=False)
    assert [s.epoch for s in history] == [1, 2]
    assert history[-1].train_loss < history[0].train_loss
    assert history[-1].test_accuracy > 0.65
    assert history[-1].test_accuracy == pytest.approx(evaluate_accuracy(clf.model, x_test, y_test))
    assert all(s.seconds > 0 for s in history)


def test_same_seed_same_result_and_inputs_untouched(small_split):
    x_train, y_train, x_test, y_test = (t[:1000] for t in small_split)
    before = x_train.clone()
    runs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(7)
        clf = build_classifier("mlp_scratch", (32,), (32,), (0.5,), g)
        runs.append([s.train_loss for s in train_classifier(
            clf, x_train, y_train, x_test, y_test, SETTINGS, g, progress=False)])
    assert runs[0] == runs[1]
    assert torch.equal(x_train, before)


def test_an_explicit_thread_count_is_used_as_is():
    assert resolve_threads(3) == 3


@pytest.mark.parametrize("load,expected", [(0.2, 2), (1.2, 1), (7.0, 1)])
def test_auto_threads_are_the_cores_not_busy_elsewhere(monkeypatch, load, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert free_cores() == expected
    assert resolve_threads(0) == expected
