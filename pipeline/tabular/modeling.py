"""Cross-validation, the final fit and prediction of a generic competition's blend.

One path for every task: features fit inside each fold (`features.py`), every member fit on
the fold's rows (`members.py`), link-space predictions of the held-out rows and of the test
rows, a weighted mean of the members in link space (log-odds or log-probabilities for
classification, so the blend of two confident members stays confident; `model.blend` names
how the weights are chosen, `pipeline.tabular.blend`), and the competition's metric on what
the submission holds. The blend's fold scores are nested: each fold is blended by weights fit
on the other folds. Where the metric scores labels of a binary problem, the decision threshold
is chosen on the blend's out-of-fold probabilities and saved with the model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from pipeline.common.io import atomic_dir
from pipeline.common.params import parse_section
from pipeline.common.skops_files import dump_skops, load_skops
from pipeline.tabular.blend import Scorer, combine, fit_repeats, nested_blend
from pipeline.tabular.competition import Competition
from pipeline.tabular.features import (
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

if TYPE_CHECKING:
    from pipeline.tabular.library import MemberLibrary

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

    def link_scorer(self, y: np.ndarray) -> Scorer:
        """The metric on link-space predictions of rows of the table whose target is `y`, as
        blends are chosen and scored (at the default threshold)."""
        return Scorer(self.metric, self.truth(y), self.submitted)

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
class FeatureView:
    """One fitted transformer: an encoding with one member's feature options. Members that read
    the same encoding with the same options share it (a fit per view, not per member)."""

    encoding: str
    transformer: Any
    categorical: np.ndarray


def view_of(member: MemberParams) -> tuple[str, str]:
    """The view a member reads: its family's encoding and its own feature options."""
    return FAMILIES[member.kind].encoding, json.dumps(dataclasses.asdict(member.features), sort_keys=True)


@dataclass
class FittedBlend:
    """The feature views and the fitted members, each with the index of the view it reads, and
    the members' blend weights (equal unless the CV's blend chose others)."""

    views: list[FeatureView]
    members: list[tuple[MemberParams, int, Fitted]]
    threshold: float = 0.5
    weights: np.ndarray | None = None  # [members]; None: equal

    def member_links(self, features: pd.DataFrame) -> list[np.ndarray]:
        matrices = [matrix(v.transformer, features) for v in self.views]
        return [fitted.predict(matrices[view]) for _m, view, fitted in self.members]

    def blend_weights(self) -> np.ndarray:
        n = len(self.members)
        return np.full(n, 1.0 / n) if self.weights is None else np.asarray(self.weights, dtype=np.float64)

    def link(self, features: pd.DataFrame) -> np.ndarray:
        return combine(self.blend_weights(), np.stack(self.member_links(features)))


def fit_blend(problem: Problem, members: Sequence[MemberParams], features: pd.DataFrame, y: np.ndarray,
              on_member: Callable[[int, MemberParams, float], None] | None = None) -> FittedBlend:
    """Every member on these rows, each on its own view of the features (its family's encoding,
    its own feature options): a member's predictions depend on its own params only."""
    views: dict[tuple[str, str], int] = {}
    fitted_views: list[FeatureView] = []
    matrices: list[np.ndarray] = []
    fitted = []
    for i, member in enumerate(members):
        key = view_of(member)
        if key not in views:
            roles = column_roles(features, member.features)
            transformer = make_transformer(roles, member.features, key[0], problem.task.kind)
            matrices.append(fit_matrix(transformer, features, y))
            mask = categorical_mask(transformer) if key[0] == "native" else np.zeros(0, dtype=bool)
            views[key] = len(fitted_views)
            fitted_views.append(FeatureView(key[0], transformer, mask))
        view = views[key]
        start = time.perf_counter()
        fitted.append((member, view, FAMILIES[member.kind].fit(member, matrices[view], y, problem.task,
                                                              fitted_views[view].categorical)))
        if on_member:
            on_member(i, member, time.perf_counter() - start)
    return FittedBlend(fitted_views, fitted)


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
    hits: int = 0  # members read from the OOF library instead of computed
    keys: list[str] = field(default_factory=list)
    weights: np.ndarray = field(default_factory=lambda: np.ones(0))  # [members] the blend's, fit on every row

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_scores))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_scores))


