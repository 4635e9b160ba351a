"""The CV picture of a generic competition: where a reader would rather look than read.

Left: each member's fold scores beside the blend's and the trivial baseline's (is the blend
better than its members, and all of them better than guessing?). Right: out-of-fold
predictions against the truth (regression) or the confusion matrix of out-of-fold labels
(classification).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pipeline.common.io import atomic_path

if TYPE_CHECKING:
    from pipeline.tabular.modeling import Problem, TabularCV


def plot_cv(problem: Problem, y: np.ndarray, result: TabularCV, kinds: list[str], path: Path) -> None:
    fig, (scores, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    labels = [f"{i}: {k}" for i, k in enumerate(kinds)] + ["blend", "baseline"]
    series = [*result.member_scores, result.fold_scores, result.baseline_scores]
    for i, values in enumerate(series):
        scores.scatter(np.full(len(values), i), values, s=18, color="C3" if labels[i] == "blend" else "C0")
        scores.hlines(np.mean(values), i - 0.3, i + 0.3, color="black")
    scores.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    direction = "higher" if problem.metric.greater_is_better else "lower"
    scores.set_ylabel(f"fold {problem.metric.name} ({direction} is better)")
    scores.set_title(f"{problem.competition.slug}: CV {problem.metric.name} {result.mean:.4f} ± {result.std:.4f}")
    if problem.task.kind == "regression":
        truth, predicted = problem.truth(y), problem.submitted(result.oof)
        right.scatter(truth, predicted, s=6, alpha=0.5)
        low, high = float(np.min(truth)), float(np.max(truth))
        right.plot([low, high], [low, high], color="black", linewidth=1)
        right.set_xlabel(f"true {problem.competition.target}")
        right.set_ylabel("out-of-fold prediction")
    else:
        labels_pred = np.argmax(result.oof, axis=1) if problem.task.kind == "multiclass" else \
            (problem.task.probabilities(result.oof) >= result.threshold).astype(int)
        k = problem.task.n_classes
        confusion = np.zeros((k, k), dtype=int)
        np.add.at(confusion, (y, labels_pred), 1)
        right.imshow(confusion, cmap="Blues")
        for (i, j), count in np.ndenumerate(confusion):
            right.text(j, i, str(count), ha="center", va="center")
        names = [str(c)[:18] for c in problem.competition.classes]
        right.set_xticks(range(k), names, rotation=30, ha="right")
        right.set_yticks(range(k), names)
        right.set_xlabel("out-of-fold label")
        right.set_ylabel("true label")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
