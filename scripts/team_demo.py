"""The team setup on one machine, start to finish (`make team-demo`).

Starts PostgreSQL (scram-sha-256, the password only in PGPASSFILE) and `mlflow server`
(PostgreSQL backend, proxied artifacts, MLflow's basic-auth app with a `team` user that logs
and a `reader` that only reads) on 127.0.0.1, clones the project's committed HEAD into a
temporary folder (your checkout is not touched), runs `kpipe team-init` there as the admin and
`dvc repro validate`, then runs three `kpipe tune` workers on one PostgreSQL study: the third
is killed with SIGKILL in the middle of a trial, the other two start after its heartbeat's
grace period, fail its trial and rerun its params. It prints `kpipe tune --status`, what the
tracking server holds, and what each user may do there (tried for real: read, log, register,
promote), then stops everything it started and deletes the folders (`--keep` waits for Enter
first, so that the MLflow UI can be opened at the printed URL).

Demo settings, so that it stays short on 2 cores: 3 CV folds, 10-40 epochs, a
heartbeat every 2 s; the rest of the search space is params.yaml's.

Run: python scripts/team_demo.py [--trials 3] [--keep]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from pipeline.common.params import read_params
from pipeline.common.params_edit import write_params
from pipeline.common.paths import ProjectPaths
from pipeline.team.services import ServiceUnavailable, running_mlflow, running_postgres
from pipeline.team.workers import kill_mid_trial, start_tune_worker

ROOT = Path(__file__).resolve().parents[1]
STUDY = "team-demo"
DEMO_EPOCHS = {"type": "int", "low": 10, "high": 40, "step": 10}


def say(message: str) -> None:
    print(f"[team-demo] {message}", flush=True)


def prepare_clone(folder: Path) -> Path:
    """A clone of HEAD with the demo settings and the validated data the workers train on."""
    repo = folder / "project"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(repo)], check=True)
    paths = ProjectPaths(repo)
    space = {**read_params(paths.params)["tune"]["space"], "train.epochs": DEMO_EPOCHS}
    write_params(paths.params, {"cv.folds": 3, "tune.space": space, "tune.heartbeat_s": 2}, paths.params)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "DVC_NO_ANALYTICS": "1"}
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro", "--quiet", "validate"], cwd=repo, env=env,
                   check=True)
    return repo


def run_demo(trials: int, keep: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="kp-team-demo-") as tmp:
        folder = Path(tmp)
        say("starting PostgreSQL on 127.0.0.1 (a throwaway cluster)")
        with running_postgres() as pg:
            storage = pg.create_database("optuna")
            say(f"PostgreSQL ready in {pg.startup_s:.1f} s; Optuna storage {pg.url('optuna')}")
            say("starting mlflow server (backend: PostgreSQL database 'mlflow', artifacts proxied, "
                "basic-auth: every request needs a user)")
            with running_mlflow(pg, auth=True) as mlflow:
                for name in ("team", "reader"):
                    mlflow.add_user(name)
                users = {name: (name, password) for name, password in mlflow.passwords.items()}
                say(f"mlflow server ready in {mlflow.startup_s:.1f} s at {mlflow.url}; users: admin, team, reader "
                    "(generated passwords, in no command line)")
                say(f"cloning the project into {folder / 'project'} and running `dvc repro validate`")
                repo = prepare_clone(folder)
                print("\n$ kpipe team-init --editor team    # as admin")
                print(kpipe(repo, ["team-init", "--editor", "team"], mlflow.env("admin")))
                run_workers(repo, storage, mlflow.env("team"), folder, trials)
                print("\n$ kpipe tune --status --storage", storage, "--study-name", STUDY)
                print(kpipe(repo, ["tune", "--status", "--storage", storage, "--study-name", STUDY], {}))
                print(describe_tracking(mlflow.url, users["reader"]))
                print(permission_table(mlflow.url, users))
                if keep:
                    input(f"[team-demo] open {mlflow.url} in a browser; press Enter to stop everything ")
                say("stopping mlflow server and PostgreSQL")
        say("stopped; temporary folders deleted")


def kpipe(repo: Path, args: list[str], env: dict[str, str]) -> str:
    """What `kpipe <args>` in the clone prints, with MLflow's variables from `env` only."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=repo, capture_output=True, text=True,
                          env={**base, "PYTHONPATH": str(repo), **env})
    return (done.stdout + done.stderr).rstrip()


