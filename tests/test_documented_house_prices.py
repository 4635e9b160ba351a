"""Every House Prices command of the README and the docs pages but `make`, run as written on a
fresh clone made small, in the order a user meets them (tests/documented.py reads them from the
pages; `make` itself, with the shipped params, is tests/test_documented_commands.py's).

The clone is made small (a linear model on 2 folds, a two-key search space), run and committed,
as a user commits a change; then the experiment and its comparisons, `dvc exp apply`, the plots,
the Kaggle commands against the stand-in (tests/kaggle_standin.py), the registered model and its
serving, tuning and blending, and the team page, whose servers live on other machines: those
commands must fail with their documented one line.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from documented import HOUSE, Serving, Shell, fresh_clone

from pipeline.common.paths import ProjectPaths

pytestmark = pytest.mark.e2e
WIDTH = 120  # a terminal's columns: every comparison table fits
SMALL = {"model": {"kind": "linear"}, "cv": {"folds": 2}, "train": {"epochs": 3},
         "tune": {"n_trials": 2, "timeout_s": 5, "cv_repeats": 1,
                  "space": {"train.lr": {"type": "float", "low": 0.001, "high": 0.02, "log": True},
                            "train.weight_decay": {"type": "float", "low": 0.0001, "high": 0.01, "log": True}}}}


@pytest.fixture(scope="module")
def sh(tmp_path_factory: pytest.TempPathFactory) -> Shell:
    """The clone, made small, its pipeline run (residuals too) and committed."""
    sh = fresh_clone(tmp_path_factory.mktemp("documented-house-prices"), HOUSE)
    sh.set_params("a small project for the commands below", SMALL)
    sh.script("dvc repro predict residuals")
    sh.git("add", "--all")
    sh.git("commit", "--quiet", "-m", "the small project's results")
    return sh


def test_the_readme_experiment_its_comparisons_and_apply(sh: Shell) -> None:
    # The README's activation puts the project's tools first on PATH.
    found = subprocess.run(["bash", "-c", f"{sh.text('source .venv/bin/activate')} && command -v kpipe dvc mlflow"],
                           cwd=sh.cwd, env=sh.env(), capture_output=True, text=True, check=True).stdout.split()
    assert found == [str(Path(sys.prefix) / "bin" / tool) for tool in ("kpipe", "dvc", "mlflow")]

    out = sh.ok("dvc exp run -n lr-low -S train.lr=0.002 predict")
    assert "Ran experiment(s): lr-low" in out
    shown = {}
    for command in ("dvc exp show --only-changed --drop .*/", "dvc metrics show metrics/house_prices/cv.json",
                    "dvc metrics diff", "kpipe runs"):
        done = sh.run(command)
        assert done.returncode == 0, (command, done.stderr)
        widths = [len(line) for line in done.stdout.splitlines()]
        assert widths and max(widths) <= WIDTH, f"{command} prints {max(widths)} columns:\n{done.stdout}"
        shown[command] = done.stdout
    table = shown["dvc exp show --only-changed --drop .*/"]
    assert "lr-low" in table and "train.lr" in table and "log_rmse_mean" in table
    assert "lr-low" in shown["kpipe runs"]
    _mlflow_ui_serves_the_runs(sh)

    # docs/pipeline.md: `dvc exp apply lr-low` brings it into the workspace, the pictures included.
    residuals_png = ProjectPaths(sh.cwd).residuals_png
    assert residuals_png.exists()
    sh.script("dvc exp apply lr-low")
    assert yaml.safe_load((sh.cwd / "params.yaml").read_text())["train"]["lr"] == 0.002
    assert residuals_png.exists()

    # What a clone has, `dvc plots show` draws: no picture of a stage not run is a load failure.
    for command in ("dvc plots show", "dvc plots show submissions/log.csv"):
        out = sh.ok(command)
        assert "failed to load" not in out.lower() and "dvc_plots/index.html" in out, out
    assert "metrics/fashion/mlp.json" in sh.ok("dvc metrics show")


def _mlflow_ui_serves_the_runs(sh: Shell) -> None:
    """`mlflow ui` as the README starts it (plus a free port): the runs, on 127.0.0.1 only."""
    with Serving(sh, "mlflow ui --backend-store-uri sqlite:///mlflow.db", "/health") as ui:
        found = requests.post(f"{ui.url}/api/2.0/mlflow/runs/search", timeout=30,
                              json={"experiment_ids": ["1"], "filter": "tags.stage = 'cv'"}).json()
        assert len(found["runs"]) >= 2  # the small project's and the experiment's
        assert re.search(rf"0100007F:{ui.port:04X} 00000000:0000 0A", Path("/proc/net/tcp").read_text())


def test_a_bad_set_param_says_how_to_get_back(sh: Shell) -> None:
    bad = subprocess.run(["bash", "-c", "source .venv/bin/activate && dvc exp run -S train.lr=abc predict"],
                         cwd=sh.cwd, env=sh.env(), capture_output=True, text=True, timeout=300)
    out = bad.stdout + bad.stderr
    try:
        (line,) = [line for line in out.splitlines() if line.startswith("error:")]
        assert bad.returncode != 0 and "train.lr='abc'" in line and "git checkout params.yaml" in line, out
        refused = sh.run("kpipe runs")  # any kpipe command refuses the broken file with the same line
        assert refused.returncode != 0 and refused.stderr.strip() == line
    finally:
        sh.git("checkout", "params.yaml")  # the way back the message gives
    assert sh.run("kpipe runs").returncode == 0


def test_the_other_data_sources_are_one_set_param_away(sh: Shell) -> None:
    """docs/getting-started.md: files that already verify are kept, so each source's experiment runs."""
    for command in ("dvc exp run -S data.source=d2l predict", "dvc exp run -S data.source=kaggle predict",
                    "dvc exp run -S data.source=local -S data.local_dir=/path/to/dir predict"):
        assert "Ran experiment(s)" in sh.ok(command, timeout=300)
        sh.git("checkout", "params.yaml")


