"""The documented hook through which a competition carries its own domain knowledge.

A competition file may name a module (`module: mypackage.titanic`). The module may define

    def prepare(frame: pandas.DataFrame) -> pandas.DataFrame

which receives a validated table (train without its target, or test) and returns it with
columns added, changed or removed: derived sums, titles parsed from names, quality scales
mapped to numbers. It runs before the generic features decide each column's role, on train
and test alike, inside cross-validation, the final fit and prediction, so what it computes is
never fit on rows it should not see. It must depend on one row at a time (no statistic of the
whole table: those belong to the fold-fitted features). House Prices' hand-written schema,
derived features and caps are its own module in the same spirit (`pipeline.house_prices`);
`kpipe new` needs none.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from pipeline.common.errors import PipelineError


class HookError(PipelineError, ValueError):
    """The competition module cannot be imported, or its hook misbehaves."""


Prepare = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class Hooks:
    module: str | None = None
    prepare_fn: Prepare | None = None

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.prepare_fn is None:
            return frame
        out = self.prepare_fn(frame.copy())
        if not isinstance(out, pd.DataFrame) or len(out) != len(frame):
            raise HookError(f"{self.module}.prepare must return a DataFrame with one row per input row")
        return out


def load_hooks(module: str | None) -> Hooks:
    """The hooks of the competition module `module` (none without one)."""
    if not module:
        return Hooks()
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:
        raise HookError(f"competition module {module!r} (competition.yaml `module:`) cannot be imported: {exc}. "
                        "Put it on the path (a module beside competition.yaml, or an installed package)") from exc
    return Hooks(module, getattr(loaded, "prepare", None))
