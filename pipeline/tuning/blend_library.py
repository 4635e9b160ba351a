"""`kpipe blend`: choose a blend from the OOF library, and ship it only when it beats params.yaml.

One choice for every project (`run_blend`): the candidates are library entries cross-validated
on params.yaml's fold plan and data, each member once and the incumbent's own first. Every blend
kind of `pipeline.tabular.blend` is scored nested on their out-of-fold links with the
competition's metric, so a fold's score never uses members or weights chosen on it. The winner
is written into params.yaml as `model.members` (each member as the keys it differs in from the
top-level params) and `model.blend`, and only when it beats the incumbent (params.yaml's own
blend, scored on the same folds) by more than the paired fold noise: the rule `kpipe tune
--apply` uses. The cv stage then refits the kind's weights on those members.

What differs between projects is where the candidates come from (`Candidates`): House Prices'
experiment on `tune.cv_repeats` repeats, all entries or a study's (`--study`) or a list of keys
(`house_prices_candidates`); a competition project's members on its folds (`tabular_candidates`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
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
from pipeline.house_prices.cv import repeat_of
from pipeline.house_prices.experiment import (
    blend_rows,
    experiment_folds,
    log_links,
    parse_experiment,
    price_scorer,
    run_cv,
)
from pipeline.house_prices.members import ENSEMBLE
from pipeline.tabular.blend import BlendChoice, Scorer, search_blends
from pipeline.tabular.competition import read_competition
from pipeline.tabular.hooks import load_hooks
from pipeline.tabular.library import MemberLibrary
from pipeline.tabular.members import FAMILIES
from pipeline.tabular.metrics import Metric
from pipeline.tabular.modeling import Problem, cross_validate, fold_plan
from pipeline.tabular.noise import clears_noise, fold_noise
from pipeline.tabular.oof_library import Entry, OOFLibrary
from pipeline.tabular.params import parse_tabular
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


@dataclass(frozen=True)
class Candidates:
    """What a project offers `kpipe blend` to choose among, and how to write the choice."""

    raw: dict[str, Any]  # params.yaml as read
    entries: list[Entry]  # the library entries, the incumbent's own members first
    links: np.ndarray  # [C, repeats, N, *k] their out-of-fold links
    scorer: Scorer
    splits: list[tuple[np.ndarray, np.ndarray]]
    repeat: np.ndarray  # [splits] the repeat of each split
    fit_mask: np.ndarray  # [N] the rows blends may learn from
    incumbent: np.ndarray  # params.yaml's blend's fold scores on the same folds
    kind_key: str  # how a member names its family in model.members
    fixed: Mapping[str, Any]  # written beside the members (House Prices: model.kind ensemble)
    check: Callable[[dict[str, Any]], object]  # parses params as the stages will, raising if they would not


def beats_incumbent(scores: np.ndarray, incumbent: np.ndarray, metric: Metric) -> tuple[bool, float, float]:
    """(better, delta, noise): `delta` is the difference of mean fold scores, `noise` one standard
    error of the paired per-fold differences; better only when the delta, as a loss (`metric.sign`),
    clears the noise, exactly as `pipeline.tuning.incumbent.judge` decides for a tuning study."""
    scores, incumbent = np.asarray(scores, dtype=float), np.asarray(incumbent, dtype=float)
    delta = float(scores.mean() - incumbent.mean())
    noise = fold_noise(scores, incumbent)
    return clears_noise(metric.sign * delta, noise), delta, noise


def table(choice: BlendChoice, names: Sequence[str], metric: Metric, incumbent: np.ndarray | None = None) -> str:
    """A plain-text report: every kind's nested mean and std (and, given the incumbent's fold
    scores, its delta, noise and verdict), then the winner's candidates with their weights and
    the dropped candidates with their reasons."""
    if len(names) != len(choice.weights):
        raise ValueError(f"{len(names)} names for {len(choice.weights)} candidates")
    header = f"{'blend':<12} {metric.name:>9} {'std':>9}"
    if incumbent is not None:
        header += f" {'delta':>10} {'noise':>9}  verdict"
    lines = [header]
    for kind, scores in choice.fold_scores.items():
        row = f"{kind:<12} {scores.mean():>9.5f} {scores.std():>9.5f}"
        if incumbent is not None:
            better, delta, noise = beats_incumbent(scores, incumbent, metric)
            row += f" {delta:>+10.5f} {noise:>9.5f}  {'better' if better else 'not better'}"
        lines.append(row + ("  <- chosen" if kind == choice.kind else ""))
    if incumbent is not None:
        lines.append(f"{'incumbent':<12} {np.mean(incumbent):>9.5f} {np.std(incumbent):>9.5f}")
    selected = choice.selected
    lines += ["", f"{choice.kind}: {len(selected)} of {len(choice.weights)} candidates"]
    lines += [f"  {choice.weights[c]:.4f}  {names[c]}" for c in selected]
    if choice.dropped:
        lines += ["", "dropped:"] + [f"  {names[c]}: {reason}" for c, reason in sorted(choice.dropped.items())]
    return "\n".join(lines)


@dataclass
class BlendOutcome:
    candidates: Candidates
    choice: BlendChoice
    better: bool
    delta: float
    noise: float
    written: Path | None

    def report(self) -> str:
        metric = self.candidates.scorer.metric
        incumbent = self.candidates.incumbent
        names = [f"{e.key[:10]} {e.manifest.get('member', '?')}" for e in self.candidates.entries]
        lines = [f"{len(names)} candidates from the OOF library; incumbent (params.yaml) {metric.name} "
                 f"{np.mean(incumbent):.5f} on {len(incumbent)} folds",
                 table(self.choice, names, metric, incumbent)]
        verdict = (f"{self.choice.kind} blend {self.choice.mean:.5f}, {self.delta:+.5f} against the incumbent "
                   f"(fold noise ±{self.noise:.5f}): ")
        if self.better:
            verdict += "better" + (f"; written to {self.written}" if self.written else " (--dry-run: nothing written)")
        else:
            verdict += "not better by more than the noise; params.yaml left as it is"
        return "\n".join([*lines, verdict])


def run_blend(paths: ProjectPaths, options: BlendOptions,
              gather: Callable[[ProjectPaths, BlendOptions], Candidates]) -> BlendOutcome:
    """Score every blend of the project's candidates nested; write the winner if it beats params.yaml."""
    candidates = gather(paths, options)
    if len(candidates.entries) < 2:
        raise BlendError(f"only {len(candidates.entries)} library entry on this fold plan: run `kpipe tune` (or "
                         "dvc repro with other members) first")
    choice = search_blends(candidates.links, candidates.scorer, candidates.splits, candidates.repeat,
                           candidates.fit_mask)
    better, delta, noise = beats_incumbent(choice.scores, candidates.incumbent, candidates.scorer.metric)
    written = write_blend(paths, candidates, choice) if better and not options.dry_run else None
    return BlendOutcome(candidates, choice, better, delta, noise, written)


