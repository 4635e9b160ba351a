"""Choosing a blend from many candidates' out-of-fold predictions (pure arrays: no files, no
params, no tracking).

Every blend method in `methods` is scored the same honest way, nested (`blend.nested_blend`:
fold k of repeat r is blended by weights fit on the other folds' rows of that repeat), so a
method that picks and weighs candidates pays for its choices in its score. The winner is the
method with the lowest nested mean fold score among those that are a weight per candidate
(`mean`, `stack`, `greedy`; `ridge_meta` is a regression with an intercept, scored for
comparison but never chosen); its shipped weights are then fit on every fit row of every
repeat (`blend.blend_weights`), as for an ensemble's members.

Whether the chosen blend is worth shipping is the tuner's question, asked the tuner's way
(`beats_incumbent`, the paired fold-noise rule of `pipeline.tuning.incumbent`): better only when
its mean beats the incumbent's by more than one standard error of the per-fold differences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.house_prices.blend import BLENDS, WEIGHTS, blend_weights, nested_blend
from pipeline.house_prices.cv import Splits
from pipeline.tabular.noise import clears_noise, fold_noise


@dataclass(frozen=True)
class BlendChoice:
    """The winning blend of a set of candidates, and how every method scored."""

    method: str  # the winner: lowest nested mean among the weight methods
    weights: np.ndarray  # [candidates] the shipped weights, fit on every fit row; 0 for dropped ones
    fold_scores: dict[str, np.ndarray]  # nested fold scores of every method, [repeats * folds]
    oof: np.ndarray  # [repeats, N] the winner's nested out-of-fold prices
    dropped: dict[int, str] = field(default_factory=dict)  # candidate index -> why it was left out

    @property
    def scores(self) -> np.ndarray:
        """The winner's nested fold scores."""
        return self.fold_scores[self.method]

    @property
    def mean(self) -> float:
        return float(self.scores.mean())

    @property
    def selected(self) -> np.ndarray:
        """Indices of the candidates with non-zero weight, heaviest first (ties by index)."""
        chosen = np.flatnonzero(self.weights > 0)
        return chosen[np.argsort(-self.weights[chosen], kind="stable")]


def finite_candidates(candidate_oof: np.ndarray) -> dict[int, str]:
    """The candidates to leave out, each with its reason: any non-finite out-of-fold price
    (a diverged fit) would make every blend that includes it non-finite."""
    dropped = {}
    for c, oof in enumerate(candidate_oof):
        bad = int((~np.isfinite(oof)).sum())
        if bad:
            dropped[c] = f"{bad} of {oof.size} out-of-fold predictions are not finite"
    return dropped


