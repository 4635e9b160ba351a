"""Blending members' link-space predictions, for every competition: one meaning per name.

A member's predictions are in link space, the space it was fit in: the fit-space value for
regression (House Prices' log price, log1p for a log metric), log-odds for a binary task,
log-probabilities `(rows, k)` for a multiclass one. A blend is a weight per member,
non-negative and summing to 1, applied there (`combine`), so averaging two confident
classifiers stays confident and a blend never extrapolates beyond its members. Weights are
chosen on out-of-fold rows and every candidate is scored with the competition's own metric
(`Scorer`), whichever direction it points (AUC is maximized, log-RMSE minimized).

The kinds (`BLENDS`):
- `mean`: equal weights; nothing is fit, so its out-of-fold score needs no nesting.
- `greedy`: Caruana et al.'s ensemble selection ("Ensemble selection from libraries of models",
  ICML 2004), the weighted ensemble of AutoGluon and auto-sklearn: from nothing, each of
  `GREEDY_ROUNDS` rounds adds the member, repeats allowed, whose addition scores best, and a
  member's weight is how often it was added over the rounds. A few members with coarse weights:
  over a large library of candidates it overfits the rows less than solving for every weight.

A stacked blend (convex weights solving the fit-space loss) and a ridge meta-model (a penalized
linear model with an intercept on the members' links) were measured beside these by nested CV
on House Prices and four public tables (`benchmarks/blends.py`, docs/results/blends.md): neither
beat the better of `mean` and `greedy` by more than the paired fold noise on any table, so
neither is a kind here (a params.yaml naming one fails with the kinds that exist).

Nested (`nested_blend`): the score of a fitted blend on fold k uses weights fit on the other
folds' rows of the same repeat only, so weights are never scored on the rows that chose them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.common.errors import PipelineError
from pipeline.tabular.metrics import Metric

# Greedy selection's rounds: weights on a grid of 1/25 = 0.04. Rounding the ideal convex weights
# to that grid moves each by at most 0.02, which costs a blend's score a second-order amount, far
# below the fold noise of a CV on a thousand rows; and at most 25 distinct members can be chosen,
# the sparsity that makes greedy worth having. AutoGluon's weighted ensemble defaults to 25 rounds
# too, citing TabRepo's finding that more bring no measurable improvement.
GREEDY_ROUNDS = 25


class UnknownBlend(PipelineError, ValueError):
    """A blend kind this module does not hold (a params.yaml naming a removed kind)."""


@dataclass(frozen=True)
class Scorer:
    """The competition's metric on link-space predictions of some rows.

    `truth` is what the metric compares with, one entry per row of the table (prices, class
    indices); `submitted` turns a link into what the metric reads (prices, probabilities,
    labels). `loss` is `sign * score`: smaller is better whichever way the metric points.
    """

    metric: Metric
    truth: np.ndarray
    submitted: Callable[[np.ndarray], np.ndarray]

    def score(self, link: np.ndarray, rows: np.ndarray) -> float:
        """The metric of `link` (the predictions of `rows`, in that order)."""
        return self.metric.score(self.truth[rows], self.submitted(link))

    def loss(self, link: np.ndarray, rows: np.ndarray) -> float:
        return self.metric.sign * self.score(link, rows)


def combine(weights: np.ndarray, links: np.ndarray) -> np.ndarray:
    """The blend `sum_i weights[i] * links[i]` of `links` `[members, rows, *k]`: `[rows, *k]`."""
    m = links.shape[0]
    return (weights @ links.reshape(m, -1)).reshape(links.shape[1:])


def mean_weights(links: np.ndarray, scorer: Scorer, rows: np.ndarray) -> np.ndarray:
    """Equal weights."""
    return np.full(links.shape[0], 1.0 / links.shape[0])


def greedy_counts(links: np.ndarray, scorer: Scorer, rows: np.ndarray, rounds: int = GREEDY_ROUNDS) -> np.ndarray:
    """How often each member (`links`: `[members, rows, *k]`, the predictions of `rows`) is
    added in `rounds` rounds of greedy forward selection with replacement.

    Round t adds the member whose addition gives the best score of the mean of the t chosen
    ones. Ties go to the lowest index (`argmin`; identical members score identically), so the
    result is deterministic. The empty start makes round 1 pick the best single member
    (Caruana's "sorted initialization" with the N best members guards libraries of hundreds of
    models; a few dozen candidates do not need it).

    No early stop: the best addition is often a repeat of a chosen member that leaves the score
    unchanged or a little worse just before a round that refines a weight (with A best alone
    and the ideal mix 0.8 A + 0.2 B, round 2 re-adds A, round 3 adds B for 2/3 and 1/3).

    No trimming to the trajectory's best round (AutoGluon's `use_best`) where the metric is
    convex in the link (squared and absolute errors, log-loss): there every round's ensemble is
    already at least as good as the best single member (re-adding it is always a candidate, so
    loss_t <= max(loss_{t-1}, loss_1), by induction loss_t <= loss_1), and choosing a round by
    the same rows would be one more choice fit to them. A metric of ranks or labels (AUC,
    accuracy) is not convex: when the last round scores worse than the best single member, the
    selection is cut back to its best round (the first of equals), so greedy never scores worse
    on its fit rows than the best member alone.
    """
    if rounds < 1:
        raise ValueError(f"greedy selection needs at least one round, got {rounds}")
    m = links.shape[0]
    counts = np.zeros(m, dtype=np.int64)
    if m == 1:
        counts[0] = rounds
        return counts
    order, trajectory = [], []
    running = np.zeros(links.shape[1:])
    for t in range(1, rounds + 1):
        losses = [scorer.loss((running + links[c]) / t, rows) for c in range(m)]
        best = int(np.argmin(losses))
        order.append(best)
        trajectory.append(losses[best])
        running += links[best]
    if trajectory[-1] > trajectory[0]:
        order = order[:int(np.argmin(trajectory)) + 1]
    np.add.at(counts, order, 1)
    return counts


def greedy_weights(links: np.ndarray, scorer: Scorer, rows: np.ndarray) -> np.ndarray:
    """Caruana's greedy ensemble selection: `greedy_counts` over their sum, non-negative,
    summing to 1, each a multiple of 1/GREEDY_ROUNDS (or of the rounds kept)."""
    counts = greedy_counts(links, scorer, rows)
    return counts / counts.sum()


Weigher = Callable[[np.ndarray, Scorer, np.ndarray], np.ndarray]
BLENDS: dict[str, Weigher] = {"mean": mean_weights, "greedy": greedy_weights}
BLEND_KINDS: tuple[str, ...] = tuple(BLENDS)  # what params' `model.blend` admits


def weigher(kind: str) -> Weigher:
    """The blend named `kind`; an unknown (or removed) kind fails naming the kinds that exist."""
    try:
        return BLENDS[kind]
    except KeyError:
        raise UnknownBlend(f"unknown blend {kind!r}: the blends are {', '.join(BLENDS)}") from None


def fit_weights(kind: str, links: np.ndarray, scorer: Scorer, rows: np.ndarray) -> np.ndarray:
    """The weights of blend `kind` fit on `links` `[members, rows, *k]`, the predictions of `rows`.

    A member that diverged (a non-finite prediction) makes the blend non-finite, as averaging
    would: the caller's divergence checks see it, and no selection runs on NaN.
    """
    fit = weigher(kind)
    if not np.isfinite(links).all():
        return np.full(links.shape[0], np.nan)
    return fit(links, scorer, rows)


def fit_repeats(kind: str, links: np.ndarray, scorer: Scorer, rows: np.ndarray) -> np.ndarray:
    """The shipped weights: fit on the rows `rows` of every repeat (`links`: `[members, repeats,
    N, *k]`), each repeat's predictions of a row one more sample of it."""
    m, repeats = links.shape[:2]
    stacked = links[:, :, rows].reshape(m, repeats * len(rows), *links.shape[3:])
    return fit_weights(kind, stacked, scorer, np.tile(rows, repeats))


