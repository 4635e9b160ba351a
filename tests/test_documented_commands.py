"""Every House Prices command of the README and the docs pages, run as written on one fresh clone
of the committed HEAD, in the order a user meets them (tests/documented.py reads them from the
pages and says where each of the others runs).

First `make` with the shipped params, as a new user types it: it must reproduce the committed
results byte for byte (`git status` stays empty and no run is named `-dirty`), whatever the
thread count, and a second `make` has nothing to do. Then the clone is made small (a linear
model on 2 folds, a two-key search space) and committed, as a user commits a change, and every
other command runs on it: the experiment and its comparisons, `dvc exp apply`, the plots, the
Kaggle commands against the stand-in (tests/kaggle_standin.py), the registered model and its
serving, tuning and blending, and the team page, whose servers live on other machines: those
commands must fail with their documented one line.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests
import yaml
from conftest import BIN, ROOT
from documented import HOUSE, PLACES, Elsewhere, Shell, documented, for_place
from kaggle_standin import COMPETITION, KaggleStandIn

from pipeline.common.download import sha1_of
from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.submission import check_submission
from pipeline.submissions.source import folder_digest, submission_source

pytestmark = pytest.mark.e2e
WIDTH = 120  # a terminal's columns: every comparison table fits
SMALL = {"model": {"kind": "linear"}, "cv": {"folds": 2}, "train": {"epochs": 3},
         "tune": {"n_trials": 2, "timeout_s": 60, "cv_repeats": 1,
                  "space": {"train.lr": {"type": "float", "low": 0.001, "high": 0.02, "log": True},
                            "train.weight_decay": {"type": "float", "low": 0.0001, "high": 0.01, "log": True}}}}


def test_every_documented_command_has_a_place() -> None:
    found = documented()
    assert len(found) > 60
    unplaced = [(page, command) for page, command in found if command not in PLACES.get(page, {})]
    assert not unplaced, f"documented commands no test runs yet (add them to tests/documented.py): {unplaced}"
    stale = [(page, command) for page, commands in PLACES.items() for command in commands
             if (page, command) not in found]
    assert not stale, f"tests/documented.py names commands the pages no longer show: {stale}"
    for place in (p for commands in PLACES.values() for p in commands.values() if isinstance(p, Elsewhere)):
        path, name = place.test.split("::")
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), place.test


@pytest.fixture(scope="module")
def sh(tmp_path_factory: pytest.TempPathFactory) -> Shell:
    """A clone of the committed HEAD with this suite's venv as its `.venv` (`make -o` below: not rebuilt)."""
    base = tmp_path_factory.mktemp("documented")
    repo, home = base / "kaggle-pipeline", base / "home"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(repo)], check=True)
    (repo / ".venv").symlink_to(sys.prefix)
    home.mkdir()
    return Shell(repo, home, for_place(HOUSE))


def _git(sh: Shell, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=sh.cwd, env=sh.env(), capture_output=True, text=True,
                          check=True).stdout


def _changed(sh: Shell) -> list[str]:
    return _git(sh, "status", "--porcelain", "--untracked-files=all").splitlines()


def _set_params(sh: Shell, message: str, changes: dict) -> None:
    """Change params.yaml and commit it, as a user keeps a change."""
    path = sh.cwd / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in changes.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    _git(sh, "commit", "--quiet", "-am", message)


def _make(sh: Shell) -> subprocess.CompletedProcess[str]:
    """`make` as the README says, before any `source`: the Makefile finds its own interpreter."""
    done = subprocess.run(["make", "-o", str(sh.cwd / ".venv" / "bin" / "kpipe")], cwd=sh.cwd, env=sh.env(),
                          capture_output=True, text=True, timeout=900)
    sh.text("make")
    return done


def _runs(sh: Shell) -> pd.DataFrame:
    mlflow.set_tracking_uri(f"sqlite:///{sh.cwd / 'mlflow.db'}")
    try:
        return mlflow.search_runs(experiment_names=["house-prices"], output_format="pandas")
    finally:
        mlflow.set_tracking_uri(None)


