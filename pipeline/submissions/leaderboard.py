"""Does the CV track the leaderboard? `kpipe leaderboard` over the submission log.

Every scored submission with a CV is a point (CV, public score). The report gives the table,
the least-squares line public = a + b * CV (b near 1 and a near 0: the CV is an unbiased guess
of the leaderboard), Spearman's rank correlation (what matters for choosing between models: does
a better CV mean a better public score?) and the picture: the points with each CV's fold spread
as an error bar, the line, and public = CV for reference.

Also here: the rank and percentile of a score on the public leaderboard Kaggle publishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.common.kaggle_api import LeaderboardEntry
from pipeline.submissions.log import COMPLETE, SubmissionLog


@dataclass(frozen=True)
class Standing:
    rank: int  # 1 + the teams strictly better
    teams: int  # the other teams, and this one
    percentile: float  # 100 * rank / teams: "top 12%"


def standing(entries: Sequence[LeaderboardEntry], score: float, greater_is_better: bool,
             team: str = "") -> Standing | None:
    """Where `score` would stand among the other teams' best scores (`team`, ours, left out)."""
    if not entries:  # a leaderboard not published (yet)
        return None
    others = [e.score for e in entries if not team or e.team != team]
    better = sum(1 for s in others if (s > score if greater_is_better else s < score))
    teams = len(others) + 1
    return Standing(better + 1, teams, 100.0 * (better + 1) / teams)


@dataclass(frozen=True)
class LeaderboardReport:
    table: pd.DataFrame  # one row per logged submission, newest first
    points: pd.DataFrame  # the scored ones with a CV: cv_mean, cv_std, public_score, ref
    slope: float | None
    intercept: float | None
    spearman: float | None
    pearson: float | None
    metric: str
    pending: int

    def summary(self) -> str:
        n = len(self.points)
        lines = []
        if n < 2:
            lines.append(f"{n} scored submission(s) with a CV: at least two are needed to compare CV with the "
                         "leaderboard")
        elif self.slope is None:  # the same model's file again (`kpipe submit --force`): one CV, no line
            lines.append(f"{n} scored submissions, all of one CV score: a fit needs submissions of different CV "
                         "scores")
        else:
            lines.append(f"over {n} scored submissions: public = {self.intercept:.5f} + {self.slope:.3f} x CV; "
                         f"Spearman rank correlation {_num(self.spearman, 2)}, Pearson {_num(self.pearson, 2)}")
        if self.pending:
            lines.append(f"{self.pending} submission(s) still PENDING: `kpipe submissions` fetches their scores")
        return "\n".join(lines)


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None or np.isnan(value) else f"{value:.{digits}f}"


def leaderboard_report(log: SubmissionLog, metric: str) -> LeaderboardReport:
    frame = log.frame()
    table = pd.DataFrame({
        "ref": frame["ref"], "date (UTC)": frame["date"].str[:16].str.replace("T", " "),
        "commit": frame["commit"].replace("", "-"), "dvc_exp": frame["dvc_exp"].replace("", "-"),
        "cv_mean": frame["cv_mean"].round(5), "cv_std": frame["cv_std"].round(5),
        "public": frame["public_score"].round(5), "private": frame["private_score"].round(5),
        "rank": ["-" if pd.isna(v) else str(int(v)) for v in frame["rank"]], "top %": frame["percentile"].round(1),
        "model": [f"{n} v{v}" if n else "-" for n, v in zip(frame["model_name"], frame["model_version"], strict=True)],
        "status": frame["status"],
    }).iloc[::-1].reset_index(drop=True)
    scored = frame[(frame["status"] == COMPLETE) & frame["public_score"].notna() & frame["cv_mean"].notna()]
    points = scored[["ref", "cv_mean", "cv_std", "public_score"]].astype({"cv_mean": float, "public_score": float})
    slope = intercept = spearman = pearson = None
    if len(points) >= 2 and points["cv_mean"].nunique() > 1:
        from scipy import stats

        slope, intercept = (float(v) for v in np.polyfit(points["cv_mean"], points["public_score"], 1))
        spearman = float(stats.spearmanr(points["cv_mean"], points["public_score"]).statistic)
        pearson = float(stats.pearsonr(points["cv_mean"], points["public_score"]).statistic)
    return LeaderboardReport(table, points, slope, intercept, spearman, pearson, metric, len(log.pending()))


def plot_leaderboard(report: LeaderboardReport, title: str, path: Path) -> None:
    from pipeline.common.figures import plt, save_figure

    fig, ax = plt.subplots(figsize=(6.5, 5))
    points = report.points
    if len(points):
        ax.errorbar(points["cv_mean"], points["public_score"], xerr=points["cv_std"].fillna(0.0), fmt="o",
                    capsize=3, label="submission (CV ± fold std)")
        for _, p in points.iterrows():
            ax.annotate(str(p["ref"]), (p["cv_mean"], p["public_score"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
        # Lines across the whole view, anchored at the mean CV (an anchor counts in the limits).
        x0 = float(points["cv_mean"].mean())
        ax.axline((x0, x0), slope=1.0, ls=":", color="grey", label="public = CV")
        if report.slope is not None:
            ax.axline((x0, report.intercept + report.slope * x0), slope=report.slope, color="C3",
                      label=f"fit: {report.intercept:.4f} + {report.slope:.2f} x CV "
                            f"(Spearman {_num(report.spearman, 2)})")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no scored submission with a CV yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"CV {report.metric}")
    ax.set_ylabel(f"public leaderboard {report.metric}")
    ax.set_title(title)
    save_figure(fig, path)
