"""The README's way to change a param and compare runs, run as written on a fresh clone: the
experiment, then every comparison command, each of whose tables fits a 120-column terminal, and
`mlflow ui` serving the runs on loopback.

A single linear model on 2 folds keeps it quick; the commands are the README's, word for word.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from conftest import edit_params, run_dvc, without_mlflow

pytestmark = pytest.mark.e2e

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
EXPERIMENT = "dvc exp run -n lr-low -S train.lr=0.002 predict"
COMPARE = ("dvc exp show --only-changed --drop '.*/'", "dvc metrics show metrics/house_prices/cv.json",
           "dvc metrics diff", "kpipe runs")
UI = "mlflow ui --backend-store-uri sqlite:///mlflow.db"
WIDTH = 120


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@localhost", *args], cwd=repo, check=True,
                   capture_output=True)


def run(repo: Path, command: str) -> subprocess.CompletedProcess:
    """A README command in `repo` with the venv's tools first on PATH, as after `source .venv/bin/activate`."""
    return subprocess.run(shlex.split(command), cwd=repo, capture_output=True, text=True,
                          env=without_mlflow(DVC_NO_ANALYTICS="1"), timeout=600)


def test_the_readme_names_these_commands() -> None:
    for command in (EXPERIMENT, *COMPARE, UI):
        assert command in README, command


def test_an_experiment_and_every_comparison_fit_a_terminal(repo_copy: Path) -> None:
    edit_params(repo_copy, model__kind="linear", cv__folds=2, train__epochs=3, runtime__threads=1)
    baseline = run_dvc(repo_copy, "repro", "predict", env={"MLFLOW_TRACKING_URI": ""})
    assert baseline.returncode == 0, baseline.stderr
    git(repo_copy, "add", "--all")
    git(repo_copy, "commit", "--quiet", "-m", "a baseline: one linear model")

    experiment = run(repo_copy, EXPERIMENT)
    assert experiment.returncode == 0, experiment.stdout + experiment.stderr
    assert "Ran experiment(s): lr-low" in experiment.stdout
    for command in COMPARE:
        done = run(repo_copy, command)
        assert done.returncode == 0, (command, done.stderr)
        widths = [len(line) for line in done.stdout.splitlines()]
        assert widths and max(widths) <= WIDTH, f"{command} prints {max(widths)} columns:\n{done.stdout}"
        if command.startswith("dvc exp show"):
            assert "lr-low" in done.stdout and "train.lr" in done.stdout and "log_rmse_mean" in done.stdout
        if command == "kpipe runs":
            assert len(done.stdout.strip().splitlines()) == 3  # header, the baseline's run and the experiment's
    assert_mlflow_ui_serves_the_runs_on_loopback(repo_copy)


def assert_mlflow_ui_serves_the_runs_on_loopback(repo: Path) -> None:
    """`mlflow ui` as the README starts it (plus a free port): the runs, on 127.0.0.1 only."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ui = subprocess.Popen([*shlex.split(UI), "--port", str(port)], cwd=repo, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env=without_mlflow(), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert ui.poll() is None and time.monotonic() < deadline, "mlflow ui did not start"
            time.sleep(0.5)
        found = requests.post(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", timeout=30,
                              json={"experiment_ids": ["1"], "filter": "tags.stage = 'cv'"}).json()
        assert len(found["runs"]) == 2 and all(r["info"]["run_name"].startswith("cv linear") for r in found["runs"])
        listening = Path("/proc/net/tcp").read_text()
        assert re.search(rf"0100007F:{port:04X} 00000000:0000 0A", listening)  # 127.0.0.1, LISTEN
    finally:
        os.killpg(ui.pid, 15)
        ui.wait(30)
