"""The team setup on real services (127.0.0.1): `kpipe tune` workers sharing one PostgreSQL study,
one of them SIGKILLed mid-trial; every stage logging to the team's authenticated `mlflow server`
as the `team` user after the admin's `kpipe team-init`; only the admin promoting a version, which
the team then loads as the champion; a DVC remote that gives a teammate's fresh clone the
outputs without running a stage. No password shows on a command line, in a log or in MLflow."""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pandas as pd
import pytest
from conftest import BIN, ROOT, edit_params, kpipe, run_dvc
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.common.params_edit import write_params
from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.serving import MODEL_ARTIFACT, REGISTERED_MODEL
from pipeline.team.workers import kill_mid_trial, start_tune_worker
from pipeline.tuning.status import study_status
from pipeline.tuning.storage import WORKER_ATTR, open_storage

if TYPE_CHECKING:
    from pipeline.team.services import MlflowServer, PostgresServer

pytest_plugins = ["services"]

# Trials of well under a second: 300 rows, 2 folds of one repeat, a few epochs. No pruning (startup trials
# above the trial count), so every trial a live worker finishes is COMPLETE. The incumbent (the
# first worker scores params.yaml before its first trial) is a linear model of 3 epochs too, not
# the shipped ensemble of eight members, which took most of this test's time.
TEAM_TUNE = {
    "cv.folds": 2,
    "model.kind": "linear",
    "train.epochs": 3,
    "tune.space": {"train.lr": {"type": "float", "low": 0.002, "high": 0.01, "log": True},
                   "train.epochs": {"type": "int", "low": 3, "high": 6},
                   "model.kind": {"type": "categorical", "choices": ["linear", "mlp"]},
                   "model.hidden": {"type": "categorical", "choices": [[16], [16, 8]]}},
    "tune.pruner_startup_trials": 100,
    "tune.cv_repeats": 1,
    "tune.one_group_per_trial": False,  # every trial draws every key: the retry must redraw them all
    "tune.heartbeat_s": 1,  # grace period 2 s: a dead worker's trial is stale 2 s after its last beat
}
STUDY = "team"


@pytest.fixture(scope="module")
def team_tracking(team_server: MlflowServer) -> MlflowServer:
    """The team's tracking server after the admin's `kpipe team-init --editor team`, as docs/team.md says."""
    done = kpipe(ROOT, "team-init", "--editor", "team", env=team_server.env("admin"))
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr  # one report, nothing from the libraries
    assert "team: EDIT on experiment 'house-prices'" in done.stdout
    assert "team: READ on registered model 'house-prices-trusted'" in done.stdout
    return team_server


def secrets_of(server: MlflowServer, postgres: PostgresServer) -> list[str]:
    return [postgres.password, *server.passwords.values()]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@localhost", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout


# --- tuning workers on PostgreSQL --------------------------------------------------------------

@pytest.fixture(scope="module")
def team_repo(tmp_path_factory: pytest.TempPathFactory, clean_frames: tuple[pd.DataFrame, pd.DataFrame]) -> Path:
    """A clone with small validated data and a small study, as each worker machine would have it
    (one for the module: the wrong-password test only reads its params)."""
    repo = tmp_path_factory.mktemp("team-worker") / "repo"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(repo)], check=True)
    paths = ProjectPaths(repo)
    paths.interim_dir.mkdir(parents=True, exist_ok=True)
    clean_frames[0].head(300).to_parquet(paths.clean_train)
    clean_frames[1].head(300).to_parquet(paths.clean_test)
    write_params(paths.params, TEAM_TUNE, paths.params)
    return repo


