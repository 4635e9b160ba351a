"""Secrets never shown: a URL's password and the secret variables' values are masked in every
line kpipe prints or logs (pipeline/common/redact.py)."""

from __future__ import annotations

import io
import logging

import pytest

from pipeline.common.redact import RedactingFilter, redact
from pipeline.stages import run_stage


@pytest.mark.parametrize(("text", "expected"), [
    ("postgresql+psycopg://team:s3cret@db.example:5432/optuna", "postgresql+psycopg://team:***@db.example:5432/optuna"),
    ("API request to http://team:pa55w0rd@127.0.0.1:5000/api/2.0/mlflow/runs/create failed",
     "API request to http://team:***@127.0.0.1:5000/api/2.0/mlflow/runs/create failed"),
    ("two: https://a:x1@h1/ and mysql+pymysql://b:y2@h2/db", "two: https://a:***@h1/ and mysql+pymysql://b:***@h2/db"),
    ("postgresql://team@db.example/optuna", "postgresql://team@db.example/optuna"),  # libpq reads it from pgpass
    ("http://127.0.0.1:5000/#/experiments/1", "http://127.0.0.1:5000/#/experiments/1"),  # a port is not a password
    ("data/raw/train.csv: 1460 rows", "data/raw/train.csv: 1460 rows"),
])
def test_a_urls_password_is_masked_and_nothing_else_changes(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_the_secret_variables_values_are_masked_wherever_they_appear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "Zq9-tracking-secret")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_0123456789abcdef")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "team")  # a user name is not a secret
    assert redact("auth failed for team with Zq9-tracking-secret; token KGAT_0123456789abcdef") == \
        "auth failed for team with ***; token ***"


def test_log_records_are_masked_arguments_included(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test_redact")
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "propagate", False)
    try:
        logger.warning("study on %s", "postgresql://kp:hunter2-secret@127.0.0.1:5432/optuna")
    finally:
        logger.removeHandler(handler)
    assert out.getvalue() == "study on postgresql://kp:***@127.0.0.1:5432/optuna\n"


def test_a_stage_error_line_shows_no_password(capsys: pytest.CaptureFixture) -> None:
    from pipeline.common.errors import PipelineError

    def failing() -> None:
        raise PipelineError("cannot open the Optuna storage postgresql://team:open-sesame-1@db/optuna")

    with pytest.raises(SystemExit):
        run_stage(failing)
    assert capsys.readouterr().err == "error: cannot open the Optuna storage postgresql://team:***@db/optuna\n"

