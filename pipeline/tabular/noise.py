"""The paired fold-noise rule: a challenger beats an incumbent only when its CV score drops by more
than one standard error of their per-fold differences. Tuning judges a study's best trial by it
(`pipeline.tuning.incumbent`), and both blend choices (House Prices' and a competition project's)
judge a new blend by it, so chance alone rarely replaces a good default.
"""

from __future__ import annotations

import math

import numpy as np


def fold_noise(ours: np.ndarray, theirs: np.ndarray) -> float:
    """One standard error of the paired per-fold differences `ours - theirs` where both were
    scored on the same folds (the usual case), else of the incumbent's (`theirs`) own scores
    over its folds, else 0 (a single fold has no spread)."""
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    if len(ours) == len(theirs) > 1:
        return float(np.std(ours - theirs, ddof=1) / math.sqrt(len(ours)))
    if len(theirs) > 1:
        return float(np.std(theirs, ddof=1) / math.sqrt(len(theirs)))
    return 0.0


def clears_noise(delta: float, noise: float) -> bool:
    """The rule: better only when the score drops by more than the noise (`delta < -noise`)."""
    return delta < -noise
