"""The new-competition commands of the README and docs/new-competition.md, run as written.

The pages call the competition `titanic` and its archive `~/Downloads/titanic.zip`; Titanic
itself does not install offline, so the archive holds a real public table laid out as Kaggle
lays out a competition (the Auto MPG cars of `vega_datasets`: train.csv, test.csv,
sample_submission.csv), under the pages' names. The project is quickened after `kpipe new`
(fewer epochs and boosting rounds, a short tuning budget), as a competitor edits params.yaml.
"""

from __future__ import annotations

import sys
import zipfile

import pandas as pd
import pytest
import yaml
from documented import NEW, Shell, for_place
from public_tables import cars

pytestmark = pytest.mark.e2e
QUICK = {"train": {"epochs": 10}, "lightgbm": {"num_boost_round": 100}, "cv": {"folds": 3},
         "tune": {"timeout_s": 5}}


@pytest.fixture(scope="module")
def sh(tmp_path_factory: pytest.TempPathFactory) -> Shell:
    """A home with Kaggle's archive in ~/Downloads, and a folder to work in with the project's
    environment as its `.venv` (what `source .venv/bin/activate` finds)."""
    base = tmp_path_factory.mktemp("new-competition")
    home, work = base / "home", base / "work"
    (home / "Downloads").mkdir(parents=True)
    work.mkdir()
    layout = cars(base / "files")
    with zipfile.ZipFile(home / "Downloads" / "titanic.zip", "w") as archive:
        for name in ("train.csv", "test.csv", "sample_submission.csv"):
            archive.write(layout.folder / name, name)
    (work / ".venv").symlink_to(sys.prefix)
    return Shell(work, home, for_place(NEW), venv=work / ".venv")


def test_a_competition_from_kaggles_zip_to_a_tuned_submission(sh: Shell) -> None:
    out = sh.ok("kpipe new titanic --from ~/Downloads/titanic.zip")
    assert "created titanic: regression on Miles_per_Gallon" in out
    project = sh.cwd / "titanic"
    sh.fails("kpipe new titanic --competition titanic", says="already exists")
    sh.ok("cd titanic && git add . && git commit -m kpipe new")

    params = yaml.safe_load((project / "params.yaml").read_text())
    for section, values in QUICK.items():
        params[section].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh.ok("cd titanic && dvc repro", timeout=900)
    for stage in ("fetch", "validate", "cv", "train", "predict"):
        assert f"Running stage '{stage}'" in out
    submission = pd.read_csv(project / "submissions" / "submission.csv")
    assert list(submission.columns) == ["id", "Miles_per_Gallon"] and submission["Miles_per_Gallon"].notna().all()

    assert "Data and pipelines are up to date" in sh.ok("dvc repro", cwd=project)
    runs = sh.ok("kpipe runs", cwd=project)
    assert "cv_mean" in runs and len(runs.strip().splitlines()) == 2  # the header and the one CV run
    sh.fails("kpipe submit", cwd=project, says="Kaggle credentials not found", code=2)
    assert "no submissions logged" in sh.ok("kpipe leaderboard", cwd=project)

    sh.ok("kpipe tune --n-trials 30", cwd=project, timeout=600)
    assert (project / "params.tuned.yaml").exists()
    status = sh.ok("kpipe tune --status", cwd=project)
    assert "study 'titanic' in " in status and "best: trial " in status and "CV rmse " in status, status
    sh.ok("cp params.tuned.yaml params.yaml && dvc repro", cwd=project, timeout=900)
    assert (project / "submissions" / "submission.csv").exists()


def test_every_new_competition_command_ran(sh: Shell) -> None:
    assert sh.ran == set(sh.commands), sorted(set(sh.commands) - sh.ran)