def test_the_kaggle_commands(sh: Shell) -> None:
    """Without credentials `kpipe submit` checks the file and says how to submit it by hand; the
    rest runs against the Kaggle stand-in, as docs/submissions.md shows."""
    sh.fails("kpipe submit", says="Kaggle credentials not found", code=2)
    out = sh.ok("python tests/kaggle_standin.py -- bash -c kpipe submit && kpipe leaderboard")
    assert "scored: public score" in out and "wrote " in out
    in_standin = "python tests/kaggle_standin.py -- bash -c {}"
    for command in ("kpipe submit --force", "kpipe submissions", "kpipe leaderboard", "kpipe runs"):
        text = sh.text(command)
        done = subprocess.run(["bash", "-c", "source .venv/bin/activate && " + in_standin.format(shlex.quote(text))],
                              cwd=sh.cwd, env=sh.env(), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    missing = subprocess.run(["bash", "-c", "source .venv/bin/activate && " + in_standin.format(
        shlex.quote(sh.text("kpipe submit -f other.csv -m my message --wait 600")))], cwd=sh.cwd, env=sh.env(),
        capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "other.csv" in missing.stderr and "dvc repro" not in missing.stderr, \
        missing.stderr
    # docs/development.md's transcript command, for a submission not yet sent: the lr-low
    # experiment's file (its model is the second registered version, which the commands of the
    # registered model below name), brought back by DVC without training again
    sh.script("dvc exp apply lr-low")
    out = sh.ok("PATH=$PWD/.venv/bin:$PATH python tests/kaggle_standin.py -- bash -c kpipe submit && kpipe leaderboard")
    assert "scored: public score" in out


def test_the_registered_model_is_loaded_served_and_promoted(sh: Shell) -> None:
    paths = ProjectPaths(sh.cwd)
    sh.ok("kpipe predict --model-uri models:/house-prices/2")
    assert paths.submission_from("models:/house-prices/2").exists()
    sh.ok("kpipe promote 2 && kpipe predict --champion")
    sh.ok("kpipe predict --champion")
    serve = ("MLFLOW_TRACKING_URI=sqlite:///mlflow.db mlflow models serve -m models:/house-prices/latest "
             "--env-manager local -p 5001")
    with Serving(sh, serve, "/ping", fixed_port="5001") as server:
        sh.ok("python -c import pandas as pd, json; print(json.dumps({'dataframe_split': json.loads(\n    "
              "pd.read_csv('data/raw/test.csv').head(2).to_json(orient='split', index=False))})) > houses.json")
        out = sh.ok("curl -s http://127.0.0.1:5001/invocations -H Content-Type: application/json -d @houses.json",
                    replace=("127.0.0.1:5001", f"127.0.0.1:{server.port}"))
        assert [p["Id"] for p in json.loads(out)["predictions"]] == [1461, 1462]
    with Serving(sh, "mlflow models serve -m models:/house-prices-trusted@champion --env-manager local -p 5001",
                 "/ping", fixed_port="5001") as champion:
        answer = requests.post(f"{champion.url}/invocations", data=(sh.cwd / "houses.json").read_text(),
                               headers={"Content-Type": "application/json"}, timeout=60)
        assert answer.ok and len(answer.json()["predictions"]) == 2


def test_tuning_and_blending(sh: Shell) -> None:
    sh.ok("dvc repro validate")
    for command in ("kpipe tune", "kpipe tune --n-trials 20 --timeout 600", "kpipe tune --apply",
                    "kpipe tune --n-jobs 2"):
        sh.ok(command)
    sh.ok("kpipe tune --n-trials 25 --sampler-seed 1 &", "kpipe tune --n-trials 25 --sampler-seed 2 &", "wait")
    assert "complete" in sh.ok("kpipe tune --status")
    for command in ("kpipe tune --storage postgresql://tuner:secret@db.example/optuna --sampler-seed $WORKER_ID",
                    "kpipe tune --status --storage postgresql://tuner:secret@db.example/optuna",
                    "kpipe tune --storage postgresql://team@db.example/optuna --sampler-seed $WORKER_ID",
                    "kpipe tune --status --storage postgresql://team@db.example/optuna"):
        out = sh.fails(command, says="does not resolve", timeout=120)
        assert "secret" not in out and "retrying" not in out
    sh.ok("kpipe blend --dry-run")
    sh.ok("kpipe blend --study house-prices")
    sh.fails("kpipe blend --key 3d35f2 --key 7888f3", says="kpipe oof")
    assert "key" in sh.ok("kpipe oof")


def test_the_team_page(sh: Shell) -> None:
    for command in ("export MLFLOW_AUTH_ADMIN_PASSWORD=...", "export MLFLOW_FLASK_SERVER_SECRET_KEY=...",
                    "export MLFLOW_TRACKING_URI=https://mlflow.example",
                    "export MLFLOW_TRACKING_USERNAME=team MLFLOW_TRACKING_PASSWORD=..."):
        sh.ok(command)
    sh.fails("MLFLOW_TRACKING_URI=https://mlflow.example MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=... "
             "kpipe team-init --editor team", says="does not resolve", timeout=120)
    sh.ok("dvc remote add --default team /mnt/team/kaggle-pipeline-dvc")
    sh.ok("git add .dvc/config && git commit -m DVC remote")
    sh.script("dvc remote remove team")  # the page's second way, instead of the first
    for command in ("dvc remote add --default team s3://team-bucket/kaggle-pipeline",
                    "dvc remote modify team endpointurl https://minio.example:9000",
                    "dvc remote modify --local team access_key_id AKIA...",
                    "dvc remote modify --local team secret_access_key ..."):
        sh.ok(command)


def test_every_house_prices_command_ran(sh: Shell) -> None:
    assert sh.ran == set(sh.commands), sorted(set(sh.commands) - sh.ran)
