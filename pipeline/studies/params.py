"""The sections of params.yaml for the chapter 3-4 studies, one per study."""

from __future__ import annotations

import dataclasses

from pipeline.common.params import at_least, positive


@dataclasses.dataclass(frozen=True)
class LinregStudyParams:
    rows: int = at_least(1)
    true_w: tuple[float, ...]
    true_b: float
    noise: float = at_least(0)
    epochs: int = at_least(1)
    batch_size: int = at_least(1)
    lr: float = positive()


@dataclasses.dataclass(frozen=True)
class WeightDecayStudyParams:
    train_rows: int = at_least(1)
    test_rows: int = at_least(1)
    features: int = at_least(1)
    noise: float = at_least(0)
    epochs: int = at_least(1)
    batch_size: int = at_least(1)
    lr: float = positive()
    lambdas: tuple[float, ...] = at_least(0)


@dataclasses.dataclass(frozen=True)
class InitStudyParams:
    depth: int = at_least(1)
    width: int = at_least(1)
    batch_size: int = at_least(1)
    matrices: int = at_least(1)
    matrix_size: int = at_least(1)