def cross_validate(problem: Problem, experiment: TabularExperiment, train: pd.DataFrame,
                   test: pd.DataFrame, library: MemberLibrary | None = None) -> TabularCV:
    """k-fold CV of the blend; logs one line per fold (the progress of long work). With a
    library, a member whose every ingredient was cross-validated before is read, not trained."""
    features, test_features = problem.features(train), problem.features(test)
    y = problem.fit_target(train)
    splits = fold_plan(y, problem.task, experiment.cv.folds, experiment.cv.shuffle, experiment.base.seed)
    members = experiment.members
    keys = library.keys(problem, experiment, train, test) if library else []
    stored = [library.read(k) if library else None for k in keys] or [None] * len(members)
    todo = [i for i, entry in enumerate(stored) if entry is None]
    shape, test_shape = problem.task.link_shape(len(y)), problem.task.link_shape(len(test))
    member_oof = [entry[0] if entry is not None else np.zeros(shape) for entry in stored]
    member_test = [entry[1] if entry is not None else np.zeros(test_shape) for entry in stored]
    baseline = np.zeros(shape)
    for f, (fit_rows, val_rows) in enumerate(splits):
        start = time.perf_counter()
        baseline[val_rows] = problem.baseline(y[fit_rows], len(val_rows))
        if todo:
            blend = fit_blend(problem, [members[i] for i in todo], features.iloc[fit_rows], y[fit_rows])
            val_links, test_links = blend.member_links(features.iloc[val_rows]), blend.member_links(test_features)
            for i, val, tst in zip(todo, val_links, test_links, strict=True):
                member_oof[i][val_rows] = val
                member_test[i] += tst / len(splits)
        links = [o[val_rows] for o in member_oof]
        each = ", ".join(f"{m.kind} {problem.score(y[val_rows], v):.5f}" for m, v in zip(members, links, strict=True))
        log.info("fold %d/%d: %s %.5f (%s) in %.1f s", f + 1, len(splits), problem.metric.name,
                 problem.score(y[val_rows], np.mean(links, axis=0)), each, time.perf_counter() - start)
    # The blend's weights fit on every out-of-fold row (what the model ships), and its nested
    # out-of-fold links (each fold blended by weights fit on the other folds: its fold scores).
    links, scorer, every = np.stack(member_oof)[:, None], problem.link_scorer(y), np.ones(len(y), dtype=bool)
    weights = fit_repeats(experiment.model.blend, links, scorer, np.arange(len(y)))
    nested, _ = nested_blend(experiment.model.blend, links, scorer, splits, np.zeros(len(splits), dtype=int), every)
    oof = combine(weights, links[:, 0])
    threshold = choose_threshold(problem, y, oof)

    def per_fold(link: np.ndarray, cut: float = 0.5) -> np.ndarray:
        return np.array([problem.score(y[v], link[v], cut) for _, v in splits])

    scores = [per_fold(o) for o in member_oof]
    if library:
        for i in todo:
            library.write(keys[i], members[i], problem, member_oof[i], member_test[i], scores[i])
    return TabularCV(member_oof=member_oof, member_test=member_test, member_scores=scores, oof=oof,
                     test=combine(weights, np.stack(member_test)), fold_scores=per_fold(nested[0], threshold),
                     baseline_scores=per_fold(baseline), threshold=threshold,
                     oof_score=problem.score(y, oof, threshold),
                     roles=column_roles(features, members[0].features).to_dict(),
                     hits=len(members) - len(todo), keys=keys, weights=weights)


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
    per feature view and one file per member; written whole or not at all."""
    with atomic_dir(directory) as tmp:
        members = []
        for i, (member, view, fitted) in enumerate(blend.members):
            members.append({"kind": member.kind, "view": view, "params": member.ingredients(),
                            **fitted.save(tmp, f"member{i}")})
        for i, view in enumerate(blend.views):
            dump_skops(view.transformer, tmp / f"features{i}-{view.encoding}.skops")
        competition = problem.competition
        spec = {"task": problem.task.kind, "n_classes": problem.task.n_classes, "classes": list(competition.classes),
                "metric": problem.metric.name, "threshold": blend.threshold,
                "weights": [float(w) for w in blend.blend_weights()],
                "views": [{"encoding": v.encoding, "categorical": v.categorical.tolist()} for v in blend.views],
                "members": members}
        (tmp / MODEL_SPEC).write_text(json.dumps(spec, indent=2, sort_keys=True, default=str) + "\n")


def load_blend(directory: Path) -> tuple[FittedBlend, dict[str, Any]]:
    """What `save_blend` wrote, and its spec; types outside scikit-learn, NumPy and this
    package's transformers are refused."""
    spec_path = directory / MODEL_SPEC
    if not spec_path.is_file():
        raise FileNotFoundError(2, "no saved model (run `dvc repro train`)", str(spec_path))
    spec = json.loads(spec_path.read_text())
    task = Task(spec["task"], spec["n_classes"])
    views = [FeatureView(v["encoding"], load_skops(directory / f"features{i}-{v['encoding']}.skops",
                                                   ("sklearn.", "numpy.", "pipeline.tabular.")),
                         np.asarray(v["categorical"], dtype=bool)) for i, v in enumerate(spec["views"])]
    members = [(parse_section(m["params"], MemberParams, "saved member"), m["view"],
                FAMILIES[m["kind"]].load(directory, m, task)) for m in spec["members"]]
    weights = np.asarray(spec["weights"], dtype=np.float64) if "weights" in spec else None  # older: equal
    return FittedBlend(views, members, spec["threshold"], weights), spec
