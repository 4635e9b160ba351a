"""Cross-validation, the final fit and prediction of a generic competition's blend.

One path for every task: features fit inside each fold (`features.py`), every member fit on
the fold's rows (`members.py`), link-space predictions of the held-out rows and of the test
rows, an equal-weight mean of the members in link space (log-odds or log-probabilities for
classification, so the blend of two confident members stays confident), and the
competition's metric on what the submission holds. The mean has no fitted weights, so its
out-of-fold score needs no nesting. Where the metric scores labels of a binary problem, the
decision threshold is chosen on the blend's out-of-fold probabilities and saved with the
model.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from pipeline.common.io import atomic_dir
from pipeline.common.skops_files import dump_skops, load_skops
from pipeline.tabular.competition import Competition
from pipeline.tabular.features import (
    ENCODINGS,
    categorical_mask,
    column_roles,
    fit_matrix,
    make_transformer,
    matrix,
)
from pipeline.tabular.hooks import Hooks
from pipeline.tabular.members import FAMILIES, Fitted, Task
from pipeline.tabular.metrics import Metric
from pipeline.tabular.params import MemberParams, TabularExperiment

log = logging.getLogger(__name__)
MODEL_SPEC = "model.json"
THRESHOLD_QUANTILES = 99  # candidate thresholds: this many quantiles of the out-of-fold probabilities
Splits = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Problem:
    """A competition's table as members see it: features, the fit-space target, the task."""

    competition: Competition
    task: Task
    metric: Metric
    hooks: Hooks

    @classmethod
    def of(cls, competition: Competition, hooks: Hooks) -> Problem:
        return cls(competition, Task(competition.task, len(competition.classes)), competition.scorer, hooks)

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The columns features are made from: the hook's, without the id and the target."""
        drop = [c for c in (self.competition.id_column, self.competition.target) if c in frame.columns]
        return self.hooks.prepare(frame.drop(columns=drop))

    def fit_target(self, frame: pd.DataFrame) -> np.ndarray:
        """Class indices (in the competition's class order), or the value (log1p for log metrics)."""
        y = frame[self.competition.target]
        if self.task.kind != "regression":
            index = {str(c): i for i, c in enumerate(self.competition.classes)}
            return y.astype(str).map(index).to_numpy(dtype=np.int64)
        values = y.to_numpy(dtype=np.float64)
        return np.log1p(np.clip(values, 0, None)) if self.metric.fits_log else values

    def submitted(self, link: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """What the metric scores, from link-space predictions: values, probabilities or labels."""
        if self.task.kind == "regression":
            return np.expm1(link) if self.metric.fits_log else link
        if self.metric.needs == "probabilities":
            return self.task.probabilities(link)
        if self.task.kind == "binary":
            return (self.task.probabilities(link) >= threshold).astype(np.int64)
        return np.argmax(link, axis=1)

    def truth(self, y: np.ndarray) -> np.ndarray:
        return np.expm1(y) if self.task.kind == "regression" and self.metric.fits_log else y

    def score(self, y: np.ndarray, link: np.ndarray, threshold: float = 0.5) -> float:
        return self.metric.score(self.truth(y), self.submitted(link, threshold))

    def baseline(self, y_fit: np.ndarray, n_rows: int) -> np.ndarray:
        """The trivial model's link: the mean (regression) or the class prior (majority for labels)."""
        if self.task.kind == "regression":
            return np.full(n_rows, float(np.mean(y_fit)))
        prior = np.bincount(y_fit, minlength=self.task.n_classes) / len(y_fit)
        prior = np.clip(prior, 1e-6, 1)
        if self.task.kind == "binary":
            return np.full(n_rows, float(np.log(prior[1] / prior[0])))
        return np.tile(np.log(prior), (n_rows, 1))


def fold_plan(y: np.ndarray, task: Task, folds: int, shuffle: bool, seed: int) -> Splits:
    """k folds; stratified by class for classification, so every fold sees every class."""
    splitter = KFold(folds, shuffle=shuffle, random_state=seed if shuffle else None) if task.kind == "regression" \
        else StratifiedKFold(folds, shuffle=shuffle, random_state=seed if shuffle else None)
    return [(train, val) for train, val in splitter.split(np.zeros(len(y)), y)]


@dataclass
class FittedBlend:
    """The transformers (one per encoding the members read) and the fitted members."""

    transformers: dict[str, Any]
    members: list[tuple[MemberParams, Fitted]]
    threshold: float = 0.5

    def member_links(self, features: pd.DataFrame) -> list[np.ndarray]:
        matrices = {enc: matrix(t, features) for enc, t in self.transformers.items()}
        return [fitted.predict(matrices[FAMILIES[m.kind].encoding]) for m, fitted in self.members]

    def link(self, features: pd.DataFrame) -> np.ndarray:
        return np.mean(self.member_links(features), axis=0)


def fit_blend(problem: Problem, experiment: TabularExperiment, features: pd.DataFrame, y: np.ndarray,
              on_member: Callable[[int, MemberParams, float], None] | None = None) -> FittedBlend:
    """Every member on these rows, each on the encoding its family reads."""
    encodings = [e for e in ENCODINGS if any(FAMILIES[m.kind].encoding == e for m in experiment.members)]
    roles = column_roles(features, experiment.members[0].features, ())
    transformers, matrices, masks = {}, {}, {}
    for encoding in encodings:
        params = next(m.features for m in experiment.members if FAMILIES[m.kind].encoding == encoding)
        transformer = make_transformer(roles, params, encoding, problem.task.kind)
        matrices[encoding] = fit_matrix(transformer, features, y)
        masks[encoding] = categorical_mask(transformer) if encoding == "native" else np.zeros(0, dtype=bool)
        transformers[encoding] = transformer
    members = []
    for i, member in enumerate(experiment.members):
        family = FAMILIES[member.kind]
        start = time.perf_counter()
        members.append((member, family.fit(member, matrices[family.encoding], y, problem.task,
                                           masks[family.encoding])))
        if on_member:
            on_member(i, member, time.perf_counter() - start)
    return FittedBlend(transformers, members)


@dataclass
class TabularCV:
    """Out-of-fold and test predictions of each member and of the blend, scored per fold."""

    member_oof: list[np.ndarray]
    member_test: list[np.ndarray]
    member_scores: list[np.ndarray]  # [member][fold]
    oof: np.ndarray
    test: np.ndarray
    fold_scores: np.ndarray
    baseline_scores: np.ndarray
    threshold: float
    oof_score: float
    roles: dict[str, list[str]] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_scores))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_scores))


