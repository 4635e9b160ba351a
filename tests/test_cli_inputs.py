"""What `kpipe` says when the user's input is wrong: the folder, params.yaml, a `--key`, a `-f`
file, a `--storage`. Each is one `error:` line that names what the user gave and what to do,
said before any work is done (no data loaded, nothing scored, no file left behind, no retries)."""

from __future__ import annotations

import copy
import logging
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import click
import pandas as pd
import pytest
import typer
from conftest import ROOT, SHIPPED_PARAMS, edit_params
from public_tables import cars
from typer.testing import CliRunner, Result

from pipeline.cli import app
from pipeline.common.params import with_overrides
from pipeline.common.paths import ProjectPaths
from pipeline.stages import run_stage

RESTORE = "(if dvc exp run -S wrote it, git checkout params.yaml restores the committed values)"
BAD_LR = f"error: params.yaml: train.lr='abc': expected a finite number {RESTORE}"


def every_command() -> Iterator[list[str]]:
    """Each registered command (read from the app, so a new one cannot be left out) with a dummy
    value for each required argument and option, then a few that the issues named."""
    for name, command in typer.main.get_command(app).commands.items():
        args = [name]
        for param in command.params:
            if param.required:
                args += ["x"] if isinstance(param, click.Argument) else [param.opts[0], "x"]
        yield args
    yield from (["tune", "--status"], ["predict", "--model-uri", "models:/house-prices/1"],
                ["oof", "--prune-keep", "1"])


