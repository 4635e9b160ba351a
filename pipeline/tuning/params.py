"""The `tune` section of House Prices' params.yaml, apart from the study's engine.

Its own module so that reading it costs no Optuna or torch import: every `kpipe` command checks
the whole params file before it starts (`pipeline.projects`), tuning or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.common.params import ParamsError, at_least


@dataclass(frozen=True)
class TuneParams:
    n_trials: int
    timeout_s: float
    sampler_seed: int
    storage: str
    study_name: str
    pruner_startup_trials: int
    pruner_warmup_percent: int
    cv_repeats: int  # every trial's cv.repeats: choices made on one fold layout flatter it
    # each trial varies one group of the space (a member's own keys, the torch keys, the
    # features, the blend: tuning.space.group_of); the OOF library reads the members it leaves alone
    one_group_per_trial: bool
    heartbeat_s: int = at_least(0)  # RDB storages: seconds between a trial's heartbeats; 0 = off
    space: dict[str, Any]

    def check(self) -> None:
        if (self.n_trials < 1 or self.cv_repeats < 1 or self.timeout_s < 0 or self.pruner_startup_trials < 0
                or self.pruner_warmup_percent < 0):
            raise ParamsError("tune: n_trials and cv_repeats must be >= 1; timeout_s and pruner_* must be >= 0")
