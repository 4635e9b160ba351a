"""Small chapter 3-4 studies: linear regression, weight decay, numerical stability."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a study runs, not by `pipeline.studies.params` (read by every command)
    import torch


def start_study(seed: int) -> torch.Generator:
    """Seed everything for a study and return its generator.

    Every study runs on one torch thread: its tensors are tiny, and extra threads only add
    synchronization.
    """
    import torch

    from pipeline.common.seed import seed_everything

    torch.set_num_threads(1)
    return seed_everything(seed)
