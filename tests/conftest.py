"""Shared fixtures: where Debian's dataset-fashion-mnist puts the real files."""

from __future__ import annotations

from pathlib import Path

import pytest

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """The four real `*-ubyte.gz` files (install `dataset-fashion-mnist` to run these tests)."""
    if not all((DEBIAN_FASHION_DIR / n).exists() for n in (
            "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")):
        pytest.skip(f"{DEBIAN_FASHION_DIR} missing: apt-get install -y dataset-fashion-mnist")
    return DEBIAN_FASHION_DIR