def cross_validate(problem: Problem, experiment: TabularExperiment, train: pd.DataFrame,
                   test: pd.DataFrame) -> TabularCV:
    """k-fold CV of the blend; logs one line per fold (the progress of long work)."""
    features, test_features = problem.features(train), problem.features(test)
    y = problem.fit_target(train)
    splits = fold_plan(y, problem.task, experiment.cv.folds, experiment.cv.shuffle, experiment.base.seed)
    n_members = len(experiment.members)
    shape, test_shape = problem.task.link_shape(len(y)), problem.task.link_shape(len(test))
    member_oof = [np.zeros(shape) for _ in range(n_members)]
    member_test = [np.zeros(test_shape) for _ in range(n_members)]
    baseline = np.zeros(shape)
    for f, (fit_rows, val_rows) in enumerate(splits):
        start = time.perf_counter()
        blend = fit_blend(problem, experiment, features.iloc[fit_rows], y[fit_rows])
        val_links, test_links = blend.member_links(features.iloc[val_rows]), blend.member_links(test_features)
        for i in range(n_members):
            member_oof[i][val_rows] = val_links[i]
            member_test[i] += test_links[i] / len(splits)
        baseline[val_rows] = problem.baseline(y[fit_rows], len(val_rows))
        score = problem.score(y[val_rows], np.mean(val_links, axis=0))
        log.info("fold %d/%d: %s %.5f (%s) in %.1f s", f + 1, len(splits), problem.metric.name, score,
                 ", ".join(f"{m.kind} {problem.score(y[val_rows], v):.5f}"
                           for m, v in zip(experiment.members, val_links, strict=True)),
                 time.perf_counter() - start)
    oof = np.mean(member_oof, axis=0)
    threshold = choose_threshold(problem, y, oof)

    def per_fold(link: np.ndarray, cut: float = 0.5) -> np.ndarray:
        return np.array([problem.score(y[v], link[v], cut) for _, v in splits])

    return TabularCV(member_oof=member_oof, member_test=member_test,
                     member_scores=[per_fold(o) for o in member_oof], oof=oof,
                     test=np.mean(member_test, axis=0), fold_scores=per_fold(oof, threshold),
                     baseline_scores=per_fold(baseline), threshold=threshold,
                     oof_score=problem.score(y, oof, threshold),
                     roles=column_roles(features, experiment.members[0].features, ()).to_dict())