def _assert_pipeline_outputs(repo: Path, raw_test: pd.DataFrame, mlflow_uri: str) -> None:
    """What `make` leaves, checked from the files back to the MLflow runs and the registered model."""
    shipped_params = yaml.safe_load((repo / "params.yaml").read_text())
    folds, epochs = shipped_params["cv"]["folds"], shipped_params["train"]["epochs"]
    submission = pd.read_csv(repo / "submissions" / "submission.csv")
    check_submission(submission, raw_test["Id"].to_numpy())
    paths = ProjectPaths(repo)
    cv = json.loads(paths.cv_metrics.read_text())
    assert set(cv) >= {"log_rmse_mean", "log_rmse_std", "folds"} and len(cv["folds"]) == folds
    assert 0 < cv["log_rmse_mean"] < 1.0
    names = [f"member{i}-{m['model.kind']}" for i, m in enumerate(  # the members trained epoch by epoch
        yaml.safe_load((repo / "params.yaml").read_text())["model"]["members"]) if m["model.kind"] in ("linear", "mlp")]
    assert sorted(p.stem for p in paths.cv_curves_dir.iterdir()) == sorted(names)  # one file per torch member
    for name in names:
        assert list(pd.read_csv(paths.cv_curves(name))["epoch"]) == list(range(1, epochs + 1))
    assert paths.cv_curves_png.exists() and paths.train_curves_png.exists()
    model_dir = repo / "models" / "house_prices"
    members = json.loads((model_dir / "config.json").read_text())["members"]
    shipped = yaml.safe_load((repo / "params.yaml").read_text())["model"]["members"]
    assert len(members) == len(cv["members"]) == len(shipped) > 1  # params.yaml's default ensemble
    for m in members:  # each member's own file: torch weights, a skops estimator or a LightGBM text model
        spec = json.loads((model_dir / m / "config.json").read_text())["model"]
        assert (model_dir / m / spec.get("file", "weights.safetensors")).exists()
    # The blend weights learned in cv are the ones saved with the model.
    weights = json.loads((model_dir / "config.json").read_text())["weights"]
    assert weights == pytest.approx([m["weight"] for m in cv["members"]]) and sum(weights) == pytest.approx(1.0)

    mlflow.set_tracking_uri(mlflow_uri)
    client = mlflow.tracking.MlflowClient()
    runs = mlflow.search_runs(experiment_names=["house-prices"], output_format="pandas")
    parents = runs[runs["tags.stage"] == "cv"]
    assert len(parents) == 1
    children = runs[runs["tags.mlflow.parentRunId"] == parents["run_id"].iloc[0]]
    assert len(children) == folds
    assert children["metrics.log_rmse"].notna().all()
    fold = children["run_id"].iloc[0]
    assert [m.step for m in client.get_metric_history(fold, f"{names[0]}/valid_log_rmse")] == \
        list(range(1, epochs + 1))
    # Each member's epochs were logged as they happened: the first member's last epoch before
    # the last member's first, all within the run's lifetime.
    first = client.get_metric_history(fold, f"{names[0]}/valid_log_rmse")
    last = client.get_metric_history(fold, f"{names[-1]}/valid_log_rmse")
    start, end = (int(parents[c].iloc[0].timestamp() * 1000) for c in ("start_time", "end_time"))
    assert start <= first[-1].timestamp < last[0].timestamp <= end

    # Runs say what ran, on which code and data (the clone is as committed: not -dirty).
    commit = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=repo, capture_output=True, text=True,
                            check=True).stdout.strip()
    (train,) = runs[runs["tags.stage"] == "train"].itertuples()
    tags = client.get_run(train.run_id).data.tags
    lr = yaml.safe_load((repo / "params.yaml").read_text())["train"]["lr"]
    assert tags["mlflow.runName"] == f"train ensemble({len(shipped)}) lr={lr:g} @ {commit}"
    assert parents["tags.mlflow.runName"].iloc[0].startswith(f"cv ensemble({len(shipped)}) lr=")
    assert tags["git.commit"] == commit and tags.get("dvc.exp.name") is None
    (data,) = client.get_run(train.run_id).inputs.dataset_inputs
    assert tags["data.sha1"].startswith(data.dataset.digest) and len(data.dataset.digest) == 12

    # The registered model: the version this train run logged, predicting the submission.
    (version,) = client.search_model_versions("name = 'house-prices'")
    assert version.run_id == train.run_id
    # The content addresses `kpipe submit` follows from the file back to these runs.
    paths = ProjectPaths(repo)
    assert tags["model.digest"] == folder_digest(paths.model_dir) and tags["cv.run_id"] == parents["run_id"].iloc[0]
    assert tags["submission.sha1"] == sha1_of(paths.submission)
    source = submission_source(paths, "house-prices", sha1_of(paths.submission), COMPETITION, "log_rmse")
    assert (source.train_run_id, source.model_version, source.cv_mean) == (train.run_id, "1", cv["log_rmse_mean"])
    predicted = mlflow.pyfunc.load_model("models:/house-prices/latest").predict(raw_test)
    assert (predicted["Id"] == submission["Id"]).all()
    assert (predicted["SalePrice"] / submission["SalePrice"] - 1).abs().max() < 1e-6


