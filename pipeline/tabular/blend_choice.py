"""`kpipe blend` in a competition project: the best equal-weight blend among every member the
OOF library holds for this project's folds and data, written as `model.members` only when it
beats params.yaml's blend by more than the fold noise.

Forward selection without replacement (Caruana et al.'s ensemble selection, without the
repeats, so the choice is exactly a `blend: mean` of distinct members): start from nothing, add
the member whose inclusion scores best, stop when no addition helps. Choosing on the same
out-of-fold rows that score the choice would flatter it, so the choice is scored nested: for
each fold, selection runs on the other folds' out-of-fold rows and the chosen mean is scored on
the held-out fold. The rule for writing is House Prices' (`pipeline.tuning.incumbent`): better
than the incumbent by more than one standard error of the paired fold differences.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.common.params import read_params, with_overrides
from pipeline.common.params_edit import write_params
from pipeline.common.paths import ProjectPaths
from pipeline.tabular.competition import read_competition
from pipeline.tabular.hooks import load_hooks
from pipeline.tabular.library import MemberLibrary
from pipeline.tabular.members import FAMILIES
from pipeline.tabular.modeling import Problem, cross_validate, fold_plan
from pipeline.tabular.noise import clears_noise, fold_noise
from pipeline.tabular.params import parse_tabular
from pipeline.tabular.selection import MAX_MEMBERS, nested_scores, select


def member_spec(ingredients: Mapping[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    """A stored member as params.yaml writes it: its kind and the keys it differs in."""
    spec: dict[str, Any] = {"kind": ingredients["kind"]}
    if ingredients["seed"] != raw["base"]["seed"]:
        spec["base.seed"] = ingredients["seed"]
    for section, values in ingredients.items():
        if isinstance(values, Mapping):
            for key, value in values.items():
                current = raw[section][key]
                if (list(value) if isinstance(value, tuple) else value) != current:
                    spec[f"{section}.{key}"] = value
    return spec


@dataclass
class BlendReport:
    candidates: pd.DataFrame
    chosen: list[dict[str, Any]]
    nested: np.ndarray
    incumbent: np.ndarray
    metric: str
    written: bool
    reason: str

    def report(self) -> str:
        lines = [f"{len(self.candidates)} candidate member(s) in the OOF library for these folds and data:",
                 self.candidates.to_string(index=False),
                 f"chosen: {len(self.chosen)} member(s), nested CV {self.metric} {self.nested.mean():.5f} "
                 f"± {self.nested.std():.5f}; params.yaml's blend {self.incumbent.mean():.5f}",
                 *(f"  {spec}" for spec in self.chosen), self.reason]
        return "\n".join(lines)


def run_tabular_blend(paths: ProjectPaths, dry_run: bool = False, max_members: int = MAX_MEMBERS) -> BlendReport:
    """Choose, report, and (unless `dry_run`, and only when it is better) write params.yaml."""
    competition = read_competition(paths.competition_file)
    raw = read_params(paths.params)
    experiment = parse_tabular(raw, tuple(FAMILIES))
    problem = Problem.of(competition, load_hooks(competition.module))
    train, test = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)
    library = MemberLibrary.for_project(paths.root)
    current = cross_validate(problem, experiment, train, test, library)  # read back, or computed once and stored
    plan_key, data_key = library.plan_key, library.data_key
    entries = [e for e in library.library.entries() if e.manifest.get("plan_key") == plan_key
               and e.manifest.get("data_key") == data_key and e.manifest.get("competition") == competition.slug]
    y = problem.fit_target(train)
    links = [e.arrays()["oof_link"] for e in entries]
    splits = fold_plan(y, problem.task, experiment.cv.folds, experiment.cv.shuffle, experiment.base.seed)
    nested = nested_scores(problem, y, links, splits, max_members)
    chosen = [member_spec(entries[i].manifest["params"], raw)
              for i in select(problem, y, links, np.arange(len(y)), max_members)]
    table = pd.DataFrame([{"key": e.key[:12], "member": e.manifest["member"],
                           f"cv_{problem.metric.name}": round(e.manifest["cv"]["mean"], 5)} for e in entries])
    delta = problem.metric.sign * (nested.mean() - current.fold_scores.mean())
    noise = fold_noise(problem.metric.sign * nested, problem.metric.sign * current.fold_scores)
    if not clears_noise(delta, noise):
        reason = (f"not written: the choice does not beat params.yaml's blend by more than the fold noise "
                  f"({noise:.5f})")
        return BlendReport(table, chosen, nested, current.fold_scores, problem.metric.name, False, reason)
    if dry_run:
        return BlendReport(table, chosen, nested, current.fold_scores, problem.metric.name, False,
                           "better than params.yaml's blend; not written (--dry-run)")
    parse_tabular(with_overrides(raw, {"model.members": chosen}), tuple(FAMILIES))  # the stages will accept it
    write_params(paths.params, {"model.members": chosen}, paths.params)
    return BlendReport(table, chosen, nested, current.fold_scores, problem.metric.name, True,
                       f"wrote {len(chosen)} member(s) into {paths.params.name} as model.members: `dvc repro`")