def choose_threshold(problem: Problem, y: np.ndarray, oof_link: np.ndarray) -> float:
    """The probability cut that scores best on out-of-fold predictions (binary, label metrics);
    0.5 otherwise. Ties go to the cut nearest 0.5."""
    if problem.task.kind != "binary" or problem.metric.needs != "labels":
        return 0.5
    p = problem.task.probabilities(oof_link)
    cuts = np.unique(np.quantile(p, np.linspace(0.01, 0.99, THRESHOLD_QUANTILES)))
    scores = np.array([problem.score(y, oof_link, float(c)) for c in cuts])
    best = scores.max() if problem.metric.greater_is_better else scores.min()
    candidates = cuts[np.isclose(scores, best)]
    return float(candidates[np.argmin(np.abs(candidates - 0.5))])


# --- the saved model ----------------------------------------------------------------------
def save_blend(blend: FittedBlend, problem: Problem, directory: Path) -> None:
    """The model folder: `model.json` (what to load, task, classes, threshold), one skops file
    per feature encoding and one file per member; written whole or not at all."""
    with atomic_dir(directory) as tmp:
        members = []
        for i, (member, fitted) in enumerate(blend.members):
            members.append({"kind": member.kind, "params": member.ingredients(), **fitted.save(tmp, f"member{i}")})
        for encoding, transformer in blend.transformers.items():
            dump_skops(transformer, tmp / f"features-{encoding}.skops")
        competition = problem.competition
        spec = {"task": problem.task.kind, "n_classes": problem.task.n_classes, "classes": list(competition.classes),
                "metric": problem.metric.name, "threshold": blend.threshold, "blend": "mean",
                "encodings": list(blend.transformers), "members": members}
        (tmp / MODEL_SPEC).write_text(json.dumps(spec, indent=2, sort_keys=True, default=str) + "\n")


def load_blend(directory: Path) -> tuple[FittedBlend, dict[str, Any]]:
    """What `save_blend` wrote, and its spec; types outside scikit-learn, NumPy and this
    package's transformers are refused."""
    spec_path = directory / MODEL_SPEC
    if not spec_path.is_file():
        raise FileNotFoundError(2, "no saved model (run `dvc repro train`)", str(spec_path))
    spec = json.loads(spec_path.read_text())
    task = Task(spec["task"], spec["n_classes"])
    transformers = {e: load_skops(directory / f"features-{e}.skops", ("sklearn.", "numpy.", "pipeline.tabular."))
                    for e in spec["encodings"]}
    members = []
    for m in spec["members"]:
        p = m["params"]
        member = _member_from(p)
        members.append((member, FAMILIES[m["kind"]].load(directory, m, task)))
    return FittedBlend(transformers, members, spec["threshold"]), spec


def _member_from(params: dict[str, Any]) -> MemberParams:
    from pipeline.common.params import parse_section

    return parse_section(params, MemberParams, "saved member")
