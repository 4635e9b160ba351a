"""Thin adapter over the official Kaggle client (`kaggle` 2.x on `kagglesdk`).

`import kaggle` authenticates at import time, prints its help to stdout and may call `exit(1)`
without usable credentials, so the package is imported lazily, inside these functions, only
after `credentials_hint()` found credentials, and with its stdout captured. The rest of the
pipeline never imports `kaggle` and never sees its types: answers come back as
`KaggleSubmission`s. It serves every competition: each function takes the competition's slug
from its caller (a project's `competition.slug`).

How the client reports trouble (pinned by tests/test_kaggle_standin.py against the stand-in):
a refusal is a `requests.HTTPError` whose `response.status_code` says why (401 credentials,
403 competition rules not accepted, 429 daily submission limit, 404 no such competition);
a token the server does not know makes `authenticate()` exit; a failed file upload does
*not* raise, `competition_submit` answers with the message "Could not submit to
competition". Each becomes a `KaggleRefused` with one line that says what to do.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.common.download import Unreachable
from pipeline.common.errors import PipelineError

TOKEN_PAGE = "https://www.kaggle.com/settings/api"
HOW_TO_AUTHENTICATE = (
    f"Kaggle credentials not found. Create a token at {TOKEN_PAGE} and either export "
    "KAGGLE_API_TOKEN=<token>, save it to ~/.kaggle/access_token, or use the legacy "
    "kaggle.json (in ~/.kaggle or KAGGLE_CONFIG_DIR) or KAGGLE_USERNAME and KAGGLE_KEY."
)
# What `competition_submit` answers, without raising, when the file upload failed.
UPLOAD_FAILED = "Could not submit to competition"
PENDING, COMPLETE, ERROR = "PENDING", "COMPLETE", "ERROR"


class KaggleUnavailable(PipelineError, RuntimeError):
    """No credentials: nothing was sent. The message says how to provide them."""


class KaggleRefused(PipelineError, RuntimeError):
    """Kaggle answered, and said no (bad credentials, rules not accepted, daily limit)."""


@dataclass(frozen=True)
class KaggleSubmission:
    """One submission as Kaggle lists it; scores are None until (and unless) it is scored."""

    ref: int
    date: datetime | None
    description: str  # the submission's message
    status: str  # PENDING, COMPLETE or ERROR
    public_score: float | None
    private_score: float | None
    error: str
    file_name: str
    team_name: str = ""

    @property
    def scored(self) -> bool:
        return self.status != PENDING


def rules_url(competition: str) -> str:
    return f"https://www.kaggle.com/competitions/{competition}/rules"


def _kaggle_home() -> Path:
    """Where the client reads tokens: always `$HOME/.kaggle` (KAGGLE_CONFIG_DIR is ignored for them)."""
    return Path.home() / ".kaggle"


def _config_dir() -> Path:
    """Where the client reads kaggle.json: KAGGLE_CONFIG_DIR, else ~/.kaggle when it exists,
    else (on Linux) the XDG config folder, as `KaggleApi.config_dir` decides."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"])
    if _kaggle_home().exists() or not sys.platform.startswith("linux"):
        return _kaggle_home()
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"


def credentials_hint() -> str | None:
    """Where the client will find credentials (in the order it tries them), or None."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    for name in ("access_token", "access_token.txt"):
        if (_kaggle_home() / name).is_file():
            return str(_kaggle_home() / name)
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    if (_config_dir() / "kaggle.json").is_file():
        return str(_config_dir() / "kaggle.json")
    if (_kaggle_home() / "credentials.json").is_file():  # `kaggle auth login` (OAuth)
        return str(_kaggle_home() / "credentials.json")
    return None


@contextlib.contextmanager
def _answers(action: str, competition: str) -> Iterator[None]:
    """Turn the client's exceptions during `action` into one clear `PipelineError`."""
    import requests

    try:
        yield
    except requests.HTTPError as exc:
        raise _refusal(exc, action, competition) from exc
    except requests.RequestException as exc:
        raise Unreachable(f"could not reach Kaggle to {action}: {exc}") from exc


def _refusal(exc: Any, action: str, competition: str) -> KaggleRefused:
    status = exc.response.status_code if exc.response is not None else None
    if status == 401:
        return KaggleRefused(
            f"Kaggle refused the credentials from {credentials_hint()} (401 Unauthorized): the key or "
            f"token is wrong, expired or revoked. Create a new token at {TOKEN_PAGE}.")
    if status == 403:  # Kaggle's own message names the rules page; say it where it does not
        where = "" if "/rules" in str(exc) else f" Accept the competition's rules at {rules_url(competition)}."
        return KaggleRefused(f"Kaggle would not let you {action} (403): {exc}{where}")
    if status == 429:
        return KaggleRefused(f"Kaggle would not let you {action} (429): {exc}")
    if status == 404:
        return KaggleRefused(f"Kaggle has no competition '{competition}' (404 on {action}).")
    return KaggleRefused(f"Kaggle answered HTTP {status} when asked to {action}: {exc}")


def _api(competition: str) -> Any:
    """An authenticated `KaggleApi`. Its import and `authenticate()` print help to stdout and
    `exit(1)` on unusable credentials: both are captured and turned into one message."""
    hint = credentials_hint()
    if hint is None:
        raise KaggleUnavailable(HOW_TO_AUTHENTICATE)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), _answers("authenticate", competition):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            api.authenticate()
    except SystemExit as exc:
        raise KaggleRefused(f"Kaggle did not accept the credentials from {hint} (an unknown, expired or "
                            f"revoked token?). Create a new token at {TOKEN_PAGE}.") from exc
    return api


