"""Greedy forward selection of distinct members (Caruana et al.'s ensemble selection without
repeats, so the choice is exactly an equal-weight mean of a subset), and its nested score.

Choosing on the rows that score the choice would flatter it: `nested_scores` scores each
fold with the subset chosen on the other folds' out-of-fold rows. `model.blend: greedy` (the
default of a competition project) and `kpipe blend` both use it; a member that only drags
the mean down (a weak linear model beside two strong ones) is left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pipeline.tabular.modeling import Problem

MAX_MEMBERS = 8


def select(problem: Problem, y: np.ndarray, links: list[np.ndarray], rows: np.ndarray, max_members: int) -> list[int]:
    """Greedy forward selection of distinct members, scored on `rows`."""
    chosen: list[int] = []
    best = problem.metric.worst()
    while len(chosen) < max_members:
        trials = [(problem.score(y[rows], np.mean([links[j][rows] for j in (*chosen, i)], axis=0)), i)
                  for i in range(len(links)) if i not in chosen]
        if not trials:
            break
        score, pick = max(trials, key=lambda t: -problem.metric.sign * t[0])
        if chosen and not problem.metric.better(score, best):
            break
        chosen.append(pick)
        best = score
    return chosen


def nested_scores(problem: Problem, y: np.ndarray, links: list[np.ndarray], splits: list, max_members: int
                  ) -> np.ndarray:
    """Each fold's score of the blend chosen on the other folds."""
    scores = []
    for _fit, held_out in splits:
        others = np.setdiff1d(np.arange(len(y)), held_out)
        chosen = select(problem, y, links, others, max_members)
        scores.append(problem.score(y[held_out], np.mean([links[j][held_out] for j in chosen], axis=0)))
    return np.array(scores)
