"""Submissions are scarce (Kaggle allows a few a day): the checks made before one is spent.

- The same bytes twice: Kaggle would score them the same, so a file whose SHA-1 the log already
  holds is refused unless `--force` (a competitor may want the same file under a new message).
- No allowance left: refused before uploading, in the client's own words.
- A CV worse than the best logged submission's by more than the fold noise (the larger of the
  two CV standard deviations across folds): a warning, not a refusal, since probing the
  leaderboard with a weaker model is sometimes the point.
"""

from __future__ import annotations

from pipeline.common.errors import PipelineError
from pipeline.common.kaggle_api import SubmissionLimits
from pipeline.submissions.log import SubmissionLog
from pipeline.submissions.source import ModelSource


class AlreadySubmitted(PipelineError):
    """These bytes were submitted before."""


class NoSubmissionsLeft(PipelineError):
    """Kaggle's allowance is spent for now."""


def refuse_resubmission(log: SubmissionLog, sha1: str, force: bool) -> str | None:
    """Raise when the bytes were submitted before (None); with `force`, the line saying so."""
    earlier = log.with_sha1(sha1)
    if not earlier:
        return None
    seen = ", ".join(f"{r.ref} on {r.date[:10]}" + (f" (public score {r.public_score:.5f})"
                                                     if r.public_score is not None else f" ({r.status})")
                     for r in earlier)
    if not force:
        raise AlreadySubmitted(f"these bytes (SHA-1 {sha1[:12]}) were already submitted as {seen}; Kaggle would "
                               "score them the same. Nothing was uploaded; add --force to submit them again")
    return f"warning: submitting bytes already submitted as {seen} (--force)"


def refuse_without_allowance(limits: SubmissionLimits) -> str:
    """The allowance line to print, or NoSubmissionsLeft when there is none."""
    if limits.allowed_now <= 0:
        raise NoSubmissionsLeft(f"Kaggle takes no more submissions now: {limits.line()}. Nothing was uploaded")
    return f"Kaggle: {limits.line()}"


def cv_warning(log: SubmissionLog, source: ModelSource | None, greater_is_better: bool) -> str | None:
    """A line when this model's CV is worse than the best logged one by more than the fold noise."""
    if source is None or source.cv_mean is None:
        return None
    best = log.best_cv(greater_is_better)
    if best is None or best.cv_mean is None:
        return None
    gap = (best.cv_mean - source.cv_mean) if greater_is_better else (source.cv_mean - best.cv_mean)
    noise = max(best.cv_std or 0.0, source.cv_std or 0.0)
    if gap <= noise:
        return None
    return (f"warning: this model's CV {source.metric} {source.cv_mean:.5f} is worse than submission {best.ref}'s "
            f"{best.cv_mean:.5f} by {gap:.5f}, more than the fold noise ({noise:.5f}); submitting it anyway")