def nested_blend(kind: str, links: np.ndarray, scorer: Scorer, splits: Sequence[tuple[np.ndarray, np.ndarray]],
                 repeat: np.ndarray, fit_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The blend's out-of-fold links `[repeats, N, *k]` and fold scores (the metric's own), each
    fold's rows blended by weights fit on the *other* folds of its repeat, on the rows where
    `fit_mask` holds (the rows members may learn from: dropped outliers steer no weights).

    links: `[members, repeats, N, *k]` out-of-fold links; `repeat[f]` the repeat of split f.
    """
    oof = np.empty(links.shape[1:])
    scores = np.empty(len(splits))
    for f, (_, valid) in enumerate(splits):
        r = repeat[f]
        rows = fit_mask.copy()
        rows[valid] = False
        fit = np.flatnonzero(rows)
        oof[r, valid] = combine(fit_weights(kind, links[:, r, fit], scorer, fit), links[:, r, valid])
        scores[f] = scorer.score(oof[r, valid], valid)
    return oof, scores


@dataclass(frozen=True)
class BlendChoice:
    """The winning blend of a set of candidates, and how every kind scored."""

    kind: str  # the winner: best nested mean fold score
    weights: np.ndarray  # [candidates] the shipped weights, fit on every fit row; 0 for dropped ones
    fold_scores: dict[str, np.ndarray]  # nested fold scores of every kind, [repeats * folds]
    oof: np.ndarray  # [repeats, N, *k] the winner's nested out-of-fold links
    dropped: dict[int, str] = field(default_factory=dict)  # candidate index -> why it was left out

    @property
    def scores(self) -> np.ndarray:
        """The winner's nested fold scores."""
        return self.fold_scores[self.kind]

    @property
    def mean(self) -> float:
        return float(self.scores.mean())

    @property
    def selected(self) -> np.ndarray:
        """Indices of the candidates with non-zero weight, heaviest first (ties by index)."""
        chosen = np.flatnonzero(self.weights > 0)
        return chosen[np.argsort(-self.weights[chosen], kind="stable")]


