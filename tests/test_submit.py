"""Submitting: validated first; without credentials, say how and print the equivalent command."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, SHIPPED_PARAMS
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.submission import check_submission, write_submission
from pipeline.projects import default_message, project_at
from pipeline.tabular.submission import InvalidSubmission


@pytest.fixture
def project(tmp_path: Path, clean_frames, monkeypatch: pytest.MonkeyPatch) -> ProjectPaths:
    """A project folder with validated test rows, a CV score and no Kaggle credentials."""
    _, test = clean_frames
    paths = ProjectPaths(tmp_path)
    paths.interim_dir.mkdir(parents=True)
    test.to_parquet(paths.clean_test)
    paths.params.write_text(yaml.safe_dump(SHIPPED_PARAMS))
    paths.dvc_yaml.write_bytes((ROOT / "dvc.yaml").read_bytes())
    paths.cv_metrics.parent.mkdir(parents=True)
    paths.cv_metrics.write_text(json.dumps({"log_rmse_mean": 0.1234, "log_rmse_std": 0.01}))
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where the client looks for a token
    monkeypatch.chdir(tmp_path)
    return paths


def _submission(test: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"Id": test["Id"], "SalePrice": 180_000.0})


def test_write_submission_refuses_missing_ids_and_leaves_no_file(clean_frames, tmp_path: Path) -> None:
    _, test = clean_frames
    path = tmp_path / "submission.csv"
    with pytest.raises(InvalidSubmission, match="1 missing"):
        write_submission(_submission(test).iloc[1:], test["Id"].to_numpy(), path)
    assert not path.exists()
    write_submission(_submission(test), test["Id"].to_numpy(), path)
    check_submission(pd.read_csv(path), test["Id"].to_numpy())


def test_submit_without_credentials_prints_how_and_the_kaggle_command(project: ProjectPaths, clean_frames) -> None:
    _, test = clean_frames
    project.submission.parent.mkdir(parents=True)
    _submission(test).to_csv(project.submission, index=False)
    result = CliRunner().invoke(app, ["submit", "-m", "my try"])
    assert result.exit_code == 2, result.output
    assert "KAGGLE_API_TOKEN" in result.output
    assert ("kaggle competitions submit house-prices-advanced-regression-techniques "
            f"-f {project.submission} -m \"my try\"") in result.output


def test_submit_refuses_an_invalid_file_before_calling_kaggle(project: ProjectPaths, clean_frames,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    _, test = clean_frames
    project.submission.parent.mkdir(parents=True)
    _submission(test).assign(SalePrice=-1.0).to_csv(project.submission, index=False)
    result = CliRunner().invoke(app, ["submit"])
    assert result.exit_code == 1
    assert "greater_than(0)" in result.output  # the one error line (run_stage prints it)
    assert "KAGGLE_API_TOKEN" not in result.output + caplog.text


def test_default_message_carries_commit_and_cv_score(project: ProjectPaths) -> None:
    message = default_message(project_at(project))
    assert "CV log-RMSE 0.1234 ± 0.0100" in message
    assert message.startswith("kaggle-pipeline ")