def kpipe(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def house_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProjectPaths:
    """A House Prices project as a clone has it, minus the data: the repository's params.yaml and
    dvc.yaml; the working directory, with its own OOF library, MLflow store and no Kaggle token."""
    paths = ProjectPaths(tmp_path / "project")
    paths.root.mkdir()
    shutil.copy(ROOT / "params.yaml", paths.params)
    shutil.copy(ROOT / "dvc.yaml", paths.dvc_yaml)
    monkeypatch.chdir(paths.root)
    monkeypatch.setenv("KPIPE_OOF_LIBRARY", str(tmp_path / "oof"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return paths


# --- outside a project -------------------------------------------------------------------------

def test_outside_a_project_every_command_but_new_says_where_to_go_and_leaves_the_folder_empty(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "downloads"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # a command that ran would make ./mlflow.db
    monkeypatch.delenv("KPIPE_OOF_LIBRARY", raising=False)
    expected = (f"error: {folder} is not a kpipe project (no params.yaml and dvc.yaml here): cd to your project "
                "(a clone of kaggle-pipeline, or a folder made by kpipe new), or start one: kpipe new NAME --from ZIP")
    for args in every_command():
        if args[0] == "new":
            continue
        result = kpipe(*args)
        assert (result.exit_code, result.stderr.splitlines(), result.stdout) == (2, [expected], ""), args
        assert list(folder.iterdir()) == [], args
        assert kpipe(args[0], "--help").exit_code == 0, args  # help is read anywhere
    # `kpipe new` is how to start: it is not refused (here it asks where the files are).
    made = kpipe("new", "mpg")
    assert made.exit_code == 1 and "not a kpipe project" not in made.output and "--from" in made.output
    # Someone else's folder with only one of the two files is no project either.
    (folder / "params.yaml").write_text("seed: 1\n")
    assert kpipe("runs").stderr.splitlines() == [expected.replace("no params.yaml and dvc.yaml", "no dvc.yaml")]
    assert sorted(p.name for p in folder.iterdir()) == ["params.yaml"]


# --- a bad value in params.yaml ----------------------------------------------------------------

def test_a_bad_value_in_params_yaml_is_the_same_one_line_from_every_command(house_project: ProjectPaths) -> None:
    # As `dvc exp run -S train.lr=abc` leaves the file; a later section is broken too, and
    # tune.space has bounds for other train keys: the first bad value in the file is the one named.
    edit_params(house_project.root, train__lr="abc", fashion_train__lr=-1)
    for args in every_command():
        if args[0] == "new":
            continue
        result = kpipe(*args)
        assert (result.exit_code, result.stderr.splitlines()) == (1, [BAD_LR]), (args, result.output)


def test_the_dvc_stages_print_the_same_line_for_a_bad_value(house_project: ProjectPaths,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """What `python -m pipeline.stages.<name>` (dvc.yaml's commands) prints after `-S train.lr=abc`."""
    from pipeline.stages import cv, train

    edit_params(house_project.root, train__lr="abc")
    for stage in (cv, train):
        with pytest.raises(SystemExit) as exited:
            run_stage(stage.main)
        assert exited.value.code == 1
        assert capsys.readouterr().err.splitlines() == [BAD_LR], stage.__name__


def test_a_competition_projects_bad_value_is_one_line_from_every_command_and_its_stages(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.stages import tabular
    from pipeline.tabular.params import DEFAULTS, FILE_SECTIONS

    assert set(FILE_SECTIONS) == set(DEFAULTS)  # every section kpipe new writes is checked
    monkeypatch.chdir(tmp_path)
    assert kpipe("new", "mpg", "--from", str(cars(tmp_path / "src").folder)).exit_code == 0
    project = tmp_path / "mpg"
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    edit_params(project, train__lr="abc", residuals__worst=0)
    for args in every_command():
        if args[0] == "new":
            continue
        result = kpipe(*args)
        assert (result.exit_code, result.stderr.splitlines()) == (1, [BAD_LR]), (args, result.output)
    with pytest.raises(SystemExit) as exited:
        run_stage(lambda: tabular.main("cv"))
    assert exited.value.code == 1 and capsys.readouterr().err.splitlines() == [BAD_LR]


# --- kpipe blend --key -------------------------------------------------------------------------

def test_blend_names_every_unknown_key_before_it_loads_or_scores_anything(
        house_project: ProjectPaths, tmp_path: Path, clean_frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    from pipeline.house_prices.experiment import parse_experiment, run_cv
    from pipeline.tabular.oof_library import OOFLibrary

    library = OOFLibrary.for_project(house_project.root)
    train, test = clean_frames
    lasso = {"model.kind": "sklearn", "sklearn.estimator": "lasso", "cv.folds": 3, "cv.repeats": 1}
    run_cv(parse_experiment(with_overrides(copy.deepcopy(SHIPPED_PARAMS), lasso)), train.head(200), test.head(20),
           library=library)
    (held,) = [entry.key for entry in library.entries()]
    # No validated data in the project: a command that loaded or scored anything would say so instead.
    result = kpipe("blend", "--key", held[:8], "--key", "7888f3", "--key", "ffffffffff")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"error: no entry of the OOF library at {library.root} has the keys "
                                          "'7888f3', 'ffffffffff': `kpipe oof` lists the keys it holds"]


# --- kpipe submit -f ---------------------------------------------------------------------------

def test_submit_names_a_missing_file_it_was_given_and_keeps_the_pipeline_hint_for_its_own(
        house_project: ProjectPaths) -> None:
    named = kpipe("submit", "-f", "other.csv", "-m", "try")
    assert named.exit_code == 1
    assert named.stderr.splitlines() == [f"error: other.csv not found (looked for {house_project.root / 'other.csv'}); "
                                         "nothing was sent to Kaggle"]
    # The pipeline's own file, missing: where it comes from (checked against the validated ids).
    house_project.interim_dir.mkdir(parents=True)
    pd.DataFrame({"Id": [1461, 1462]}).to_parquet(house_project.clean_test)
    default = kpipe("submit", "-m", "try")
    assert default.exit_code == 1
    assert default.stderr.splitlines() == [f"error: {house_project.submission} not found: run `dvc repro` "
                                           "(or `kpipe predict`) first"]


# --- kpipe tune --storage ----------------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_storage_that_cannot_be_reached_fails_at_once_naming_it_without_retries(
        house_project: ProjectPaths, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.tuning.study")
    for url, shown, host in (("postgresql://team:s3cret-pw@db.invalid/optuna", "postgresql://team:***@db.invalid/optuna",
                              "db.invalid"),
                             ("postgresql://team@db.example/optuna", "postgresql://team@db.example/optuna",
                              "db.example")):  # the docs' placeholder
        for command in (["tune", "--status", "--storage", url], ["tune", "--storage", url]):
            result = kpipe(*command)
            assert result.exit_code == 1, result.output
            (line,) = result.stderr.splitlines()
            assert line.startswith(f"error: cannot open the Optuna storage {shown}: the host {host} does not "
                                   "resolve ("), line
            assert line.endswith("; check the host name in --storage or tune.storage"), line
            assert "s3cret-pw" not in result.output
    # A host that resolves but where nothing listens is refused, not busy: one try.
    refused = kpipe("tune", "--status", "--storage", f"postgresql://team@127.0.0.1:{_closed_port()}/optuna")
    assert refused.exit_code == 1 and "Connection refused" in refused.stderr
    assert [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()] == []


def test_team_init_names_a_tracking_host_that_does_not_resolve(house_project: ProjectPaths,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The team page's placeholder server, as a user copies it: one line at once, not MLflow's
    retried request and its NameResolutionError."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.invalid")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "secret")
    done = kpipe("team-init", "--editor", "team")
    assert done.exit_code == 1
    assert done.output.strip().startswith("error: kpipe team-init on https://mlflow.invalid: the host mlflow.invalid "
                                          "does not resolve")
    assert "secret" not in done.output and len(done.output.strip().splitlines()) == 1
