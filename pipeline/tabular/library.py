"""The OOF library in a competition project: each member's cross-validation kept across
experiments, keyed by exactly what it depends on.

The store House Prices uses too (`pipeline.tabular.oof_library`, `.kpipe/oof/`): a
member's out-of-fold and test predictions (link space) are a pure function of its family, its
own params sections (`Family.sections`), its feature options and seed, the fold plan, the
competition's target and classes, the data (train, test and the hook module's source), the
code that computes it and, for torch, the thread count. A `dvc exp run` that changes one
member, or a `kpipe tune` trial, reads the others; `kpipe blend` chooses among everything
stored. A read is bit for bit the recomputation, so it changes no stage's result.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.common.runtime import current_threads
from pipeline.tabular.members import FAMILIES
from pipeline.tabular.oof_library import OOFLibrary, digest, frame_digest, source_digest
from pipeline.tabular.params import MemberParams, TabularExperiment

_HERE = Path(__file__).resolve().parent
CODE = tuple(_HERE / m for m in ("features.py", "members.py", "torch_members.py", "modeling.py", "params.py",
                                 "catboost_member.py"))
LIBRARIES = ("numpy", "scikit-learn", "torch", "lightgbm", "catboost", "pandas")


def member_ingredients(member: MemberParams) -> dict:
    """What one member's results depend on among its params: no other family's sections."""
    return {"kind": member.kind, "seed": member.seed, "features": dataclasses.asdict(member.features),
            **{s: dataclasses.asdict(getattr(member, s)) for s in FAMILIES[member.kind].sections}}


def plan_of(experiment: TabularExperiment) -> dict:
    return {"folds": experiment.cv.folds, "shuffle": experiment.cv.shuffle, "seed": experiment.base.seed,
            "repeats": 1}


def _hook_source(module: str | None) -> str:
    if not module:
        return ""
    spec = importlib.util.find_spec(module)
    origin = Path(spec.origin) if spec and spec.origin else None
    return digest(origin.read_text()) if origin and origin.is_file() else module


class MemberLibrary:
    """Read and write a project's members in an `OOFLibrary`."""

    def __init__(self, library: OOFLibrary) -> None:
        self.library = library

    @classmethod
    def for_project(cls, root: Path) -> MemberLibrary:
        return cls(OOFLibrary.for_project(root))

    def keys(self, problem, experiment: TabularExperiment, train: pd.DataFrame, test: pd.DataFrame) -> list[str]:
        competition = problem.competition
        shared = {"plan": plan_of(experiment), "task": problem.task.kind, "target": competition.target,
                  "classes": list(map(str, competition.classes)), "fits_log": problem.metric.fits_log,
                  "data": frame_digest(train, test), "hook": _hook_source(competition.module),
                  "code": source_digest(CODE, {n: importlib.metadata.version(n) for n in LIBRARIES})}
        self.plan_key, self.data_key = digest(shared["plan"]), shared["data"]
        return [digest({**shared, "member": member_ingredients(m),
                        "threads": current_threads() if m.kind in ("linear", "mlp") else None})
                for m in experiment.members]

    def read(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        entry = self.library.get(key)
        if entry is None:
            return None
        arrays = entry.arrays()
        return arrays["oof_link"], arrays["test_link"]

    def write(self, key: str, member: MemberParams, problem, oof: np.ndarray, test: np.ndarray,
              scores: np.ndarray) -> None:
        mean = float(np.mean(scores))
        self.library.put(key, {
            "member": member.kind, "params": member_ingredients(member), "competition": problem.competition.slug,
            "metric": problem.metric.name, "plan": {"folds": len(scores), "repeats": 1, "seed": member.seed},
            "plan_key": self.plan_key, "data_key": self.data_key, "created": time.time(),
            "cv": {"mean": mean, "std": float(np.std(scores)), "loss": problem.metric.sign * mean}},
            {"oof_link": oof, "test_link": test, "fold_scores": scores})