def search_blends(candidate_oof: np.ndarray, prices: np.ndarray, splits: Splits, repeat: np.ndarray,
                  fit_mask: np.ndarray, methods: Sequence[str] = BLENDS) -> BlendChoice:
    """Score every method in `methods` nested on the candidates' out-of-fold prices and choose.

    candidate_oof: `[C, repeats, N]` out-of-fold prices of C candidates, all on the folds
    `splits` (`repeat[f]`: the repeat of split f, `cv.repeat_of`). fit_mask: `[N]` the rows
    blends may learn from (outliers the members dropped are scored but steer no weights).
    Candidates that are not finite everywhere are dropped (`BlendChoice.dropped` says why);
    ties between methods' nested means go to the earlier in `methods`.
    """
    candidate_oof = np.asarray(candidate_oof, dtype=np.float64)
    prices, fit_mask = np.asarray(prices, dtype=np.float64), np.asarray(fit_mask, dtype=bool)
    if candidate_oof.ndim != 3 or candidate_oof.shape[2] != len(prices) or len(fit_mask) != len(prices):
        raise ValueError(f"candidate_oof must be [candidates, repeats, {len(prices)}] with a fit mask of "
                         f"{len(prices)} rows, got {candidate_oof.shape} and {fit_mask.shape}")
    if len(splits) != len(repeat) or int(np.max(repeat)) + 1 != candidate_oof.shape[1]:
        raise ValueError(f"{len(splits)} splits in {int(np.max(repeat)) + 1} repeats do not match "
                         f"{candidate_oof.shape[1]} repeats of out-of-fold predictions")
    unknown = [m for m in methods if m not in BLENDS]
    if unknown:
        raise ValueError(f"unknown blend methods {unknown}; known: {list(BLENDS)}")
    eligible = [m for m in methods if m in WEIGHTS]
    if not eligible:
        raise ValueError(f"none of {list(methods)} is a weight per candidate ({list(WEIGHTS)}): nothing to ship")
    dropped = finite_candidates(candidate_oof)
    kept = np.array([c for c in range(len(candidate_oof)) if c not in dropped], dtype=int)
    if not len(kept):
        raise ValueError(f"every candidate was dropped: {dropped}")
    oof = candidate_oof[kept]
    nested = {m: nested_blend(m, oof, prices, splits, repeat, fit_mask) for m in methods}
    order = {m: i for i, m in enumerate(methods)}
    winner = min(eligible, key=lambda m: (float(nested[m][1].mean()), order[m]))
    weights = np.zeros(len(candidate_oof))
    weights[kept] = blend_weights(winner, oof, prices, np.flatnonzero(fit_mask))
    return BlendChoice(winner, weights, {m: scores for m, (_, scores) in nested.items()}, nested[winner][0],
                       dropped)


def beats_incumbent(scores: np.ndarray, incumbent_scores: np.ndarray) -> tuple[bool, float, float]:
    """(better, delta, noise): `delta` is the difference of mean fold scores (< 0 is better),
    `noise` one standard error of the paired per-fold differences; better only when
    delta < -noise, exactly as `pipeline.tuning.incumbent.judge` decides for a tuning study."""
    scores, incumbent_scores = np.asarray(scores, dtype=float), np.asarray(incumbent_scores, dtype=float)
    delta = float(scores.mean() - incumbent_scores.mean())
    noise = fold_noise(scores, incumbent_scores)
    return clears_noise(delta, noise), delta, noise


def table(choice: BlendChoice, names: Sequence[str], incumbent_scores: np.ndarray | None = None) -> str:
    """A plain-text report: every method's nested mean and std (and, given the incumbent's fold
    scores, its delta, noise and verdict), then the winner's candidates with their weights and
    the dropped candidates with their reasons."""
    if len(names) != len(choice.weights):
        raise ValueError(f"{len(names)} names for {len(choice.weights)} candidates")
    header = f"{'method':<12} {'mean':>9} {'std':>9}"
    if incumbent_scores is not None:
        header += f" {'delta':>10} {'noise':>9}  verdict"
    lines = [header]
    for method, scores in choice.fold_scores.items():
        row = f"{method:<12} {scores.mean():>9.5f} {scores.std():>9.5f}"
        if incumbent_scores is not None:
            better, delta, noise = beats_incumbent(scores, incumbent_scores)
            row += f" {delta:>+10.5f} {noise:>9.5f}  {'better' if better else 'not better'}"
        if method == choice.method:
            row += "  <- chosen"
        elif method not in WEIGHTS:
            row += "  (comparison only)"
        lines.append(row)
    if incumbent_scores is not None:
        inc = np.asarray(incumbent_scores, dtype=float)
        lines.append(f"{'incumbent':<12} {inc.mean():>9.5f} {inc.std():>9.5f}")
    selected = choice.selected
    lines += ["", f"{choice.method}: {len(selected)} of {len(choice.weights)} candidates"]
    lines += [f"  {choice.weights[c]:.4f}  {names[c]}" for c in selected]
    if choice.dropped:
        lines += ["", "dropped:"] + [f"  {names[c]}: {reason}" for c, reason in sorted(choice.dropped.items())]
    return "\n".join(lines)
