"""`kpipe new`: what it infers from Kaggle's files, and one clear error (exit 1, nothing created)
for input it cannot use. The tables are real public ones (tests/public_tables.py)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.tabular.competition import read_competition
from tests.public_tables import cars, penguins


def new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.chdir(tmp_path)
    return CliRunner().invoke(app, ["new", *args])


@pytest.fixture(scope="module")
def cars_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cars(tmp_path_factory.mktemp("kaggle") / "cars").folder


def copy_of(folder: Path, into: Path) -> Path:
    into.mkdir()
    for csv in folder.glob("*.csv"):
        (into / csv.name).write_bytes(csv.read_bytes())
    return into


def test_a_kaggle_folder_becomes_a_project_with_its_facts_inferred(tmp_path, monkeypatch, cars_folder):
    result = new(tmp_path, monkeypatch, "auto-mpg", "--from", str(cars_folder))
    assert result.exit_code == 0, result.output
    project = tmp_path / "auto-mpg"
    competition = read_competition(project / "competition.yaml")
    assert (competition.target, competition.id_column, competition.task) == ("Miles_per_Gallon", "id", "regression")
    assert competition.metric == "rmse" and competition.submission.layout == "values"
    assert set(competition.files) == {"train.csv", "test.csv", "sample_submission.csv"}
    for name in ("dvc.yaml", "params.yaml", "schema.yaml", "README.md", ".gitignore", ".git", ".dvc"):
        assert (project / name).exists(), name
    assert set(yaml.safe_load((project / "dvc.yaml").read_text())["stages"]) == {
        "fetch", "validate", "cv", "train", "predict", "residuals"}
    assert "/data/external/" in (project / ".gitignore").read_text()
    assert "created auto-mpg: regression on Miles_per_Gallon" in result.output


def test_a_zip_and_a_column_per_class_make_a_multiclass_logloss_project(tmp_path, monkeypatch):
    layout = penguins(tmp_path / "src")
    archive = tmp_path / "penguins.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for csv in layout.folder.glob("*.csv"):
            zf.write(csv, csv.name)
    result = new(tmp_path, monkeypatch, "penguins", "--from", str(archive))
    assert result.exit_code == 0, result.output
    competition = read_competition(tmp_path / "penguins" / "competition.yaml")
    assert competition.task == "multiclass" and competition.metric == "logloss"
    assert competition.submission.layout == "class_probabilities"
    assert list(competition.classes) == list(competition.submission.columns[1:])


def test_labels_in_the_sample_make_a_label_submission_scored_by_accuracy(tmp_path, monkeypatch):
    layout = penguins(tmp_path / "src")
    train = pd.read_csv(layout.folder / "train.csv")
    sample = pd.read_csv(layout.folder / "sample_submission.csv")[["id"]].assign(Species=train["Species"].iloc[0])
    sample.to_csv(layout.folder / "sample_submission.csv", index=False)
    result = new(tmp_path, monkeypatch, "labels", "--from", str(layout.folder))
    assert result.exit_code == 0, result.output
    competition = read_competition(tmp_path / "labels" / "competition.yaml")
    assert competition.submission.layout == "labels" and competition.metric == "accuracy"


def _fails(result, *phrases: str) -> None:
    assert result.exit_code == 1, result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("error: "), result.output
    for phrase in phrases:
        assert phrase in message, message


def _nothing_created(tmp_path: Path, name: str) -> None:
    assert not (tmp_path / name).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{name}")], list(tmp_path.iterdir())


def test_no_inferable_target_names_the_flag(tmp_path, monkeypatch, cars_folder):
    folder = copy_of(cars_folder, tmp_path / "src")
    test = pd.read_csv(folder / "test.csv").assign(Miles_per_Gallon=0.0)
    test.to_csv(folder / "test.csv", index=False)
    _fails(new(tmp_path, monkeypatch, "p", "--from", str(folder)), "no target can be inferred", "--target")
    _nothing_created(tmp_path, "p")


def test_an_id_that_is_not_unique_is_refused(tmp_path, monkeypatch, cars_folder):
    folder = copy_of(cars_folder, tmp_path / "src")
    train = pd.read_csv(folder / "train.csv")
    train.loc[1, "id"] = train.loc[0, "id"]
    train.to_csv(folder / "train.csv", index=False)
    _fails(new(tmp_path, monkeypatch, "p", "--from", str(folder)), "not unique in train.csv", "--id")
    _nothing_created(tmp_path, "p")


def test_a_test_file_missing_training_columns_is_refused(tmp_path, monkeypatch, cars_folder):
    folder = copy_of(cars_folder, tmp_path / "src")
    pd.read_csv(folder / "test.csv").drop(columns=["Horsepower"]).to_csv(folder / "test.csv", index=False)
    _fails(new(tmp_path, monkeypatch, "p", "--from", str(folder), "--target", "Miles_per_Gallon"),
           "test.csv lacks training column(s) Horsepower")
    _nothing_created(tmp_path, "p")


def test_a_zip_without_a_csv_is_refused(tmp_path, monkeypatch):
    archive = tmp_path / "empty.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("data_description.txt", "no tables here")
    _fails(new(tmp_path, monkeypatch, "p", "--from", str(archive)), "holds no CSV file")
    _nothing_created(tmp_path, "p")


def test_an_unknown_metric_lists_the_known_ones(tmp_path, monkeypatch, cars_folder):
    _fails(new(tmp_path, monkeypatch, "p", "--from", str(cars_folder), "--metric", "rmsse"),
           "unknown metric 'rmsse'", "rmsle")
    _nothing_created(tmp_path, "p")


def test_a_metric_of_another_task_is_refused(tmp_path, monkeypatch, cars_folder):
    _fails(new(tmp_path, monkeypatch, "p", "--from", str(cars_folder), "--metric", "auc"),
           "metric auc scores binary, not regression")
    _nothing_created(tmp_path, "p")


def test_an_existing_folder_is_never_written_into(tmp_path, monkeypatch, cars_folder):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "notes.txt").write_text("mine")
    _fails(new(tmp_path, monkeypatch, "p", "--from", str(cars_folder)), "already exists")
    assert [f.name for f in (tmp_path / "p").iterdir()] == ["notes.txt"]


def test_an_integer_target_with_few_values_asks_for_the_task(tmp_path, monkeypatch, cars_folder):
    folder = copy_of(cars_folder, tmp_path / "src")
    train = pd.read_csv(folder / "train.csv")
    train["Miles_per_Gallon"] = (train["Miles_per_Gallon"] // 10).astype(int)
    train.to_csv(folder / "train.csv", index=False)
    _fails(new(tmp_path, monkeypatch, "p", "--from", str(folder)), "--task regression or --task multiclass")
    _nothing_created(tmp_path, "p")
    result = new(tmp_path, monkeypatch, "p", "--from", str(folder), "--task", "regression", "--metric", "mae")
    assert result.exit_code == 0, result.output
    assert read_competition(tmp_path / "p" / "competition.yaml").metric == "mae"
