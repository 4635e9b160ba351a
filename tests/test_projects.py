"""One interface for both kinds of project `kpipe` runs in: House Prices (this repository) is a
`Competition` like any `kpipe new` project, and every command asks the project, not a flag."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from conftest import BUNDLED_ZIP, ROOT
from public_tables import cars
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.competition import HOUSE_PRICES
from pipeline.projects import CompetitionProject, HousePricesProject, project_at


def test_house_prices_facts_are_those_of_its_kaggle_archive_and_its_metrics() -> None:
    HOUSE_PRICES.check()
    with zipfile.ZipFile(BUNDLED_ZIP) as archive:
        for name, sha1 in HOUSE_PRICES.files.items():
            assert hashlib.sha1(archive.read(name)).hexdigest() == sha1
        header = archive.read("sample_submission.csv").decode().splitlines()[0]
    assert tuple(header.split(",")) == HOUSE_PRICES.submission.columns
    cv = json.loads((ROOT / "metrics" / "house_prices" / "cv.json").read_text())
    assert f"{HOUSE_PRICES.metric}_mean" in cv  # `kpipe runs` reads the same metric in both kinds


def test_a_folder_with_a_competition_file_is_a_competition_project(tmp_path: Path, monkeypatch) -> None:
    assert isinstance(project_at(ProjectPaths(ROOT)), HousePricesProject)
    monkeypatch.chdir(tmp_path)
    made = CliRunner().invoke(app, ["new", "mpg", "--from", str(cars(tmp_path / "src").folder)])
    assert made.exit_code == 0, made.output
    project = project_at(ProjectPaths(tmp_path / "mpg"))
    assert isinstance(project, CompetitionProject) and project.competition.slug == "mpg"
    assert project.has_stage("residuals") and not project.has_stage("fetch-fashion")


@pytest.mark.parametrize("command", [["fetch-fashion"], ["tune", "--status"], ["blend", "--study", "s"]])
def test_what_a_competition_project_lacks_is_one_clear_error(tmp_path: Path, monkeypatch, command) -> None:
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(app, ["new", "mpg", "--from", str(cars(tmp_path / "src").folder)]).exit_code == 0
    monkeypatch.chdir(tmp_path / "mpg")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1 and result.output.strip().splitlines()[-1].startswith("error: "), result.output
