"""The competition file (`competition.yaml`): the facts of one Kaggle competition, in one place.

`kpipe new` writes it from Kaggle's files; every generic stage reads it. It holds what does
not change while a competitor works (Kaggle's slug, the data files and their SHA-1 values,
the id and target columns, the task, the metric, and the submission's layout as Kaggle's
`sample_submission.csv` shows it), whereas `params.yaml` holds what they tune. A competition
with domain knowledge names its module in `module:` (see `pipeline.tabular.hooks`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_path
from pipeline.tabular.metrics import TASKS, Metric, get_metric

FILE_NAME = "competition.yaml"
DATA_FILES = ("train.csv", "test.csv", "sample_submission.csv")
Layout = Literal["values", "labels", "probability", "class_probabilities"]
LAYOUTS: tuple[str, ...] = ("values", "labels", "probability", "class_probabilities")


def is_sample_submission(name: str) -> bool:
    """Kaggle's sample submission by its file name: `sample_submission.csv`, Titanic's
    `gender_submission.csv`, `sampleSubmission.csv`."""
    return "submission" in name.lower()


class CompetitionFileError(PipelineError, ValueError):
    """competition.yaml is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class SubmissionFormat:
    """What Kaggle's sample submission asks for.

    `layout`: `values` (regression), `labels` (one column of class labels, written as train
    spells them), `probability` (one column: the probability of `positive`), or
    `class_probabilities` (one column per class, named as in `columns`).
    """

    columns: tuple[str, ...]  # the file's columns in order, the id first
    layout: str
    positive: Any = None  # binary: the class whose probability (or label 1) is predicted

    @property
    def needs(self) -> str:
        """What the members must predict for this layout (a `Metric.needs` value)."""
        return {"values": "values", "labels": "labels"}.get(self.layout, "probabilities")


@dataclass(frozen=True)
class Competition:
    """One competition; `classes` (classification) in the order class indices use."""

    slug: str
    id_column: str
    target: str
    task: str
    metric: str
    submission: SubmissionFormat
    files: dict[str, str]  # file name -> SHA-1 of the file as Kaggle ships it
    classes: tuple[Any, ...] = ()
    module: str | None = None  # a competition module with hooks (pipeline.tabular.hooks)
    title: str = ""

    @property
    def scorer(self) -> Metric:
        return get_metric(self.metric)

    def check(self) -> None:
        """The facts agree with each other: a task the metric scores, classes for classification."""
        if self.task not in TASKS:
            raise CompetitionFileError(f"task {self.task!r}: choose one of {', '.join(TASKS)}")
        metric = self.scorer
        if self.task not in metric.tasks:
            raise CompetitionFileError(f"metric {metric.name} scores {', '.join(sorted(metric.tasks))}, "
                                       f"not {self.task}; give --metric one that scores {self.task}")
        if self.submission.layout not in LAYOUTS:
            raise CompetitionFileError(f"submission layout {self.submission.layout!r}: one of {', '.join(LAYOUTS)}")
        if self.task == "regression" and self.submission.layout != "values":
            raise CompetitionFileError("a regression submission holds values")
        if self.task != "regression" and len(self.classes) < 2:
            raise CompetitionFileError(f"a {self.task} competition needs at least two classes")
        if metric.needs == "probabilities" and self.submission.needs != "probabilities":
            raise CompetitionFileError(
                f"metric {metric.name} scores probabilities, but the submission holds {self.submission.layout}; "
                "give --metric one that scores labels (e.g. accuracy)")
        if self.task == "binary" and self.submission.positive not in self.classes:
            raise CompetitionFileError(f"the positive class {self.submission.positive!r} is not one of "
                                       f"the classes {list(self.classes)}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["submission"]["columns"] = list(self.submission.columns)
        data["classes"] = list(self.classes)
        return {k: v for k, v in data.items() if v not in (None, {}, "") or k in ("module",)}


def write_competition(competition: Competition, path: Path) -> None:
    """The file, with a header saying what it is; written atomically."""
    header = ("# The competition's facts (written by `kpipe new`; the stages read them). Change params.yaml\n"
              "# to tune; change this file only if Kaggle's files or rules change.\n")
    with atomic_path(path) as tmp:
        tmp.write_text(header + yaml.safe_dump(competition.to_dict(), sort_keys=False, allow_unicode=True))


def read_competition(path: Path) -> Competition:
    """The competition of a project, checked; one clear error for a missing or broken file."""
    if not path.is_file():
        raise CompetitionFileError(f"{path} not found: run the generic stages in a folder made by `kpipe new`")
    try:
        data = yaml.safe_load(path.read_text())
        submission = SubmissionFormat(**{**data["submission"], "columns": tuple(data["submission"]["columns"])})
        competition = Competition(**{**data, "submission": submission, "classes": tuple(data.get("classes", ())),
                                     "files": dict(data["files"])})
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise CompetitionFileError(f"{path} is not a competition file ({type(exc).__name__}: {exc})") from exc
    competition.check()
    return competition