def _kaggle_cli_takes(submission: Path, home: Path) -> None:
    """`kaggle competitions submit` (the CLI itself) uploads the pipeline's file to the Kaggle
    stand-in, which receives exactly its bytes."""
    home.mkdir()
    with KaggleStandIn(tokens={"KGAT_e2e": "alice"}) as kaggle:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}, **kaggle.client_env(),
               "HOME": str(home), "KAGGLE_API_TOKEN": "KGAT_e2e"}
        sent = subprocess.run([str(BIN / "kaggle"), "competitions", "submit", "-c", COMPETITION, "-f", str(submission),
                               "-m", "e2e"], env=env, capture_output=True, text=True, timeout=120)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "Successfully submitted" in sent.stdout
        (received,) = kaggle.submissions
    assert received.content == submission.read_bytes() and received.description == "e2e"


def test_make_reproduces_the_committed_results_at_any_thread_count(sh: Shell, raw_test: pd.DataFrame) -> None:
    first = _make(sh)
    log = first.stdout + first.stderr
    assert first.returncode == 0, log[-5000:]
    for stage in ("fetch", "validate", "cv", "train", "predict"):
        assert f"Running stage '{stage}'" in first.stdout
    assert "extracted from the bundled house-prices-advanced-regression-techniques.zip" in first.stderr
    assert re.search(r"make: done in \d+ s \(set-up included\)", first.stdout)
    # Redirected to a file, the log is a line per step: no progress bar redraws, one line per member.
    members = yaml.safe_load((sh.cwd / "params.yaml").read_text())["model"]["members"]
    assert "\r" not in log and len(log.splitlines()) <= 200, log
    assert log.count("): CV log-RMSE ") == len(members) and log.count("final fit of member ") == len(members), log
    # The shipped params on the bundled data give the committed metrics, curves and lock, bit for bit.
    assert _changed(sh) == []
    commit = _git(sh, "rev-parse", "--short=7", "HEAD").strip()
    assert set(_runs(sh)["tags.git.commit"].dropna()) == {commit}  # not "-dirty" (fold runs have no tag)
    _assert_pipeline_outputs(sh.cwd, raw_test, f"sqlite:///{sh.cwd / 'mlflow.db'}")
    _kaggle_cli_takes(sh.cwd / "submissions" / "submission.csv", sh.home / "kaggle-cli")

    second = _make(sh)
    assert second.returncode == 0 and "Running stage" not in second.stdout, second.stdout

    # Another thread count is a runtime setting: it reruns nothing and, forced, gives the same bytes.
    _set_params(sh, "one thread", {"runtime": {"threads": 1}})
    forced = subprocess.run(["bash", "-c", "source .venv/bin/activate && dvc repro -f cv train predict"],
                            cwd=sh.cwd, env=sh.env(), capture_output=True, text=True, timeout=900)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert _changed(sh) == []
    # The inspection stages, outside make's chain, run on demand (their lock entries are not committed).
    for stage in ("features", "residuals"):
        done = subprocess.run(["bash", "-c", f"source .venv/bin/activate && dvc repro {stage}"], cwd=sh.cwd,
                              env=sh.env(), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(ProjectPaths(sh.cwd).features_metrics.read_text())["n_features"] > 200
    assert len(pd.read_csv(ProjectPaths(sh.cwd).worst_houses)) == 25
    # Metrics are committed: `dvc metrics diff` compares this run with HEAD.
    diff = subprocess.run(["bash", "-c", "source .venv/bin/activate && dvc metrics diff HEAD --all"], cwd=sh.cwd,
                          env=sh.env(), capture_output=True, text=True, timeout=120)
    assert diff.returncode == 0 and "metrics/house_prices/cv.json" in diff.stdout, diff.stdout + diff.stderr


def test_the_readme_experiment_its_comparisons_and_apply(sh: Shell) -> None:
    _set_params(sh, "a small project for the commands below", SMALL)
    for command in ("dvc repro predict", "dvc repro residuals"):  # the pipeline page's stages, by name
        done = subprocess.run(["bash", "-c", f"source .venv/bin/activate && {command}"], cwd=sh.cwd, env=sh.env(),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    _git(sh, "add", "--all")
    _git(sh, "commit", "--quiet", "-m", "the small project's results")
    # The README's activation puts the project's tools first on PATH.
    found = subprocess.run(["bash", "-c", f"{sh.text('source .venv/bin/activate')} && command -v kpipe dvc mlflow"],
                           cwd=sh.cwd, env=sh.env(), capture_output=True, text=True, check=True).stdout.split()
    assert found == [str(Path(sys.prefix) / "bin" / tool) for tool in ("kpipe", "dvc", "mlflow")]

    out = sh.ok("dvc exp run -n lr-low -S train.lr=0.002 predict")
    assert "Ran experiment(s): lr-low" in out
    for command in ("dvc exp show --only-changed --drop .*/", "dvc metrics show metrics/house_prices/cv.json",
                    "dvc metrics diff", "kpipe runs"):
        done = sh.run(command)
        assert done.returncode == 0, (command, done.stderr)
        widths = [len(line) for line in done.stdout.splitlines()]
        assert widths and max(widths) <= WIDTH, f"{command} prints {max(widths)} columns:\n{done.stdout}"
    shown = sh.run("dvc exp show --only-changed --drop .*/").stdout
    assert "lr-low" in shown and "train.lr" in shown and "log_rmse_mean" in shown
    assert "linear" in sh.run("kpipe runs").stdout
    _mlflow_ui_serves_the_runs(sh)

    # docs/pipeline.md: `dvc exp apply lr-low` brings it into the workspace, the pictures included.
    residuals_png = ProjectPaths(sh.cwd).residuals_png
    assert residuals_png.exists()
    applied = subprocess.run(["bash", "-c", "source .venv/bin/activate && dvc exp apply lr-low"], cwd=sh.cwd,
                             env=sh.env(), capture_output=True, text=True, timeout=120)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert yaml.safe_load((sh.cwd / "params.yaml").read_text())["train"]["lr"] == 0.002
    assert residuals_png.exists()

    # What a clone has, `dvc plots show` draws: no picture of a stage not run is a load failure.
    for command in ("dvc plots show", "dvc plots show submissions/log.csv"):
        out = sh.ok(command)
        assert "failed to load" not in out.lower() and "dvc_plots/index.html" in out, out
    assert "metrics/fashion/mlp.json" in sh.ok("dvc metrics show")


def _mlflow_ui_serves_the_runs(sh: Shell) -> None:
    """`mlflow ui` as the README starts it (plus a free port): the runs, on 127.0.0.1 only."""
    port = _free_port()
    with _serving(sh, "mlflow ui --backend-store-uri sqlite:///mlflow.db", port, "/health"):
        found = requests.post(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", timeout=30,
                              json={"experiment_ids": ["1"], "filter": "tags.stage = 'cv'"}).json()
        assert len(found["runs"]) >= 3
        assert re.search(rf"0100007F:{port:04X} 00000000:0000 0A", Path("/proc/net/tcp").read_text())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _serving:
    """A documented server command started in the background (its port moved to a free one),
    waited for on `probe`, and stopped with its process group."""

    def __init__(self, sh: Shell, command: str, port: int, probe: str, fixed_port: str | None = None) -> None:
        text = sh.text(command)
        text = text.replace(f"-p {fixed_port}", f"-p {port}") if fixed_port else f"{text} --port {port}"
        self.process = subprocess.Popen(["bash", "-c", f"source .venv/bin/activate && {text}"], cwd=sh.cwd,
                                        env=sh.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True, start_new_session=True)
        self.url = f"http://127.0.0.1:{port}{probe}"

    def __enter__(self) -> _serving:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(self.url, timeout=2).ok:
                    return self
            except requests.ConnectionError:
                pass
            assert self.process.poll() is None, self.process.stderr.read()[-3000:]
            assert time.monotonic() < deadline, f"{self.url} did not answer"
            time.sleep(0.5)

    def __exit__(self, *exc: object) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)


def test_a_bad_set_param_says_how_to_get_back(sh: Shell) -> None:
    bad = subprocess.run(["bash", "-c", "source .venv/bin/activate && dvc exp run -S train.lr=abc predict"],
                         cwd=sh.cwd, env=sh.env(), capture_output=True, text=True, timeout=300)
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "train.lr='abc'" in out and "git checkout params.yaml" in out, out
    refused = sh.run("kpipe runs")  # any kpipe command refuses the broken file with the same line
    assert refused.returncode != 0 and "train.lr='abc'" in refused.stderr
    assert "git checkout params.yaml" in refused.stderr
    _git(sh, "checkout", "params.yaml")  # the way back the message gives
    assert sh.run("kpipe runs").returncode == 0


def test_the_other_data_sources_are_one_set_param_away(sh: Shell) -> None:
    """docs/getting-started.md: files that already verify are kept, so each source's experiment runs."""
    for command in ("dvc exp run -S data.source=d2l predict", "dvc exp run -S data.source=kaggle predict",
                    "dvc exp run -S data.source=local -S data.local_dir=/path/to/dir predict"):
        assert "Ran experiment(s)" in sh.ok(command, timeout=300)
        _git(sh, "checkout", "params.yaml")


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
    # docs/development.md's transcript command, for a submission not yet sent (a new model's file)
    _set_params(sh, "another learning rate", {"train": {"lr": 0.003}})
    subprocess.run(["bash", "-c", "source .venv/bin/activate && dvc repro predict"], cwd=sh.cwd, env=sh.env(),
                   capture_output=True, check=True, timeout=600)
    out = sh.ok("PATH=$PWD/.venv/bin:$PATH python tests/kaggle_standin.py -- bash -c kpipe submit && kpipe leaderboard")
    assert "scored: public score" in out


def test_the_registered_model_is_loaded_served_and_promoted(sh: Shell) -> None:
    paths = ProjectPaths(sh.cwd)
    sh.ok("kpipe predict --model-uri models:/house-prices/3")
    assert paths.submission_from("models:/house-prices/3").exists()
    sh.ok("kpipe promote 3 && kpipe predict --champion")
    sh.ok("kpipe predict --champion")
    port = _free_port()
    serve = ("MLFLOW_TRACKING_URI=sqlite:///mlflow.db mlflow models serve -m models:/house-prices/latest "
             "--env-manager local -p 5001")
    with _serving(sh, serve, port, "/ping", fixed_port="5001"):
        sh.ok("python -c import pandas as pd, json; print(json.dumps({'dataframe_split': json.loads(\n    "
              "pd.read_csv('data/raw/test.csv').head(2).to_json(orient='split', index=False))})) > houses.json")
        out = sh.ok("curl -s http://127.0.0.1:5001/invocations -H Content-Type: application/json -d @houses.json",
                    replace=("127.0.0.1:5001", f"127.0.0.1:{port}"))
        assert [p["Id"] for p in json.loads(out)["predictions"]] == [1461, 1462]
    port = _free_port()
    with _serving(sh, "mlflow models serve -m models:/house-prices-trusted@champion --env-manager local -p 5001",
                  port, "/ping", fixed_port="5001"):
        answer = requests.post(f"http://127.0.0.1:{port}/invocations", data=(sh.cwd / "houses.json").read_text(),
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
    subprocess.run(["bash", "-c", "source .venv/bin/activate && dvc remote remove team"], cwd=sh.cwd, env=sh.env(),
                   check=True, capture_output=True)  # the page's second way, instead of the first
    for command in ("dvc remote add --default team s3://team-bucket/kaggle-pipeline",
                    "dvc remote modify team endpointurl https://minio.example:9000",
                    "dvc remote modify --local team access_key_id AKIA...",
                    "dvc remote modify --local team secret_access_key ..."):
        sh.ok(command)


def test_every_house_prices_command_ran(sh: Shell) -> None:
    assert sh.ran == set(sh.commands), sorted(set(sh.commands) - sh.ran)
