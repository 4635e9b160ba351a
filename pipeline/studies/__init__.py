"""Small chapter 3-4 studies: linear regression, weight decay, numerical stability."""

from __future__ import annotations

from typing import TypeVar

import torch

from pipeline.params import BaseParams, load_section
from pipeline.paths import ProjectPaths
from pipeline.seed import seed_everything

T = TypeVar("T")


def start_study(paths: ProjectPaths, section: str, cls: type[T]) -> tuple[T, int, torch.Generator]:
    """A study stage's params, its seed and the generator seeded with it.

    Every study runs on one torch thread: its tensors are tiny, and extra threads only add
    synchronization.
    """
    seed = load_section(paths.params, "base", BaseParams).seed
    params = load_section(paths.params, section, cls)
    torch.set_num_threads(1)
    return params, seed, seed_everything(seed)
