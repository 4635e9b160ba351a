"""Small chapter 3-4 studies: linear regression, weight decay, numerical stability."""

from __future__ import annotations

import torch

from pipeline.common.seed import seed_everything


def start_study(seed: int) -> torch.Generator:
    """Seed everything for a study and return its generator.

    Every study runs on one torch thread: its tensors are tiny, and extra threads only add
    synchronization.
    """
    torch.set_num_threads(1)
    return seed_everything(seed)