@pytest.mark.e2e
def test_tune_workers_share_a_postgresql_study_and_retry_a_killed_workers_trial(
        team_repo: Path, postgres_server: PostgresServer, team_tracking: MlflowServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = postgres_server.create_database("tune_team")
    optuna.create_study(study_name=STUDY, storage=url, direction="minimize")
    mlflow_server, team = team_tracking.url, team_tracking.env("team")

    # A third worker dies (SIGKILL) in the middle of a trial...
    doomed = start_tune_worker(team_repo, url, STUDY, 3, 100, team, tmp_path / "doomed.log")
    live: list[subprocess.Popen] = []
    try:
        killed = kill_mid_trial(doomed, url, STUDY)  # SIGSTOP, check the trial still trains, SIGKILL
        # ...and two live workers start once its last heartbeat is older than the grace period.
        time.sleep(3)
        live = [start_tune_worker(team_repo, url, STUDY, seed, 3, team, tmp_path / f"worker{seed}.log")
                for seed in (1, 2)]
        # No password is on a command line: not the workers', not the tracking server's.
        for secret in secrets_of(team_tracking, postgres_server):
            assert processes_showing(secret) == []
        for worker in live:
            worker.wait(timeout=300)
    finally:  # a failed step leaves no worker behind
        for worker in (doomed, *live):
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    logs = {p.name: p.read_text() for p in tmp_path.glob("*.log")}
    assert [w.returncode for w in live] == [0, 0], logs

    trials = optuna.load_study(study_name=STUDY, storage=url).get_trials()
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # distinct numbers from one storage
    killed = next(t for t in trials if t.number == killed.number)
    assert killed.state == TrialState.FAIL  # no longer RUNNING
    assert sorted(killed.params) == sorted(TEAM_TUNE["tune.space"])
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.number > killed.number and retry.params == killed.params and retry.state == TrialState.COMPLETE
    assert [t.number for t in trials if t.state != TrialState.COMPLETE] == [killed.number]

    workers = Counter(t.user_attrs[WORKER_ATTR] for t in trials)
    doomed_id = killed.user_attrs[WORKER_ATTR]
    live_ids = {f"{doomed_id.rsplit(':', 1)[0]}:{w.pid}" for w in live}
    assert {w: n for w, n in workers.items() if w != doomed_id} == dict.fromkeys(live_ids, 3)  # 3 each
    assert retry.user_attrs[WORKER_ATTR] in live_ids

    # Every finished trial of every worker is a run on the tracking server, under its worker's parent,
    # as anyone of the team (the reader too) sees it.
    for name, value in team_tracking.env("reader").items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("house-prices").experiment_id
    parents = client.search_runs([experiment], f"tags.`optuna.study` = '{STUDY}'")
    assert {p.data.tags["optuna.worker"] for p in parents} == live_ids | {doomed_id}
    assert {p.data.params["tune.storage"] for p in parents} == {url}  # no password in it to hide
    children = [run for p in parents
                for run in client.search_runs([experiment], f"tags.mlflow.parentRunId = '{p.info.run_id}'")]
    logged = {int(run.data.tags["optuna.trial"]): run for run in children}
    finished = {t.number: t for t in trials if t.state == TrialState.COMPLETE}
    assert sorted(logged) == sorted(finished)
    for number, run in logged.items():
        assert run.data.tags["optuna.worker"] == finished[number].user_attrs[WORKER_ATTR]
        assert run.data.metrics["log_rmse_mean"] == pytest.approx(finished[number].value)
    assert logged[retry.number].data.tags["optuna.retry_of"] == str(killed.number)

    # Anyone with the project and the URL sees the study: states, best, workers, the retry
    # (a plain postgresql:// URL means the psycopg driver the team extra installs).
    monkeypatch.chdir(team_repo)
    plain_url = url.replace("postgresql+psycopg://", "postgresql://")
    result = CliRunner().invoke(app, ["tune", "--status", "--storage", plain_url, "--study-name", STUDY])
    assert result.exit_code == 0, result.output
    best = min(finished.values(), key=lambda t: t.value)
    assert f"{len(trials)} trials: {len(finished)} complete, 0 pruned, 1 fail, 0 running, 0 waiting" in result.output
    assert f"best: trial {best.number}, CV log-RMSE {best.value:.5f}" in result.output
    assert all(worker in result.output for worker in workers)
    assert f"failed: trial {killed.number} on {doomed_id}" in result.output
    assert f"retried as trial {retry.number}" in result.output
    assert "kp@127.0.0.1" in result.output
    for secret in secrets_of(team_tracking, postgres_server):
        assert secret not in result.output
        for run in [*parents, *children]:  # no param or tag of any run holds it
            assert not any(secret in v for v in [*run.data.params.values(), *run.data.tags.values()])
        assert not any(secret in text for text in logs.values())


def processes_showing(secret: str) -> list[str]:
    """The command lines (/proc/*/cmdline) of this machine's processes that contain `secret`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # a process that ended meanwhile
            continue
        if secret in text:
            found.append(text)
    return found


@pytest.mark.e2e
def test_a_wrong_database_password_is_one_clear_error_that_does_not_show_it(
        team_repo: Path, postgres_server: PostgresServer, tmp_path: Path) -> None:
    url = postgres_server.create_database("tune_wrong_password")
    wrong = tmp_path / "pgpass"
    wrong.write_text(f"127.0.0.1:*:*:{postgres_server.user}:wrong-secret-0123\n")
    wrong.chmod(0o600)
    done = subprocess.run([str(BIN / "kpipe"), "tune", "--status", "--storage", url, "--study-name", STUDY],
                          cwd=team_repo, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PGPASSFILE": str(wrong), "TQDM_DISABLE": "1"})
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and 'password authentication failed for user "kp"' in line, line
    assert "wrong-secret-0123" not in done.stdout + done.stderr
    assert postgres_server.password not in done.stdout + done.stderr


def test_the_heartbeat_is_for_database_storages_and_zero_turns_it_off(tmp_path: Path) -> None:
    paths = ProjectPaths(tmp_path)
    with_beat = open_storage(f"sqlite:///{tmp_path / 'beat.db'}", paths, heartbeat_s=5)
    assert with_beat.heartbeat_interval == 5 and with_beat.get_heartbeat_stale_trial_callback() is not None
    assert open_storage(f"sqlite:///{tmp_path / 'off.db'}", paths, heartbeat_s=0).heartbeat_interval is None
    assert isinstance(open_storage("study.journal", paths, heartbeat_s=5), optuna.storages.JournalStorage)


def test_status_names_the_studies_a_storage_holds(tmp_path: Path) -> None:
    paths = ProjectPaths(tmp_path)
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    with pytest.raises(Exception, match="does not exist"):
        study_status(paths, "none.journal", "house-prices")
    study = optuna.create_study(study_name="other", storage=open_storage("s.journal", paths))
    study.enqueue_trial({"train.lr": 0.01})
    study.optimize(lambda trial: trial.suggest_float("train.lr", 0.001, 0.1), n_trials=1)

    with pytest.raises(Exception, match="no study 'house-prices' in .*s.journal; studies there: other"):
        study_status(paths, "s.journal", "house-prices")
    text = study_status(paths, "s.journal", "other")
    assert "1 trials: 1 complete" in text and "best: trial 0, CV log-RMSE 0.01000, by unknown" in text
    assert "train.lr = 0.01" in text


# --- one tracking server and one DVC remote for the team ---------------------------------------

@pytest.fixture(scope="module")
def member_run(tmp_path_factory: pytest.TempPathFactory, team_tracking: MlflowServer) -> Path:
    """A teammate's clone that ran `dvc repro predict` against the team's server as `team` (MLflow's
    variables in the environment) and committed what DVC asks to commit (dvc.lock, params, metrics
    and curve CSVs)."""
    repo = tmp_path_factory.mktemp("member-a") / "repo"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(repo)], check=True)
    edit_params(repo, train__epochs=2, cv__folds=2, model__kind="mlp")  # one quick model: the logging is the point
    result = run_dvc(repo, "repro", "predict", env=team_tracking.env("team"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MLflow tracking failed" not in result.stderr, result.stderr
    assert team_tracking.passwords["team"] not in result.stdout + result.stderr
    git(repo, "add", "--all")  # what DVC asks to track: dvc.lock, params, metrics, curve folders
    git(repo, "commit", "--quiet", "-m", "repro predict")
    return repo


@pytest.mark.e2e
def test_stages_log_params_metrics_fold_runs_and_artifacts_to_the_tracking_server(
        member_run: Path, team_tracking: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    for name, value in team_tracking.env("reader").items():  # what every teammate may see
        monkeypatch.setenv(name, value)
    mlflow_server = team_tracking.url
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("house-prices").experiment_id
    [cv] = client.search_runs([experiment], "tags.stage = 'cv'")
    metrics = json.loads(ProjectPaths(member_run).cv_metrics.read_text())
    assert cv.data.params["train.epochs"] == "2" and cv.data.params["cv.folds"] == "2"
    assert cv.data.metrics["log_rmse_mean"] == pytest.approx(metrics["log_rmse_mean"])
    assert cv.info.artifact_uri.startswith("mlflow-artifacts:/")  # stored by the server, not locally

    folds = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{cv.info.run_id}'")
    assert sorted(f.info.run_name for f in folds) == ["fold1", "fold2"]
    for fold in folds:
        steps = [m.step for m in client.get_metric_history(fold.info.run_id, "valid_log_rmse")]  # live, per fold
        assert sorted(steps) == [1, 2]

    picture = client.download_artifacts(cv.info.run_id, "cv_curves.png", str(tmp_path / "cv"))
    assert Path(picture).read_bytes() == (member_run / "plots/house_prices/cv_curves.png").read_bytes()
    [train] = client.search_runs([experiment], "tags.stage = 'train'")
    # The train stage, as `team`, registered the model (with the whole model folder, through the server).
    [version] = client.search_model_versions(f"name = '{REGISTERED_MODEL}'")
    assert version.run_id == train.info.run_id
    import mlflow.artifacts

    source = client.get_model_version_download_uri(REGISTERED_MODEL, version.version)  # on the server
    downloaded = Path(mlflow.artifacts.download_artifacts(source, dst_path=str(tmp_path / "train"),
                                                          tracking_uri=mlflow_server))
    model = downloaded / "artifacts" / MODEL_ARTIFACT
    local = member_run / "models/house_prices"
    assert sorted(str(p.relative_to(model)) for p in model.rglob("*")) == \
        sorted(str(p.relative_to(local)) for p in local.rglob("*"))
    assert (model / "config.json").read_bytes() == (local / "config.json").read_bytes()
    for run in [cv, train, *folds]:  # no password in any param or tag
        assert not any(secret in value for secret in team_tracking.passwords.values()
                       for value in [*run.data.params.values(), *run.data.tags.values()])


@pytest.mark.e2e
def test_only_the_admin_promotes_and_the_team_predicts_with_the_champion(
        member_run: Path, team_tracking: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.chdir(member_run)
    outputs: list[str] = []

    def as_user(user: str, *args: str):
        """`kpipe <args>` in the teammate's clone as `user` (in this process: no interpreter start-up)."""
        for name, value in team_tracking.env(user).items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(app, list(args))
        outputs.append(result.stdout + result.stderr)
        return result

    for user in ("team", "reader"):
        refused = as_user(user, "promote", "1")
        assert refused.exit_code == 1, (user, refused.stdout)
        assert refused.stderr == (
            "error: cannot promote models:/house-prices/1: only a user with EDIT on the registered model "
            "'house-prices-trusted' may promote (the tracking server's admin; `kpipe team-init` gives no one else "
            "more than READ)\n"), (user, refused.stderr)

    untrusted = as_user("team", "predict", "--model-uri", "models:/house-prices/1")
    assert untrusted.exit_code == 0, untrusted.output
    assert "note: models:/house-prices/1 is not a version the team's admin promoted" in untrusted.stderr

    promoted = as_user("admin", "promote", "1")
    assert promoted.exit_code == 0, promoted.output
    assert promoted.stdout.strip() == ("promoted models:/house-prices/1 as house-prices-trusted version 1; alias "
                                       "champion now points at it: models:/house-prices-trusted@champion")

    champion = as_user("team", "predict", "--champion")
    assert champion.exit_code == 0, champion.output
    written = member_run / "submissions/submission-house-prices-trusted-champion.csv"
    assert champion.stdout.strip() == f"wrote {written} from models:/house-prices-trusted@champion"
    assert "note:" not in champion.stderr and "MLflow tracking failed" not in champion.stderr
    assert written.read_bytes() == (member_run / "submissions/submission.csv").read_bytes()

    for name, value in team_tracking.env("reader").items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(team_tracking.url)
    copy = client.get_model_version_by_alias("house-prices-trusted", "champion")
    assert copy.tags == {"promoted_from": "house-prices/1", "promoted_by": "admin"}
    assert copy.run_id == client.get_model_version(REGISTERED_MODEL, "1").run_id
    assert not any(secret in text for secret in team_tracking.passwords.values() for text in outputs)
    mlflow.set_tracking_uri(None)  # `predict` set it in this process


@pytest.mark.e2e
def test_a_fresh_clone_pulls_every_output_from_the_remote_and_runs_nothing(member_run: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"  # a shared folder, as `dvc remote add` documents it in the README
    assert run_dvc(member_run, "remote", "add", "--default", "team", str(remote)).returncode == 0
    git(member_run, "commit", "--quiet", "-am", "the team's DVC remote")
    pushed = run_dvc(member_run, "push", "--with-deps", "predict")
    assert pushed.returncode == 0, pushed.stderr

    clone = tmp_path / "member-b"
    subprocess.run(["git", "clone", "--quiet", str(member_run), str(clone)], check=True)
    pulled = run_dvc(clone, "pull", "--with-deps", "predict")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr

    status = run_dvc(clone, "status", "predict")
    assert status.returncode == 0 and "Data and pipelines are up to date." in status.stdout, status.stdout
    dry = run_dvc(clone, "repro", "--dry", "predict")
    assert "Running stage" not in dry.stdout, dry.stdout
    for output in ("submissions/submission.csv", "data/raw/train.csv",  # persist: true
                   "metrics/house_prices/cv.json", "plots/house_prices/cv_curves/mlp.csv",  # cache: false
                   "models/house_prices/config.json"):
        assert (clone / output).read_bytes() == (member_run / output).read_bytes(), output
    assert git(clone, "status", "--porcelain") == ""
