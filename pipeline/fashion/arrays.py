"""The Fashion-MNIST arrays: checked, stored as one `.npz`, and turned into tensors once.

Training reads only this module's file, so it does not depend on how the files were fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_path


class InvalidArrays(PipelineError, ValueError):
    """Images and labels that do not fit together (shapes, counts, label range)."""


# The book's names for the ten classes, in label order.
CLASS_NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle boot")


@dataclass(frozen=True)
class FashionArrays:
    """The whole dataset as compact numpy arrays (uint8 images N x 28 x 28, uint8 labels)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def check_arrays(data: FashionArrays) -> None:
    """Images are N x 28 x 28, one label in 0..9 per image."""
    for split in ("train", "test"):
        images, labels = getattr(data, f"{split}_images"), getattr(data, f"{split}_labels")
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise InvalidArrays(f"{split} images have shape {images.shape}, expected N x 28 x 28")
        if len(labels) != len(images):
            raise InvalidArrays(f"{split}: {len(images)} images but {len(labels)} labels")
        if labels.size and int(labels.max()) >= len(CLASS_NAMES):
            raise InvalidArrays(f"{split}: label {int(labels.max())} "
                             f"outside 0..{len(CLASS_NAMES) - 1}")


def save_arrays(data: FashionArrays, path: Path) -> None:
    """One compressed `.npz` (uint8 throughout, so it stays small)."""
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez_compressed(fh, train_images=data.train_images, train_labels=data.train_labels,
                            test_images=data.test_images, test_labels=data.test_labels)


def load_arrays(path: Path) -> FashionArrays:
    """The arrays written by `save_arrays`, checked again (the file may have been edited)."""
    with np.load(path) as npz:
        data = FashionArrays(**{k: npz[k] for k in
                                ("train_images", "train_labels", "test_images", "test_labels")})
    check_arrays(data)
    return data


def to_tensors(images: np.ndarray, labels: np.ndarray, max_rows: int = 0
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Float pixels in [0, 1], flattened to N x 784, and int64 labels: converted once.

    Converting the whole split up front is what replaces the book's per-sample `ToTensor`
    in a DataLoader, which is where its epochs spend their time. `max_rows` (0 = all) keeps
    the first rows, for tests and quick runs.
    """
    if max_rows:
        images, labels = images[:max_rows], labels[:max_rows]
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32)) / 255.0
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y
