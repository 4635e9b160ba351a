"""`kpipe blend`: choose a blend from the OOF library, and ship it only when it beats params.yaml.

Candidates are library entries cross-validated on the same fold plan and data as params.yaml's
experiment on `tune.cv_repeats` repeats (the layout every tuning trial uses): all of them (every
experiment this repository ran), the members of one study's trials (`--study`), or a list of
keys. Each blend method (`mean`, `stack`, greedy forward selection with replacement, and the
ridge meta-model for comparison) is scored nested, so a fold's score never uses members or
weights chosen on it (`blend_search`). The winner is written into params.yaml as
`model.members` (each member as dotted overrides of the top-level params, only the keys its
family reads) and `model.blend`, and only when it beats the incumbent (params.yaml's own
experiment, scored on the same folds) by more than the paired fold noise: the rule
`kpipe tune --apply` uses. The cv stage then refits the method's weights on those members.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from pipeline.common.errors import PipelineError
from pipeline.common.params import read_params, with_overrides
from pipeline.common.params_edit import write_params
from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.blend_search import BlendChoice, beats_incumbent, search_blends, table
from pipeline.house_prices.cv import repeat_of
from pipeline.house_prices.experiment import (
    EnsembleCV,
    ExperimentParams,
    blend_rows,
    experiment_folds,
    parse_experiment,
    run_cv,
)
from pipeline.house_prices.members import ENSEMBLE
from pipeline.tabular.oof_library import Entry, OOFLibrary
from pipeline.tuning.storage import open_storage
from pipeline.tuning.study import MEMBER_KEYS, load_frames, load_tune, trial_params

log = logging.getLogger(__name__)


class BlendError(PipelineError):
    """No blend can be chosen (no candidates, an unknown study or key)."""


@dataclass(frozen=True)
class BlendOptions:
    study: str | None = None  # the members of this study's trials
    storage: str | None = None  # the study's storage (default: tune.storage)
    keys: tuple[str, ...] = ()  # these entries (key prefixes)
    repeats: int | None = None  # the fold plan's repeats (default: tune.cv_repeats)
    dry_run: bool = False  # report only, never write params.yaml


@dataclass
class BlendOutcome:
    choice: BlendChoice
    candidates: list[Entry]
    incumbent: EnsembleCV
    better: bool
    delta: float
    noise: float
    written: Path | None

    def report(self) -> str:
        names = [f"{e.key[:10]} {e.manifest.get('member', '?')}" for e in self.candidates]
        lines = [f"{len(self.candidates)} candidates from the OOF library; incumbent (params.yaml) "
                 f"{self.incumbent.mean:.5f} on {len(self.incumbent.fold_scores)} folds",
                 table(self.choice, names, self.incumbent.fold_scores)]
        verdict = (f"{self.choice.method} blend {self.choice.mean:.5f}, {self.delta:+.5f} against the incumbent "
                   f"(fold noise ±{self.noise:.5f}): ")
        if self.better:
            verdict += "better" + (f"; written to {self.written}" if self.written else " (--dry-run: nothing written)")
        else:
            verdict += "not better by more than the noise; params.yaml left as it is"
        return "\n".join([*lines, verdict])


def check_keys(library: OOFLibrary, keys: Sequence[str]) -> None:
    """Every `--key` is the prefix of some library entry's key: checked before anything is loaded
    or scored, so a mistyped key costs nothing. Which entry a prefix names on the incumbent's fold
    plan is known only once the incumbent is scored (`candidate_entries`)."""
    held = [entry.key for entry in library.entries()]
    unknown = [prefix for prefix in keys if not any(key.startswith(prefix) for key in held)]
    if unknown:
        raise BlendError(f"no entry of the OOF library at {library.root} has the key{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}: `kpipe oof` lists the keys it holds")


def candidate_entries(library: OOFLibrary, plan_key: str, data_key: str, options: BlendOptions,
                      paths: ProjectPaths, incumbent_keys: Sequence[str]) -> list[Entry]:
    """The entries to choose from, all on the incumbent's fold plan and data, the incumbent's
    own members first."""
    usable = {e.key: e for e in library.entries()
              if e.manifest.get("plan_key") == plan_key and e.manifest.get("data_key") == data_key}
    if options.keys:
        chosen = []
        for prefix in options.keys:
            found = [k for k in usable if k.startswith(prefix)]
            if len(found) != 1:
                raise BlendError(f"key {prefix!r} names {len(found)} library entries on this fold plan (`kpipe oof` "
                                 "lists them)")
            chosen.append(found[0])
    elif options.study:
        chosen = study_keys(paths, options)
    else:
        chosen = list(usable)
    keys = list(dict.fromkeys([*incumbent_keys, *(k for k in chosen if k in usable)]))
    return distinct_members([usable[k] for k in keys if k in usable], incumbent_keys)


def distinct_members(entries: Sequence[Entry], first: Sequence[str] = ()) -> list[Entry]:
    """Each member once: entries of the same params (the same member computed by older code or
    on another thread count) are one candidate, so no member weighs more in a blend for having
    been computed twice. The entries named in `first` (the incumbent's own) are kept first, then
    the newest of each member."""
    ahead = [e for key in first for e in entries if e.key == key]
    rest = sorted((e for e in entries if e.key not in set(first)), key=lambda e: -float(e.manifest.get("created", 0)))
    kept: dict[str, Entry] = {}
    for entry in (*ahead, *rest):
        kept.setdefault(json.dumps(entry.manifest.get("params"), sort_keys=True), entry)
    return list(kept.values())


def study_keys(paths: ProjectPaths, options: BlendOptions) -> list[str]:
    """The library keys of every member of a study's completed and pruned trials."""
    raw = read_params(paths.params)
    tune, _ = load_tune(raw)
    storage = open_storage(options.storage if options.storage is not None else tune.storage, paths)
    try:
        study = optuna.load_study(study_name=options.study, storage=storage)
    except KeyError as exc:
        raise BlendError(f"no study {options.study!r} in that storage (kpipe tune --status lists it)") from exc
    return [k for t in study.get_trials(deepcopy=False) for k in t.user_attrs.get(MEMBER_KEYS, [])]


def member_overrides(ingredients: Mapping[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    """A library entry's member as dotted overrides of `raw`'s top-level params: `model.kind`,
    and each key its family reads (its ingredients) whose value differs from params.yaml's."""
    out: dict[str, Any] = {"model.kind": ingredients["kind"]}
    if raw["base"]["seed"] != ingredients["seed"]:
        out["base.seed"] = ingredients["seed"]
    for section, values in ingredients.items():  # the rest are params sections (families.Family.ingredients)
        if section not in ("kind", "seed") and values:
            out.update(_differing(section, values, raw[section]))
    return out


def _differing(prefix: str, values: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        here = current.get(key)
        if isinstance(value, Mapping) and isinstance(here, Mapping):
            out.update(_differing(f"{prefix}.{key}", value, here))
        elif value != here:
            out[f"{prefix}.{key}"] = value
    return out


def run_blend(paths: ProjectPaths, options: BlendOptions) -> BlendOutcome:
    """Score every blend of the candidates nested; write the winner if it beats params.yaml."""
    library = OOFLibrary.for_project(paths.root)
    check_keys(library, options.keys)
    raw = read_params(paths.params)
    tune, _ = load_tune(raw)
    scored = with_overrides(trial_params(raw, tune), {"cv.repeats": options.repeats} if options.repeats else {})
    params = parse_experiment(scored)
    train, test = load_frames(paths)
    log.info("scoring the incumbent (params.yaml) on %d x %d folds", params.cv.repeats, params.cv.folds)
    incumbent = run_cv(params, train, test, library=library)
    entry = library.get(incumbent.keys[0])
    assert entry is not None  # run_cv just stored or read it
    plan_key, data_key = entry.manifest["plan_key"], entry.manifest["data_key"]
    candidates = candidate_entries(library, plan_key, data_key, options, paths, incumbent.keys)
    if len(candidates) < 2:
        raise BlendError(f"only {len(candidates)} library entry on this fold plan: run `kpipe tune` (or dvc repro "
                         "with other members) first")
    choice = choose_blend(candidates, params, train, incumbent.prices)
    better, delta, noise = beats_incumbent(choice.scores, incumbent.fold_scores)
    written = None
    if better and not options.dry_run:
        written = write_blend(paths, raw, choice, candidates)
    return BlendOutcome(choice, candidates, incumbent, better, delta, noise, written)


def choose_blend(candidates: Sequence[Entry], params: ExperimentParams, train: pd.DataFrame,
                 prices: np.ndarray) -> BlendChoice:
    """Every blend method over the candidates' out-of-fold predictions, scored nested on the
    folds of `params` (the candidates' own), weights learned from `blend_rows`."""
    splits = experiment_folds(params, len(train))
    return search_blends(np.stack([c.arrays()["oof_repeats"] for c in candidates]), prices, splits,
                         repeat_of(splits, len(train)), blend_rows(params, train))


def write_blend(paths: ProjectPaths, raw: Mapping[str, Any], choice: BlendChoice, candidates: list[Entry]) -> Path:
    """params.yaml with the chosen members (heaviest first) and the winning method."""
    members = [member_overrides(candidates[i].manifest["params"], raw) for i in choice.selected]
    overrides = {"model.kind": ENSEMBLE, "model.blend": choice.method, "model.members": members}
    parse_experiment(with_overrides(dict(raw), overrides))  # the stages will accept it
    write_params(paths.params, overrides, paths.params)
    return paths.params


def library_table(library: OOFLibrary, limit: int) -> str:
    """The library's entries, best CV first: key, member, CV mean and std, fold plan, commit, age."""
    import time

    import pandas as pd

    entries = library.entries()
    if not entries:
        return f"the OOF library at {library.root} is empty: `dvc repro cv` or `kpipe tune` fills it"
    now = time.time()
    rows = [{"key": e.key[:12], "member": e.manifest.get("member", "?"),
             "cv_mean": round(float(e.manifest["cv"]["mean"]), 5),
             "cv_std": round(float(e.manifest["cv"]["std"]), 5),
             "plan": "{repeats}x{folds} seed {seed}".format(**e.manifest.get("plan", {})),
             "commit": e.manifest.get("commit") or "-",
             "age_h": round((now - float(e.manifest.get("created", now))) / 3600, 1)} for e in entries[:limit]]
    return (f"{len(entries)} entries in {library.root}, best first\n"
            + pd.DataFrame(rows).to_string(index=False))

