"""Thin adapter over the official Kaggle API.

`import kaggle` authenticates at import time and calls `exit(1)` without credentials, so the
package is imported lazily, inside these functions, and only after `credentials_hint()` says
credentials exist. The rest of the pipeline never imports `kaggle`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.common.errors import PipelineError
from pipeline.house_prices import COMPETITION

HOW_TO_AUTHENTICATE = (
    "Kaggle credentials not found. Create a token at https://www.kaggle.com/settings/api and "
    "either export KAGGLE_API_TOKEN=<token>, save it to ~/.kaggle/access_token, or use the "
    "legacy ~/.kaggle/kaggle.json (or KAGGLE_USERNAME and KAGGLE_KEY)."
)


class KaggleUnavailable(PipelineError, RuntimeError):
    """No credentials, or the API refused the call; the message says what to do."""


def credentials_hint() -> str | None:
    """Where credentials would come from, or None when there are none."""
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    for name in ("access_token", "access_token.txt", "kaggle.json"):
        if (config_dir / name).is_file():
            return str(config_dir / name)
    return None


def _api() -> Any:
    if credentials_hint() is None:
        raise KaggleUnavailable(HOW_TO_AUTHENTICATE)
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        api.authenticate()
    except SystemExit as exc:  # the client exits instead of raising on bad credentials
        raise KaggleUnavailable(HOW_TO_AUTHENTICATE) from exc
    return api


def download_competition_zip(dest_dir: Path, competition: str = COMPETITION) -> Path:
    """Download the competition archive into `dest_dir` and return its path."""
    api = _api()
    try:
        api.competition_download_files(competition, path=str(dest_dir), force=True, quiet=False)
    except Exception as exc:  # noqa: BLE001 - HTTP errors of the SDK have no common base
        raise KaggleUnavailable(
            f"Kaggle download of '{competition}' failed: {exc}. Did you accept the "
            f"competition rules at https://www.kaggle.com/c/{competition}/rules ?") from exc
    archive = dest_dir / f"{competition}.zip"
    if not archive.exists():
        raise KaggleUnavailable(f"Kaggle reported success but {archive} is missing")
    return archive


def submit_file(path: Path, message: str, competition: str = COMPETITION) -> str:
    """Submit `path` to the competition; return Kaggle's answer as text."""
    api = _api()
    try:
        response = api.competition_submit(str(path), message, competition)
    except Exception as exc:  # noqa: BLE001
        raise KaggleUnavailable(f"Kaggle refused the submission: {exc}") from exc
    return str(getattr(response, "message", response))


def submit_command(path: Path, message: str, competition: str = COMPETITION) -> str:
    """The equivalent shell command, for users who submit by hand."""
    quoted = message.replace('"', '\\"')
    return f'kaggle competitions submit {competition} -f {path} -m "{quoted}"'
