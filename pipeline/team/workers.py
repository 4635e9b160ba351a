"""`kpipe tune` worker processes on a shared study, and a worker killed mid-trial on purpose:
what the team demo shows and the team tests check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

from pipeline.tuning.study import WORKER_ATTR

if TYPE_CHECKING:
    import sqlalchemy as sa


def start_tune_worker(repo: Path, storage: str, study_name: str, seed: int, n_trials: int,
                      tracking: Mapping[str, str], log: Path) -> subprocess.Popen:
    """`kpipe tune` in `repo` as its own process (the checkout's code, as on a worker machine),
    logging its trials where MLflow's variables `tracking` say (`MlflowServer.env(user)`: the URI and,
    on a server with authentication, the user, in the environment and never on the command line);
    its output goes to `log`."""
    env = {**os.environ, "PYTHONPATH": str(repo), "TQDM_DISABLE": "1", **tracking}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "tune", "--n-trials", str(n_trials),
                                 "--storage", storage, "--study-name", study_name, "--sampler-seed", str(seed)],
                                cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT)


def kill_mid_trial(worker: subprocess.Popen, storage_url: str, study_name: str,
                   timeout: float = 120) -> FrozenTrial:
    """SIGKILL `worker` while one of its trials trains (RUNNING, an epoch reported, so every
    param is drawn) and has a heartbeat on record (Optuna fails only such a trial); that trial.

    The worker is frozen (SIGSTOP) before its trial is checked, so the trial cannot finish
    between the check and the kill; if it had finished, the worker goes on (SIGCONT) and the
    next trial is tried."""
    import sqlalchemy as sa

    engine = sa.create_engine(storage_url)
    study = optuna.load_study(study_name=study_name, storage=storage_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"worker {worker.pid} ended ({worker.returncode}) before it could be killed")
            if _training_trial(study, worker.pid) is not None:
                worker.send_signal(signal.SIGSTOP)
                trial = _training_trial(study, worker.pid)
                if trial is not None and _has_heartbeat(engine, trial):
                    worker.kill()
                    worker.wait()
                    return trial
                worker.send_signal(signal.SIGCONT)
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise RuntimeError(f"worker {worker.pid} had no trial to kill within {timeout:.0f} s")


def _training_trial(study: optuna.Study, pid: int) -> FrozenTrial | None:
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return next((t for t in running if t.intermediate_values
                 and str(t.user_attrs.get(WORKER_ATTR, "")).endswith(f":{pid}")), None)


def _has_heartbeat(engine: sa.Engine, trial: FrozenTrial) -> bool:
    """Whether Optuna's `trial_heartbeats` table has a row for the trial (read directly: Optuna
    has no public call for it)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM trial_heartbeats WHERE trial_id = :id"),
                            {"id": trial._trial_id}).scalar() == 1