def write_blend(paths: ProjectPaths, candidates: Candidates, choice: BlendChoice) -> Path:
    """params.yaml with the chosen members (heaviest first) and the winning kind."""
    members = [member_overrides(candidates.entries[i].manifest["params"], candidates.raw, candidates.kind_key)
               for i in choice.selected]
    overrides = {**candidates.fixed, "model.blend": choice.kind, "model.members": members}
    candidates.check(with_overrides(dict(candidates.raw), overrides))  # the stages will accept it
    write_params(paths.params, overrides, paths.params)
    return paths.params


def member_overrides(ingredients: Mapping[str, Any], raw: Mapping[str, Any], kind_key: str) -> dict[str, Any]:
    """A library entry's member as dotted overrides of `raw`'s top-level params: its family (under
    `kind_key`), and each key its family reads (its ingredients) whose value differs from params.yaml's."""
    out: dict[str, Any] = {kind_key: ingredients["kind"]}
    if raw["base"]["seed"] != ingredients["seed"]:
        out["base.seed"] = ingredients["seed"]
    for section, values in ingredients.items():  # the rest are params sections (the family's ingredients)
        if section not in ("kind", "seed") and values:
            out.update(_differing(section, values, raw[section]))
    return out


def _differing(prefix: str, values: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        here = current.get(key)
        if isinstance(value, Mapping) and isinstance(here, Mapping):
            out.update(_differing(f"{prefix}.{key}", value, here))
        elif (list(value) if isinstance(value, tuple) else value) != here:
            out[f"{prefix}.{key}"] = value
    return out


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


# --- House Prices ---------------------------------------------------------------------------
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


def house_prices_candidates(paths: ProjectPaths, options: BlendOptions) -> Candidates:
    """params.yaml's experiment on `tune.cv_repeats` repeats (or `--repeats`), scored through the
    library (the incumbent), and the entries on its fold plan and data: their out-of-fold log prices."""
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
    entries = candidate_entries(library, entry.manifest["plan_key"], entry.manifest["data_key"], options, paths,
                                incumbent.keys)
    splits = experiment_folds(params, len(train))
    links = log_links(np.stack([e.arrays()["oof_repeats"] for e in entries])) if entries else np.empty(0)
    return Candidates(raw, entries, links, price_scorer(incumbent.prices), splits, repeat_of(splits, len(train)),
                      blend_rows(params, train), incumbent.fold_scores, "model.kind", {"model.kind": ENSEMBLE},
                      parse_experiment)


# --- a competition project ------------------------------------------------------------------
def tabular_candidates(paths: ProjectPaths, options: BlendOptions) -> Candidates:
    """params.yaml's blend cross-validated through the library (the incumbent), and every entry of
    this competition on its folds and data: their out-of-fold links."""
    competition = read_competition(paths.competition_file)
    raw = read_params(paths.params)
    experiment = parse_tabular(raw, tuple(FAMILIES))
    problem = Problem.of(competition, load_hooks(competition.module))
    train, test = pd.read_parquet(paths.clean_train), pd.read_parquet(paths.clean_test)
    library = MemberLibrary.for_project(paths.root)
    incumbent = cross_validate(problem, experiment, train, test, library)  # read back, or computed once and stored
    usable = [e for e in library.library.entries() if e.manifest.get("plan_key") == library.plan_key
              and e.manifest.get("data_key") == library.data_key and e.manifest.get("competition") == competition.slug]
    entries = distinct_members(usable, incumbent.keys)
    y = problem.fit_target(train)
    splits = fold_plan(y, problem.task, experiment.cv.folds, experiment.cv.shuffle, experiment.base.seed)
    links = np.stack([e.arrays()["oof_link"] for e in entries])[:, None] if entries else np.empty(0)
    return Candidates(raw, entries, links, problem.link_scorer(y), splits, np.zeros(len(splits), dtype=int),
                      np.ones(len(y), dtype=bool), incumbent.fold_scores, "kind", {},
                      lambda params: parse_tabular(params, tuple(FAMILIES)))


def library_table(library: OOFLibrary, limit: int) -> str:
    """The library's entries, best CV first: key, member, CV mean and std, fold plan, commit, age."""
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
