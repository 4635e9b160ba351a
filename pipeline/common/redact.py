"""Secrets kept out of everything kpipe prints or logs.

Passwords reach the project two ways: inside a URL (`postgresql://team:secret@db/optuna`,
`MLFLOW_TRACKING_URI=https://team:secret@mlflow.example`) and in the environment variables the
tools read (MLflow's `MLFLOW_TRACKING_PASSWORD`, libpq's `PGPASSWORD`, Kaggle's token). A
message can carry either: MLflow's exceptions quote the request URL, SQLAlchemy's quote the
database URL. So one function masks both, and every line kpipe writes goes through it: the
error line of `run_stage`, the tracking adapter's warning, and every log record (a filter on the
root logger's handlers, installed by `console.configure_output`).

The documented way is still to keep passwords out of URLs (`~/.pgpass` / `PGPASSFILE`, MLflow's
variables or `~/.mlflow/credentials`): `ps`, shell history and CI logs see a URL before kpipe does.
"""

from __future__ import annotations

import logging
import os
import re

MASK = "***"
# Environment variables whose values are secrets wherever they turn up in a message.
SECRET_VARIABLES = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_AUTH_ADMIN_PASSWORD",
                    "MLFLOW_FLASK_SERVER_SECRET_KEY", "PGPASSWORD", "KAGGLE_KEY", "KAGGLE_API_TOKEN",
                    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# scheme://user:password@ -- the password part of a URL's userinfo, wherever a URL sits in a text.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*):(?P<password>[^\s/@]+)@")
# A secret shorter than this is not masked as a plain string: it would mask ordinary words.
_MIN_SECRET = 6


def redact(text: str) -> str:
    """`text` with every URL's password and every secret variable's value replaced by `***`:
    `postgresql://team:s3cret@db/optuna` -> `postgresql://team:***@db/optuna`."""
    masked = _USERINFO.sub(rf"\g<head>:{MASK}@", text)
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= _MIN_SECRET and value in masked:
            masked = masked.replace(value, MASK)
    return masked


class RedactingFilter(logging.Filter):
    """A handler filter that masks secrets in the formatted message (arguments included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
