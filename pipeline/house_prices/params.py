"""The House Prices sections of params.yaml: data, features, model, train, cv.

No field has a default: params.yaml is the one home of every value (code that builds params by
hand starts from the parsed file and replaces what it changes). Ranges are checked when the
file is parsed, so `train.lr: -0.01` is a message naming the key, not a traceback mid-training.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pipeline.common.params import at_least, positive, ranged


@dataclasses.dataclass(frozen=True)
class DataParams:
    source: Literal["bundled", "d2l", "kaggle", "local"]
    base_url: str
    local_dir: str
    verify: bool
    max_file_mb: float = positive()  # cap on each CSV (download, zip member, copy, read)


@dataclasses.dataclass(frozen=True)
class FeatureParams:
    fit_on: Literal["train", "train+test"]
    log_skewed: bool
    skew_threshold: float = at_least(0)
    ordinal: Literal["none", "add", "replace"]
    derived: bool
    drop_outliers: bool
    clip: bool
    neighborhood_cap: bool  # cap numeric features at their neighbourhood's max
    neighborhood_min_rows: int = at_least(1)  # ... in neighbourhoods with at least this many fit rows


@dataclasses.dataclass(frozen=True)
class ModelParams:
    kind: Literal["linear", "mlp", "ensemble"]
    hidden: tuple[int, ...] = at_least(1)
    dropout: float = ranged(0, 1, high_open=True)
    linear_skip: bool
    # ensemble only: each member is a set of dotted overrides of these params (e.g.
    # {model.kind: mlp, base.seed: 1}); predictions are averaged in log space.
    members: tuple[dict[str, Any], ...]


@dataclasses.dataclass(frozen=True)
class TrainParams:
    target: Literal["log", "raw"]
    loss: Literal["mse", "huber"]
    huber_delta: float = positive()
    epochs: int = at_least(1)
    batch_size: int = at_least(1)
    lr: float = positive()
    weight_decay: float = at_least(0)
    schedule: Literal["constant", "cosine"]
    # Early stopping on the fold's validation score (0 = off): stop once no fold improved
    # for this many epochs, and restore each fold's best epoch.
    patience: int = at_least(0)


@dataclasses.dataclass(frozen=True)
class CVParams:
    folds: int = at_least(2)
    # false: the book's contiguous folds (rows in file order), the same whatever the seed
    shuffle: bool
