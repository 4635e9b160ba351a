"""A competition's facts inferred from Kaggle's files, or one clear error naming the flag to give.

What is unambiguous is inferred: the target is the column train has and test lacks; the id is
the column test shares with the sample submission; the task follows from the target's values
and the sample's layout (a column per class means multiclass probabilities). An integer target
with a handful of values could be a count or a class, so there `--task` must say which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.common.errors import PipelineError
from pipeline.tabular.competition import Competition, SubmissionFormat, is_sample_submission
from pipeline.tabular.metrics import TASKS, default_metric, get_metric

# An integer-valued target with more distinct values than this is a count (regression); with
# 3 up to this many it may be a class, so the task must be given.
MAX_CLASSES_GUESSED = 20


class CannotInfer(PipelineError, ValueError):
    """The files do not say one thing unambiguously; the message names the flag that does."""


@dataclass(frozen=True)
class CompetitionFiles:
    """The three CSVs of a competition, by role."""

    train: Path
    test: Path
    sample: Path


def find_files(folder: Path) -> CompetitionFiles:
    """train.csv, test.csv and the sample submission (any CSV named like `*submission*`, e.g.
    Titanic's gender_submission.csv) anywhere below `folder`."""
    csvs = sorted(p for p in folder.rglob("*.csv") if p.is_file())
    if not csvs:
        raise CannotInfer(f"{folder} holds no CSV file: expected Kaggle's train.csv, test.csv and sample submission")

    def one(what: str, matches: list[Path], flag_hint: str) -> Path:
        if len(matches) == 1:
            return matches[0]
        found = ", ".join(str(p.relative_to(folder)) for p in csvs)
        if not matches:
            raise CannotInfer(f"no {what} among the CSVs ({found}); {flag_hint}")
        raise CannotInfer(f"several {what} files ({', '.join(str(p.relative_to(folder)) for p in matches)}); "
                          f"{flag_hint}")

    hint = "lay the folder out as Kaggle's download is: train.csv, test.csv, sample_submission.csv"
    return CompetitionFiles(
        train=one("train.csv", [p for p in csvs if p.name.lower() == "train.csv"], hint),
        test=one("test.csv", [p for p in csvs if p.name.lower() == "test.csv"], hint),
        sample=one("sample submission", [p for p in csvs if is_sample_submission(p.name)], hint))


def infer_competition(slug: str, train: pd.DataFrame, test: pd.DataFrame, sample: pd.DataFrame,
                      sha1: dict[str, str], *, target: str | None = None, id_column: str | None = None,
                      task: str | None = None, metric: str | None = None) -> Competition:
    """The competition of these tables (train.csv, test.csv, the sample submission); flags
    override what would be inferred."""
    target = target or _target(train, test)
    if target not in train.columns:
        raise CannotInfer(f"--target {target}: train.csv has no such column (has: {_list(train.columns)})")
    if target in test.columns:
        raise CannotInfer(f"--target {target}: test.csv has that column too; the target is what test lacks")
    id_column = id_column or _id(test, sample)
    for name, frame in (("train.csv", train), ("test.csv", test), ("the sample submission", sample)):
        if id_column not in frame.columns:
            raise CannotInfer(f"--id {id_column}: {name} has no such column")
        if frame[id_column].duplicated().any():
            dupes = frame.loc[frame[id_column].duplicated(), id_column].head(3).tolist()
            raise CannotInfer(f"id column {id_column} is not unique in {name} (e.g. {dupes}); give --id the "
                              "column that names each row once")
    missing = [c for c in train.columns if c not in test.columns and c != target]
    if missing:
        raise CannotInfer(f"test.csv lacks training column(s) {_list(missing)}: the model could not be applied "
                          "to the test rows")
    y = train[target]
    if y.isna().any():
        raise CannotInfer(f"the target {target} is missing in {int(y.isna().sum())} training row(s)")
    rest = [c for c in sample.columns if c != id_column]
    task = task or _task(y, rest)
    if task not in TASKS:
        raise CannotInfer(f"--task {task}: choose one of {', '.join(TASKS)}")
    classes: tuple = ()
    if task != "regression":
        classes = tuple(sorted(y.unique().tolist()))  # Python scalars: what YAML writes
        if task == "binary" and len(classes) != 2:
            raise CannotInfer(f"--task binary, but the target {target} has {len(classes)} values")
    submission, classes = _layout(task, target, id_column, sample, rest, classes)
    metric = metric or default_metric(task, submission.needs)
    get_metric(metric)  # an unknown name is its own clear error
    competition = Competition(slug=slug, id_column=id_column, target=target, task=task, metric=metric,
                              submission=submission, files=sha1, classes=classes)
    competition.check()
    return competition


def _target(train: pd.DataFrame, test: pd.DataFrame) -> str:
    only_train = [c for c in train.columns if c not in test.columns]
    if len(only_train) == 1:
        return only_train[0]
    if not only_train:
        raise CannotInfer("train.csv and test.csv have the same columns, so no target can be inferred; "
                          "give --target COLUMN")
    raise CannotInfer(f"train.csv has several columns test.csv lacks ({_list(only_train)}); give --target COLUMN")


def _id(test: pd.DataFrame, sample: pd.DataFrame) -> str:
    shared = [c for c in sample.columns if c in test.columns]
    if len(shared) == 1:
        return shared[0]
    if not shared:
        raise CannotInfer("the sample submission shares no column with test.csv, so no id can be inferred; "
                          "give --id COLUMN")
    raise CannotInfer(f"the sample submission shares several columns with test.csv ({_list(shared)}); "
                      "give --id COLUMN")


def _task(y: pd.Series, submission_columns: list[str]) -> str:
    distinct = y.nunique()
    if distinct == 2:
        return "binary"
    if len(submission_columns) > 1 or not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "multiclass"
    values = y.to_numpy(dtype=np.float64)
    if not np.all(np.isclose(values, np.round(values))) or distinct > MAX_CLASSES_GUESSED:
        return "regression"
    raise CannotInfer(f"the target {y.name} is a whole number with {distinct} values: a count or a class? "
                      "give --task regression or --task multiclass")


def _layout(task: str, target: str, id_column: str, sample: pd.DataFrame, rest: list[str],
            classes: tuple) -> tuple[SubmissionFormat, tuple]:
    columns = (id_column, *rest)
    if task == "regression":
        if rest != [target]:
            raise CannotInfer(f"a regression submission has the id and {target}, but the sample has {_list(rest)}")
        return SubmissionFormat(columns, "values"), classes
    if len(rest) > 1:  # one column per class, named by the class (or target_class)
        names = {str(c): c for c in classes} | {f"{target}_{c}": c for c in classes}
        unknown = [c for c in rest if c not in names]
        if unknown or len(rest) != len(classes):
            raise CannotInfer(f"the sample submission's columns {_list(rest)} are not the classes of {target} "
                              f"({_list(map(str, classes))})")
        return SubmissionFormat(columns, "class_probabilities"), tuple(names[c] for c in rest)
    if rest != [target]:
        raise CannotInfer(f"the sample submission's column {rest[0]} is not the target {target}; give --target")
    shown = sample[target].dropna()
    if set(map(str, shown.unique())) <= set(map(str, classes)):
        return SubmissionFormat(columns, "labels", positive=classes[-1] if task == "binary" else None), classes
    if task == "binary" and pd.api.types.is_numeric_dtype(shown) and shown.between(0, 1).all():
        return SubmissionFormat(columns, "probability", positive=classes[-1]), classes
    raise CannotInfer(f"the sample submission's {target} values ({_list(map(str, shown.head(3)))}) are neither "
                      f"classes of {target} nor probabilities")


def _list(items: object) -> str:
    items = list(items)  # type: ignore[call-overload]
    return ", ".join(map(str, items[:8])) + (f" and {len(items) - 8} more" if len(items) > 8 else "")
