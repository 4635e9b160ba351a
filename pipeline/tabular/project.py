"""`kpipe runs` and `kpipe submit` in a competition project: the same commands as House Prices,
reading the competition's slug, metric and submission layout from competition.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipeline.common.paths import ProjectPaths
from pipeline.common.provenance import git_commit
from pipeline.house_prices.submission import InvalidSubmission
from pipeline.tabular.competition import Competition, read_competition
from pipeline.tabular.submission import check_submission


def is_competition_project(paths: ProjectPaths) -> bool:
    """A folder made by `kpipe new` (it holds competition.yaml); this repository is House Prices'."""
    return paths.competition_file.is_file()


def competition_of(paths: ProjectPaths) -> Competition:
    return read_competition(paths.competition_file)


def runs(paths: ProjectPaths, limit: int) -> pd.DataFrame:
    """The project's CV runs, best first by its metric's direction."""
    from pipeline.house_prices.runs import cv_runs, runs_table

    competition = competition_of(paths)
    score, spread = f"metrics.{competition.metric}_mean", f"metrics.{competition.metric}_std"
    ascending = not competition.scorer.greater_is_better
    return runs_table(cv_runs(paths, competition.slug, score, ascending), limit, score, spread, ascending)


def default_message(paths: ProjectPaths) -> str:
    """`kaggle-pipeline <commit> CV <metric> <mean> ± <std>`: the leaderboard entry points back to the code."""
    commit = git_commit(paths.root)
    competition = competition_of(paths)
    score = ""
    if paths.competition_cv_metrics.exists():
        cv = json.loads(paths.competition_cv_metrics.read_text())
        name = competition.metric
        score = f" CV {name} {cv[f'{name}_mean']:.4f} ± {cv[f'{name}_std']:.4f}"
    return f"kaggle-pipeline {commit.short if commit else 'unknown-commit'}{score}"


def validate_submission_file(paths: ProjectPaths, path: Path, max_bytes: int) -> pd.DataFrame:
    """The file as Kaggle will read it, checked against the layout and the validated test ids."""
    from pipeline.house_prices.submission import read_submission

    competition = competition_of(paths)
    if not paths.clean_test.exists():
        raise InvalidSubmission(f"{paths.clean_test} not found: the submission is checked against the "
                                "validated test ids, so run `dvc repro validate` first")
    ids = pd.read_parquet(paths.clean_test, columns=[competition.id_column])[competition.id_column].to_numpy()
    return check_submission(read_submission(path, max_bytes), competition, ids)
