"""Running a `kpipe new` project as a competitor does, for the end-to-end tests of new competitions:
`kpipe` and `dvc` as subprocesses with the project's own MLflow store, quick params, a commit."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml
from conftest import BIN, run_dvc

TOKEN, USER = "KGAT_new_competition_0123456789", "alice"
# Smaller than the defaults, same members: the point is the chain, not the last decimal.
QUICK = {"train": {"epochs": 15}, "lightgbm": {"num_boost_round": 150}, "cv": {"folds": 3}}


def own_store(project: Path) -> dict[str, str]:
    """The project's own MLflow store, whatever an earlier test left in this process's environment."""
    return {"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}


def migrated_store(project: Path, template: Path) -> None:
    """The project's mlflow.db as the session's migrated copy (conftest's `mlflow_template`), so the
    first stage that logs does not spend seconds running MLflow's migrations on an empty file."""
    shutil.copy(template, project / "mlflow.db")


def kpipe(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "TQDM_DISABLE": "1",
            **own_store(cwd), **(env or {})}
    return subprocess.run([str(BIN / "kpipe"), *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=300)


def quicken(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    for section, values in QUICK.items():
        params[section].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def commit(project: Path) -> None:
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@localhost"}
    for command in (["git", "add", "."], ["git", "commit", "-q", "-m", "kpipe new"]):
        subprocess.run(command, cwd=project, check=True, env={**os.environ, **identity})


def repro(project: Path, env: dict[str, str] | None = None) -> None:
    done = run_dvc(project, "repro", env={**own_store(project), **(env or {})}, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
