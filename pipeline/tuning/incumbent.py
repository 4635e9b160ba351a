"""The incumbent: what `params.yaml` already scores, the bar every tuning result must clear.

A study's first trial is the current params.yaml, cross-validated on the same folds as every
other trial and stored as a completed trial without search params (the space may not even be
able to express it: an ensemble, say). A later run of the study reuses it while params.yaml
is unchanged and adds a new one when it changed. `judge` then compares the study's best trial
with it fold by fold: a result is better only when it beats the incumbent by more than the
noise of that paired comparison, so chance alone rarely replaces a good default.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from pipeline.tabular.noise import clears_noise, fold_noise

INCUMBENT = "incumbent"  # user attr: the digest of the params the trial scored
FOLD_SCORES = "fold_scores"  # user attr: every fold's log-RMSE, in fold order


def params_digest(sections: Mapping[str, Any]) -> str:
    """A short, stable name for the experiment sections of a params mapping."""
    return hashlib.sha1(json.dumps(sections, sort_keys=True, default=str).encode()).hexdigest()[:12]


def find_incumbent(study: optuna.Study, digest: str) -> FrozenTrial | None:
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.user_attrs.get(INCUMBENT) == digest:
            return trial
    return None


def add_incumbent(study: optuna.Study, digest: str, mean: float, fold_scores: list[float],
                  std: float, worker: str) -> FrozenTrial:
    """Store the incumbent's score as a completed trial (no search params) and return it."""
    study.add_trial(optuna.trial.create_trial(
        value=mean, params={}, distributions={},
        user_attrs={INCUMBENT: digest, FOLD_SCORES: fold_scores, "cv_std": std, "worker": worker}))
    found = find_incumbent(study, digest)
    assert found is not None
    return found


def is_incumbent(trial: FrozenTrial) -> bool:
    return INCUMBENT in trial.user_attrs


@dataclass(frozen=True)
class Verdict:
    """The best trial against the incumbent: `delta` < 0 is better; `noise` is one standard
    error of the paired per-fold differences."""

    best: FrozenTrial
    incumbent: FrozenTrial
    delta: float
    noise: float

    @property
    def better(self) -> bool:
        return not is_incumbent(self.best) and clears_noise(self.delta, self.noise)

    def explain(self) -> str:
        inc = f"params.yaml (trial {self.incumbent.number}) scores {self.incumbent.value:.5f}"
        if is_incumbent(self.best):
            return f"no trial beat the incumbent: {inc}"
        change = f"trial {self.best.number} scores {self.best.value:.5f}, {self.delta:+.5f} against {inc}"
        if self.better:
            return f"{change}: better by more than the fold noise (±{self.noise:.5f})"
        return f"{change}: within the fold noise (±{self.noise:.5f}), not better"


def judge(best: FrozenTrial, incumbent: FrozenTrial) -> Verdict:
    """Compare fold by fold where both were scored on the same folds (the usual case), else
    fall back to the incumbent's own spread over its folds."""
    delta = float(best.value - incumbent.value)
    ours, theirs = (np.asarray(t.user_attrs.get(FOLD_SCORES, []), dtype=float) for t in (best, incumbent))
    return Verdict(best, incumbent, delta, fold_noise(ours, theirs))