def download_competition_zip(dest_dir: Path, competition: str) -> Path:
    """Download the competition archive into `dest_dir` and return its path (the client's
    own progress bar shows on stdout)."""
    api = _api(competition)
    with _answers("download the competition files", competition):
        api.competition_download_files(competition, path=str(dest_dir), force=True, quiet=False)
    archive = dest_dir / f"{competition}.zip"
    if not archive.exists():
        raise KaggleRefused(f"Kaggle reported success but {archive} is missing")
    return archive


def submit_file(path: Path, message: str, competition: str) -> tuple[int, str]:
    """Upload `path` as a submission; (its ref, Kaggle's answer)."""
    api = _api(competition)
    with _answers("submit", competition):
        response = api.competition_submit(str(path), message, competition, quiet=True)
    if response.message == UPLOAD_FAILED or not response.ref:
        raise KaggleRefused(f"Kaggle did not take {path}: {response.message or 'no submission was created'}. "
                            "The upload failed; try again.")
    return int(response.ref), str(response.message)


def list_submissions(competition: str, limit: int = 20) -> list[KaggleSubmission]:
    """Your latest submissions to the competition, newest first."""
    api = _api(competition)
    with _answers("list your submissions", competition):
        found = api.competition_submissions(competition, page_size=limit) or []
    return [_submission(s) for s in found if s is not None][:limit]


@dataclass(frozen=True)
class SubmissionLimits:
    """What `kaggle competitions submission-limits` shows: today's and lifetime counts, and how
    many more Kaggle takes now."""

    today: int
    total: int
    allowed_now: int
    limited_by_total: bool

    def line(self) -> str:
        """The client's own words (`competition_submit_cli`), with the counts behind them."""
        cap = " (limited by lifetime cap)" if self.limited_by_total else ""
        return (f"{self.allowed_now} submissions remaining today{cap} "
                f"({self.today} made today, {self.total} in all)")


def submission_limits(competition: str) -> SubmissionLimits:
    """Your team's allowance now, as Kaggle counts it."""
    api = _api(competition)
    with _answers("read your submission limits", competition):
        raw = api.competition_get_submission_limits(competition)
    return SubmissionLimits(int(raw.num_today or 0), int(raw.num_total or 0), int(raw.num_allowed_now or 0),
                            bool(raw.limited_by_total))


def get_submission(ref: int, competition: str) -> KaggleSubmission:
    """One submission as Kaggle sees it now."""
    api = _api(competition)
    with _answers(f"read submission {ref}", competition):
        return _submission(api.get_submission(ref))


@dataclass(frozen=True)
class LeaderboardEntry:
    team: str
    score: float


def public_leaderboard(competition: str) -> list[LeaderboardEntry]:
    """Every team's best public score: the leaderboard Kaggle lets anyone download (a zip of one
    CSV with `TeamName` and `Score` columns), read in full, unlike the 20-row page of `--show`."""
    import csv
    import tempfile
    import zipfile

    api = _api(competition)
    with tempfile.TemporaryDirectory(prefix="kpipe-leaderboard-") as folder:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), _answers("download the leaderboard", competition):
            api.competition_leaderboard_download(competition, folder, quiet=True)
        archive = Path(folder) / f"{competition}.zip"
        if not archive.is_file():
            raise KaggleRefused(f"Kaggle sent no leaderboard for {competition}")
        with zipfile.ZipFile(archive) as zf:
            name = next((n for n in zf.namelist() if n.lower().endswith(".csv")), None)
            if name is None:
                raise KaggleRefused(f"the leaderboard of {competition} holds no CSV")
            rows = list(csv.DictReader(io.TextIOWrapper(zf.open(name), encoding="utf-8-sig")))
    entries = []
    for row in rows:
        fields = {k.lower(): v for k, v in row.items() if k is not None}
        score = _score(fields.get("score"))
        if score is not None:
            entries.append(LeaderboardEntry(fields.get("teamname", ""), score))
    return entries


def wait_for_score(ref: int, timeout_s: float, poll_s: float = 5.0, *, competition: str,
                   on_poll: Callable[[KaggleSubmission, float], None] | None = None) -> KaggleSubmission:
    """Poll submission `ref` until Kaggle has scored it (or failed to), at most `timeout_s`
    seconds; returns the last answer, still PENDING when the time ran out.
    `on_poll(submission, seconds waited)` sees every answer (a progress line)."""
    api = _api(competition)
    started = time.monotonic()
    while True:
        with _answers(f"read submission {ref}", competition):
            submission = _submission(api.get_submission(ref))
        waited = time.monotonic() - started
        if on_poll is not None:
            on_poll(submission, waited)
        if submission.scored or waited + poll_s > timeout_s:
            return submission
        time.sleep(poll_s)


def _score(text: Any) -> float | None:
    """The client gives scores as strings, "" when there is none."""
    try:
        return float(text) if text not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _submission(raw: Any) -> KaggleSubmission:
    status = getattr(raw.status, "name", str(raw.status)).rsplit(".", 1)[-1]
    return KaggleSubmission(ref=int(raw.ref), date=raw.date, description=raw.description or "",
                            status=status, public_score=_score(raw.public_score),
                            private_score=_score(raw.private_score), error=raw.error_description or "",
                            file_name=raw.file_name or "", team_name=getattr(raw, "team_name", "") or "")


def submit_command(path: Path, message: str, competition: str) -> str:
    """The equivalent shell command, for users who submit by hand."""
    quoted = message.replace('"', '\\"')
    return f'kaggle competitions submit {competition} -f {path} -m "{quoted}"'