def run_workers(repo: Path, storage: str, tracking: dict[str, str], folder: Path, trials: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name=STUDY, storage=storage, direction="minimize")
    logs = folder / "logs"
    logs.mkdir()
    doomed = start_tune_worker(repo, storage, STUDY, 3, 100, tracking, logs / "worker3.log")
    say(f"worker 3 (pid {doomed.pid}) started; it will be killed in the middle of a trial")
    workers: list[subprocess.Popen] = []
    try:
        killed = kill_mid_trial(doomed, storage, STUDY, timeout=300)
        say(f"SIGKILL sent to worker 3 during trial {killed.number}: that trial is RUNNING, and nobody will end it")
        time.sleep(5)  # past the grace period (2 x tune.heartbeat_s) since its last heartbeat
        workers = [start_tune_worker(repo, storage, STUDY, seed, trials, tracking, logs / f"worker{seed}.log")
                   for seed in (1, 2)]
        say(f"workers 1 and 2 (pids {workers[0].pid}, {workers[1].pid}) started, {trials} trials each; "
            "the first to start a trial fails the dead worker's trial and queues its params again")
        for number, worker in enumerate(workers, 1):
            if worker.wait() != 0:
                raise RuntimeError(f"worker {number} failed:\n{(logs / f'worker{number}.log').read_text()[-3000:]}")
    finally:  # an error or Ctrl-C leaves no worker behind
        for worker in (doomed, *workers):
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    say("workers 1 and 2 finished")


def describe_tracking(url: str, reader: tuple[str, str]) -> str:
    """What the server holds, as the read-only user sees it."""
    import requests

    auth = reader
    found = requests.get(f"{url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "house-prices"},
                         auth=auth, timeout=30)
    experiment = found.json()["experiment"]["experiment_id"] if found.ok else None
    runs = []
    if experiment is not None:
        answer = requests.post(f"{url}/api/2.0/mlflow/runs/search", auth=auth, timeout=30, json={
            "experiment_ids": [experiment], "filter": "tags.stage = 'tune-trial'", "max_results": 1000})
        answer.raise_for_status()
        runs = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in answer.json().get("runs", [])]
    by_worker = Counter(tags.get("optuna.worker", "?") for tags in runs)
    per_worker = ", ".join(f"{worker}: {n}" for worker, n in sorted(by_worker.items()))
    return (f"MLflow: {url} (experiment 'house-prices'): {len(runs)} trial runs ({per_worker}); "
            f"on each machine: export MLFLOW_TRACKING_URI={url} MLFLOW_TRACKING_USERNAME=... "
            "MLFLOW_TRACKING_PASSWORD=...")


def permission_table(url: str, users: dict[str, tuple[str, str]]) -> str:
    """Each user (and no user) tries to read the runs, log a run, register a version of the model
    and promote one (copy it into the trusted model, as `kpipe promote` does); the table of what
    the server answered."""
    import pandas as pd
    import requests

    api = f"{url}/api/2.0/mlflow"
    team = users["team"]
    experiment = requests.get(f"{api}/experiments/get-by-name", params={"experiment_name": "house-prices"},
                              auth=team, timeout=30).json()["experiment"]["experiment_id"]
    run = requests.post(f"{api}/runs/create", json={"experiment_id": experiment}, auth=team,
                        timeout=30).json()["run"]["info"]["run_id"]
    registered = requests.post(f"{api}/model-versions/create", auth=team, timeout=30, json={
        "name": "house-prices", "source": f"runs:/{run}/model", "run_id": run}).json()["model_version"]["version"]
    actions = {
        "read runs": lambda auth: requests.post(f"{api}/runs/search", json={"experiment_ids": [experiment]},
                                                auth=auth, timeout=30),
        "log a run": lambda auth: requests.post(f"{api}/runs/create", json={"experiment_id": experiment},
                                                auth=auth, timeout=30),
        "register a version": lambda auth: requests.post(
            f"{api}/model-versions/create", auth=auth, timeout=30,
            json={"name": "house-prices", "source": f"runs:/{run}/model", "run_id": run}),
        "promote a version": lambda auth: requests.post(
            f"{api}/model-versions/create", auth=auth, timeout=30,
            json={"name": "house-prices-trusted", "source": f"models:/house-prices/{registered}"}),
    }
    rows = []
    for name, auth in (("(no user)", None), ("reader", users["reader"]), ("team", team), ("admin", users["admin"])):
        row = {"user": name}
        for action, call in actions.items():
            status = call(auth).status_code
            row[action] = f"{'allowed' if status == 200 else 'refused'} ({status})"
        rows.append(row)
    return "what each user may do on the tracking server:\n" + pd.DataFrame(rows).to_string(index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="Trials for each of the two live workers.")
    parser.add_argument("--keep", action="store_true", help="Wait for Enter before stopping the services.")
    args = parser.parse_args()
    try:
        run_demo(args.trials, args.keep)
    except ServiceUnavailable as exc:
        sys.exit(f"team-demo: {exc}")


if __name__ == "__main__":
    main()