def finite_candidates(links: np.ndarray) -> dict[int, str]:
    """The candidates to leave out, each with its reason: any non-finite out-of-fold link (a
    diverged fit) would make every blend that includes it non-finite."""
    dropped = {}
    for c, link in enumerate(links):
        bad = int((~np.isfinite(link)).sum())
        if bad:
            dropped[c] = f"{bad} of {link.size} out-of-fold predictions are not finite"
    return dropped


def search_blends(links: np.ndarray, scorer: Scorer, splits: Sequence[tuple[np.ndarray, np.ndarray]],
                  repeat: np.ndarray, fit_mask: np.ndarray, kinds: Sequence[str] = BLEND_KINDS) -> BlendChoice:
    """Score every kind in `kinds` nested on the candidates' out-of-fold links and choose.

    links: `[C, repeats, N, *k]` out-of-fold links of C candidates, all on the folds `splits`
    (`repeat[f]`: the repeat of split f). fit_mask: `[N]` the rows blends may learn from.
    Candidates that are not finite everywhere are dropped (`BlendChoice.dropped` says why); ties
    between kinds' nested means go to the earlier in `kinds`. The winner's shipped weights are
    fit on every fit row of every repeat, as for an ensemble's members.
    """
    links = np.asarray(links, dtype=np.float64)
    fit_mask = np.asarray(fit_mask, dtype=bool)
    n = len(scorer.truth)
    if links.ndim < 3 or links.shape[2] != n or len(fit_mask) != n:
        raise ValueError(f"links must be [candidates, repeats, {n}, ...] with a fit mask of {n} rows, got "
                         f"{links.shape} and {fit_mask.shape}")
    if len(splits) != len(repeat) or int(np.max(repeat)) + 1 != links.shape[1]:
        raise ValueError(f"{len(splits)} splits in {int(np.max(repeat)) + 1} repeats do not match "
                         f"{links.shape[1]} repeats of out-of-fold predictions")
    for kind in kinds:
        weigher(kind)
    dropped = finite_candidates(links)
    kept = np.array([c for c in range(len(links)) if c not in dropped], dtype=int)
    if not len(kept):
        raise ValueError(f"every candidate was dropped: {dropped}")
    nested = {kind: nested_blend(kind, links[kept], scorer, splits, repeat, fit_mask) for kind in kinds}
    order = {kind: i for i, kind in enumerate(kinds)}
    sign = scorer.metric.sign
    winner = min(kinds, key=lambda kind: (sign * float(nested[kind][1].mean()), order[kind]))
    weights = np.zeros(len(links))
    weights[kept] = fit_repeats(winner, links[kept], scorer, np.flatnonzero(fit_mask))
    return BlendChoice(winner, weights, {kind: scores for kind, (_, scores) in nested.items()}, nested[winner][0],
                       dropped)
