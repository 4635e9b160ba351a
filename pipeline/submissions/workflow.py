"""`kpipe submit`, `kpipe submissions` and `kpipe leaderboard`: the steps in their order, over the
modules of this package and the Kaggle adapter, for any project (`SubmittingProject`).

Submit: check that the file is there (a file named with -f is the user's, and named as such),
check it (the project's own checks), read the log (a broken log stops here, before
anything is spent), refuse bytes already submitted, warn on a weak CV, show the allowance and
refuse when it is spent, upload, log the row as PENDING at once (so an interrupted wait loses
nothing), wait for the score, complete the row, put the score into MLflow and the rank into the
row. Submissions: complete every pending row from Kaggle, pick up submissions made elsewhere,
and list them. Each line of output goes through `echo`, so the CLI decides where it goes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from pipeline.common import kaggle_api
from pipeline.common.download import Unreachable
from pipeline.common.io import sha1_of
from pipeline.common.kaggle_api import KaggleRefused, KaggleSubmission
from pipeline.common.paths import ProjectPaths
from pipeline.common.readers import UnreadableFile
from pipeline.submissions.leaderboard import Standing, standing
from pipeline.submissions.log import ERROR, KAGGLE, LogRow, SubmissionLog, change_log, read_log, update_row
from pipeline.submissions.scores import record_scores
from pipeline.submissions.source import submission_source
from pipeline.submissions.spend import cv_warning, refuse_resubmission, refuse_without_allowance

if TYPE_CHECKING:
    from pipeline.tabular.competition import Competition

Echo = Callable[[str], None]


class SubmittingProject(Protocol):
    """What the workflow asks of a project: every `pipeline.projects.Project` is one. Stated here,
    in the workflow's own layer, so that submissions never import the projects above them."""

    @property
    def paths(self) -> ProjectPaths: ...

    @property
    def competition(self) -> Competition: ...

    @property
    def experiment(self) -> str:
        """The MLflow experiment whose runs may have written the file."""
        ...

    def validate_submission_file(self, path: Path) -> pd.DataFrame:
        """The project's own checks of the file, before anything is spent."""
        ...


@dataclass(frozen=True)
class SubmitOptions:
    path: Path
    message: str
    wait_s: float
    poll_s: float
    force: bool


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _iso(when: datetime | None) -> str:
    """Kaggle's date (naive UTC from the client) as the log writes dates; now when it gave none."""
    if when is None:
        return _now()
    aware = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return aware.isoformat(timespec="seconds")


def submit(project: SubmittingProject, options: SubmitOptions, echo: Echo,
           on_poll: Callable[[KaggleSubmission, float], None] | None = None) -> LogRow:
    """Check, spend one submission, log it, follow it until scored (at most `wait_s`)."""
    require_file(options.path, project.paths.submission)
    competition = project.competition
    log_path = project.paths.submission_log
    project.validate_submission_file(options.path)
    log = read_log(log_path)
    sha1 = sha1_of(options.path)
    if line := refuse_resubmission(log, sha1, options.force):
        echo(line)
    source = submission_source(project.paths, project.experiment, sha1, competition.slug, competition.metric)
    if source is None:
        echo(f"note: no tracked model wrote {options.path} (no MLflow run of {project.experiment!r} names its "
             "SHA-1): its log row will carry no CV or MLflow run")
    if line := cv_warning(log, source, competition.scorer.greater_is_better):
        echo(line)
    echo(refuse_without_allowance(kaggle_api.submission_limits(competition.slug)))

    ref, answer = kaggle_api.submit_file(options.path, options.message, competition.slug)
    echo(f"submitted {options.path} as submission {ref}: {answer}")
    row = LogRow.submitted(ref, _now(), competition.slug, _relative(options.path, project.paths.root), sha1,
                           options.message, source, competition.metric)
    change_log(log_path, lambda log: log.rows.append(row))
    if options.wait_s <= 0:
        return row
    scored = kaggle_api.wait_for_score(ref, options.wait_s, options.poll_s, competition=competition.slug,
                                       on_poll=on_poll)
    return _complete(project, row.ref, scored, echo) or row


def require_file(path: Path, pipeline_file: Path) -> None:
    """A missing file that is not the pipeline's own submission (`kpipe submit -f other.csv`): its
    name and where it was looked for, before anything else is checked. The pipeline's own file,
    missing, gets the reader's hint about the stage that writes it."""
    if path.exists() or path.resolve() == pipeline_file.resolve():
        return
    where = "" if path.is_absolute() else f" (looked for {path.resolve()})"
    raise UnreadableFile(f"{path} not found{where}; nothing was sent to Kaggle")


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return path


def _complete(project: SubmittingProject, ref: int, seen: KaggleSubmission, echo: Echo) -> LogRow | None:
    """Bring Kaggle's answer about `ref` into its log row; on a new score, the rank and MLflow."""
    changes = {"status": seen.status, "public_score": seen.public_score, "private_score": seen.private_score,
               "error": seen.error}
    found: dict[str, LogRow] = {}
    new_score = failed = first_score = False

    def change(log: SubmissionLog) -> None:
        nonlocal new_score, failed, first_score
        row = log.by_ref(ref)
        if row is None:
            return
        before = (row.status, row.public_score, row.private_score)
        update_row(row, changes)
        new_score = (row.public_score, row.private_score) != before[1:] and row.public_score is not None
        failed = row.status == ERROR and before[0] != ERROR
        first_score = before[1] is None and row.public_score is not None
        found["row"] = row

    change_log(project.paths.submission_log, change)
    row = found.get("row")
    if row is not None and failed:
        echo(describe_row(row))
    if row is None or not new_score:
        return row
    # The rank when kpipe first sees the public score (a private score revealed later keeps it).
    place = _standing(project, row, seen.team_name, echo) if first_score else None
    if place is not None:
        ranked = {"rank": place.rank, "teams": place.teams, "percentile": round(place.percentile, 2)}
        update_row(row, ranked)
        change_log(project.paths.submission_log, lambda log: update_row(log.by_ref(ref), ranked))
    where = record_scores(project.paths, row)
    echo(describe_row(row) + (f"; recorded on {', '.join(where)}" if where else ""))
    return row


def _standing(project: SubmittingProject, row: LogRow, team: str, echo: Echo) -> Standing | None:
    competition = project.competition
    try:
        entries = kaggle_api.public_leaderboard(competition.slug)
    except (KaggleRefused, Unreachable) as exc:
        echo(f"note: no rank for submission {row.ref}: {exc}")
        return None
    return standing(entries, row.public_score, competition.scorer.greater_is_better, team)


def describe_row(row: LogRow) -> str:
    """One line for a submission kpipe has just seen scored (or failed)."""
    if row.status == ERROR:
        return f"Kaggle could not score submission {row.ref}: {row.error or 'no reason given'}"
    if row.public_score is None:
        return f"submission {row.ref} is {row.status} on Kaggle, without a public score"
    text = f"submission {row.ref} scored: public score {row.public_score:.5f}"
    if row.private_score is not None:
        text += f", private {row.private_score:.5f}"
    if row.cv_mean is not None:
        text += f" (CV {row.cv_mean:.5f} ± {row.cv_std or 0.0:.5f})"
    if row.rank is not None:
        text += f", rank {row.rank} of {row.teams} (top {row.percentile:.1f}%)"
    return text


def sync(project: SubmittingProject, limit: int, echo: Echo) -> list[KaggleSubmission]:
    """Complete the log from Kaggle: pending rows, later scores (the private one, at the end), and
    submissions made outside kpipe (origin `kaggle`). Returns Kaggle's list, newest first."""
    slug = project.competition.slug
    log = read_log(project.paths.submission_log)  # a broken log fails before any call
    listed = kaggle_api.list_submissions(slug, limit=limit)
    by_ref = {s.ref: s for s in listed}
    for row in log.rows:
        seen = by_ref.get(row.ref)
        if seen is None and not row.scored:  # an old pending row, past the page Kaggle listed
            seen = kaggle_api.get_submission(row.ref, slug)
        if seen is not None and (seen.status, seen.public_score, seen.private_score) != (
                row.status, row.public_score, row.private_score):
            _complete(project, row.ref, seen, echo)
    known = {r.ref for r in log.rows}
    strangers = [s for s in listed if s.ref not in known]
    if strangers:
        change_log(project.paths.submission_log, lambda log: log.rows.extend(
            _stranger(s, slug, project.competition.metric) for s in sorted(strangers, key=lambda s: s.ref)
            if log.by_ref(s.ref) is None))
        echo(f"added {len(strangers)} submission(s) made outside kpipe to {project.paths.submission_log.name} "
             f"(no CV or MLflow run): {', '.join(str(s.ref) for s in strangers)}")
    return listed


def _stranger(seen: KaggleSubmission, slug: str, metric: str) -> LogRow:
    return LogRow(ref=seen.ref, date=_iso(seen.date), competition=slug, status=seen.status, origin=KAGGLE,
                  file=seen.file_name, message=seen.description, public_score=seen.public_score,
                  private_score=seen.private_score, error=seen.error, metric=metric)


def submissions_table(listed: list[KaggleSubmission]) -> pd.DataFrame:
    """Submissions as Kaggle lists them, newest first: ref, date (UTC), status, scores and message."""
    rows = [{"ref": s.ref, "date (UTC)": s.date.strftime("%Y-%m-%d %H:%M") if s.date else "",
             "status": s.status, "public": _shown(s.public_score), "private": _shown(s.private_score),
             "file": s.file_name, "message": s.description + (f" [error: {s.error}]" if s.error else "")}
            for s in listed]
    return pd.DataFrame(rows)


def _shown(score: float | None) -> str:
    return "-" if score is None else f"{score:.5f}"
