"""The shell commands the README and the docs pages show, and where each one is run.

Every fenced `bash` block of README.md and docs/*.md is read as a shell reads it (a backslash
continues a line, a quote may span lines, `#` starts a comment), so a command added to a page
is found here, and `test_every_documented_command_has_a_place` fails until it has a place:

- `MAKE`: tests/test_documented_commands.py runs it, as written, on a fresh clone;
- `HOUSE`: tests/test_documented_house_prices.py runs it, as written, on a fresh clone made small;
- `NEW`: tests/test_documented_new_competition.py runs it in a `kpipe new` project of a real
  public table;
- `Elsewhere(test)`: that test runs the same thing (named, and checked to exist);
- `NotHere(why)`: no test can (it installs from the network, needs root at a prompt, or is this
  suite itself); the reason is the record.

A command that needs credentials or another machine is still run (under `HOUSE` or `NEW`), and
what is checked is its documented one-line error.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
ERRORS_PAGE = ROOT / "docs" / "errors.md"


@dataclass(frozen=True)
class Elsewhere:
    test: str  # tests/<file>.py::<test function>
    why: str


@dataclass(frozen=True)
class NotHere:
    why: str


MAKE, HOUSE, NEW = "make", "house", "new"
Place = str | Elsewhere | NotHere


def _shell_blocks(text: str) -> list[str]:
    return [m.group(2) for m in re.finditer(r"(?ms)^```(bash|sh|shell|console)\n(.*?)^```", text)]


def _commands(block: str) -> list[str]:
    """The block's commands, each as the shell would read it (continuations and quotes joined)."""
    found, pending = [], ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on
            continue
        found.append(pending)
        pending = ""
    return found


def key(command: str) -> str:
    """A command's words, without its comment: how PLACES names it."""
    return " ".join(shlex.split(command.replace("\\\n", " "), comments=True))


def documented() -> dict[tuple[str, str], str]:
    """(page, key) -> the command as the page writes it, for every page's shell blocks."""
    found: dict[tuple[str, str], str] = {}
    for page in PAGES:
        for block in _shell_blocks(page.read_text()):
            for command in _commands(block):
                found.setdefault((str(page.relative_to(ROOT)), key(command)), command)
    return found


def for_place(place: str) -> dict[str, str]:
    """key -> command text of every documented command that `place` runs."""
    return {k: text for (page, k), text in documented().items() if PLACES[page].get(k) == place}


_TEAM_SERVICES = Elsewhere("tests/test_team.py::"
                           "test_stages_log_params_metrics_fold_runs_and_artifacts_to_the_tracking_server",
                           "a team's server on its own machine: tests/services.py starts the same `mlflow server "
                           "--app-name basic-auth` on PostgreSQL, on loopback, with generated passwords")
_REMOTE = Elsewhere("tests/test_team.py::test_a_fresh_clone_pulls_every_output_from_the_remote_and_runs_nothing",
                    "the same push and pull through a DVC remote in a temporary folder (this page's remote is a "
                    "team's mount or bucket)")
_PYPI = NotHere("installs packages from the network; `make` runs the same install into .venv (Makefile's setup)")
_SELF = NotHere("this test suite itself")
_DOCS_SITE = "tests/test_docs.py::test_mkdocs_serve_shows_the_site_on_loopback"
_DOCS_BUILD = "tests/test_docs.py::test_the_site_builds_strictly"

# The README's block to change a param and compare runs, which docs/pipeline.md shows again.
_CHANGE_AND_COMPARE: dict[str, Place] = {
    "dvc exp run -n lr-low -S train.lr=0.002 predict": HOUSE,
    "dvc exp show --only-changed --drop .*/": HOUSE,
    "dvc metrics show metrics/house_prices/cv.json": HOUSE,
    "dvc metrics diff": HOUSE,
    "kpipe runs": HOUSE,
    "mlflow ui --backend-store-uri sqlite:///mlflow.db": HOUSE,
}

PLACES: dict[str, dict[str, Place]] = {
    "README.md": {
        "make": MAKE,
        "make test": _SELF,
        "source .venv/bin/activate": HOUSE,
        **_CHANGE_AND_COMPARE,
        "kpipe submit": HOUSE,
        "kpipe submissions": HOUSE,
        "kpipe leaderboard": HOUSE,
        "kpipe new titanic --from ~/Downloads/titanic.zip": NEW,
        "cd titanic && dvc repro": NEW,
        "mkdocs serve": Elsewhere(_DOCS_SITE, "serves the site on loopback"),
        "mkdocs build --strict": Elsewhere(_DOCS_BUILD, "builds the site"),
    },
    "docs/development.md": {
        "make test": _SELF,
        "make test-fast": NotHere("a part of this test suite (everything not marked e2e)"),
        "mkdocs serve": Elsewhere(_DOCS_SITE, "serves the site on loopback"),
        "mkdocs build --strict": Elsewhere(_DOCS_BUILD, "builds the site"),
        "git clone . /tmp/docs-run && cd /tmp/docs-run && make && dvc repro residuals && make fashion": Elsewhere(
            "tests/test_fashion_e2e.py::test_dvc_repro_trains_all_six_models",
            "writes outside the project: the clone, `make` and `dvc repro residuals` are what "
            "tests/test_documented_commands.py runs, and the Fashion-MNIST stages of `make fashion` run there"),
        "PATH=$PWD/.venv/bin:$PATH python tests/kaggle_standin.py -- bash -c kpipe submit && kpipe leaderboard": HOUSE,
        "cd - && .venv/bin/python scripts/docs_pictures.py /tmp/docs-run": Elsewhere(
            "tests/test_docs.py::test_docs_pictures_copies_what_a_project_has_and_names_what_it_lacks",
            "the same script on a project folder"),
    },
    "docs/fashion.md": {
        "dvc repro fetch-fashion": Elsewhere("tests/test_fashion_e2e.py::test_dvc_repro_trains_all_six_models",
                                             "runs the Fashion-MNIST stages (fetch and the six models, row caps)"),
        "dvc repro train-fashion": Elsewhere("tests/test_fashion_e2e.py::test_dvc_repro_trains_all_six_models",
                                             "the same command, on capped rows"),
        "dvc repro train-fashion@mlp": Elsewhere("tests/test_fashion_e2e.py::test_dvc_repro_trains_all_six_models",
                                                 "one of the six stages it runs"),
        "dvc repro study-linreg study-weight-decay study-init": Elsewhere(
            "tests/test_studies.py::test_study_commands_write_metrics_curves_and_pictures", "the three studies"),
        "dvc repro": NotHere("every stage of both pipelines at full size; each part is run by the tests named "
                             "for it (make, the Fashion-MNIST stages, the studies)"),
        "dvc metrics show": HOUSE,
        "dvc plots show": HOUSE,
        "dvc exp run -S fashion_train.optimizer=sgd -S fashion_train.lr=0.1 -S fashion_train.schedule=constant "
        "train-fashion": Elsewhere("tests/test_fashion_e2e.py::test_dvc_repro_trains_all_six_models",
                                   "the same stages; changing the optimizer is a params change like any other"),
        "mlflow ui --backend-store-uri sqlite:///mlflow.db": HOUSE,
    },
    "docs/getting-started.md": {
        "make": MAKE,
        "make test": _SELF,
        "source .venv/bin/activate": HOUSE,
        "python3 -m venv .venv && source .venv/bin/activate": NotHere("the first step of make's set-up, which "
                                                                         "the fixture's make stands in for"),
        "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu": NotHere(
            "downloads from PyTorch's index, which this machine cannot reach"),
        "pip install -e .[dev]": _PYPI,
        "dvc exp run -S data.source=d2l predict": HOUSE,
        "dvc exp run -S data.source=kaggle predict": HOUSE,
        "dvc exp run -S data.source=local -S data.local_dir=/path/to/dir predict": HOUSE,
    },
    "docs/mlflow.md": {
        "mlflow ui --backend-store-uri sqlite:///mlflow.db": HOUSE,
        "kpipe runs": HOUSE,
        "MLFLOW_TRACKING_URI=sqlite:///mlflow.db mlflow models serve -m models:/house-prices/latest "
        "--env-manager local -p 5001": HOUSE,
        "python -c import pandas as pd, json; print(json.dumps({'dataframe_split': json.loads(\n    "
        "pd.read_csv('data/raw/test.csv').head(2).to_json(orient='split', index=False))})) > houses.json": HOUSE,
        "curl -s http://127.0.0.1:5001/invocations -H Content-Type: application/json -d @houses.json": HOUSE,
        "kpipe predict --model-uri models:/house-prices/2": HOUSE,
        "kpipe promote 2 && kpipe predict --champion": HOUSE,
    },
    "docs/new-competition.md": {
        "kpipe new titanic --from ~/Downloads/titanic.zip": NEW,
        "kpipe new titanic --competition titanic": NEW,
        "cd titanic && git add . && git commit -m kpipe new": NEW,
        "dvc repro": NEW,
        "kpipe runs": NEW,
        "kpipe submit": NEW,
        "kpipe leaderboard": NEW,
        "kpipe tune --n-trials 30": NEW,
        "kpipe tune --status": NEW,
        "cp params.tuned.yaml params.yaml && dvc repro": NEW,
    },
    "docs/pipeline.md": {
        **_CHANGE_AND_COMPARE,
    },
    "docs/submissions.md": {
        "kpipe submit": HOUSE,
        "kpipe submit -f other.csv -m my message --wait 600": HOUSE,
        "kpipe submit --force": HOUSE,
        "kpipe submissions": HOUSE,
        "kpipe leaderboard": HOUSE,
        "kpipe runs": HOUSE,
        "dvc plots show submissions/log.csv": HOUSE,
        "python tests/kaggle_standin.py -- bash -c kpipe submit && kpipe leaderboard": HOUSE,
    },
    "docs/team.md": {
        "pip install -e .[team]": NotHere("installs from the network; `make` installs '.[dev]', which includes "
                                          "'.[team]' (pyproject.toml)"),
        "sudo -u postgres createuser --pwprompt team": Elsewhere(
            "tests/test_team.py::test_tune_workers_share_a_postgresql_study_and_retry_a_killed_workers_trial",
            "asks for a password at a prompt: tests/services.py makes the same role and databases on a "
            "throwaway cluster"),
        "sudo -u postgres createdb --owner team optuna": Elsewhere(
            "tests/test_team.py::test_tune_workers_share_a_postgresql_study_and_retry_a_killed_workers_trial",
            "tests/services.py creates the databases on a throwaway cluster"),
        "sudo -u postgres createdb --owner team mlflow": _TEAM_SERVICES,
        "export MLFLOW_AUTH_ADMIN_PASSWORD=...": HOUSE,
        "export MLFLOW_FLASK_SERVER_SECRET_KEY=...": HOUSE,
        "mlflow server --app-name basic-auth --backend-store-uri postgresql+psycopg://team@db.example/mlflow "
        "--artifacts-destination /srv/mlflow-artifacts --host 127.0.0.1 --port 5000 --allowed-hosts mlflow.example":
            _TEAM_SERVICES,
        "MLFLOW_TRACKING_URI=https://mlflow.example MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=... "
        "kpipe team-init --editor team": HOUSE,
        "export MLFLOW_TRACKING_URI=https://mlflow.example": HOUSE,
        "export MLFLOW_TRACKING_USERNAME=team MLFLOW_TRACKING_PASSWORD=...": HOUSE,
        "kpipe promote 7": Elsewhere("tests/test_team.py::"
                                     "test_only_the_admin_promotes_and_the_team_predicts_with_the_champion",
                                     "promotes as the tracking server's admin, and is refused to the team"),
        "kpipe predict --champion": HOUSE,
        "mlflow models serve -m models:/house-prices-trusted@champion --env-manager local -p 5001": HOUSE,
        "kpipe tune --storage postgresql://team@db.example/optuna --sampler-seed $WORKER_ID": HOUSE,
        "kpipe tune --status --storage postgresql://team@db.example/optuna": HOUSE,
        "dvc remote add --default team /mnt/team/kaggle-pipeline-dvc": HOUSE,
        "git add .dvc/config && git commit -m DVC remote": HOUSE,
        "pip install dvc[s3]": _PYPI,
        "dvc remote add --default team s3://team-bucket/kaggle-pipeline": HOUSE,
        "dvc remote modify team endpointurl https://minio.example:9000": HOUSE,
        "dvc remote modify --local team access_key_id AKIA...": HOUSE,
        "dvc remote modify --local team secret_access_key ...": HOUSE,
        "make && git commit -am repro && dvc push --with-deps predict && git push": _REMOTE,
        "git pull && dvc pull --with-deps predict && dvc status predict": _REMOTE,
    },
    "docs/tuning.md": {
        "dvc repro validate": HOUSE,
        "kpipe tune": HOUSE,
        "kpipe tune --n-trials 20 --timeout 600": HOUSE,
        "kpipe tune --apply": HOUSE,
        "kpipe tune --status": HOUSE,
        "kpipe tune --n-jobs 2": HOUSE,
        "kpipe tune --n-trials 25 --sampler-seed 1 &": HOUSE,
        "kpipe tune --n-trials 25 --sampler-seed 2 &": HOUSE,
        "wait": HOUSE,
        "kpipe tune --storage postgresql://tuner:secret@db.example/optuna --sampler-seed $WORKER_ID": HOUSE,
        "kpipe tune --status --storage postgresql://tuner:secret@db.example/optuna": HOUSE,
        "kpipe blend --dry-run": HOUSE,
        "kpipe blend --study house-prices": HOUSE,
        "kpipe blend --key 3d35f2 --key 7888f3": HOUSE,
        "kpipe oof": HOUSE,
    },
}


@dataclass
class Shell:
    """Runs documented commands in `cwd` as a user's shell would, after `source .venv/bin/activate`:
    no venv on PATH before that, no MLflow or Kaggle variables, a home of its own (no credentials),
    and records which ones ran."""

    cwd: Path
    home: Path
    commands: dict[str, str]
    venv: Path | None = None  # default: cwd/.venv
    ran: set[str] = field(default_factory=set)

    def env(self, **extra: str) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith(("MLFLOW_", "KAGGLE_", "VIRTUAL_ENV", "PYTHON", "DVC_", "OMP_", "OPENBLAS_",
                                     "MKL_"))}
        identity = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
                    for what, value in (("NAME", "user"), ("EMAIL", "user@localhost"))}
        return {**keep, **identity, "HOME": str(self.home), "PATH": "/usr/local/bin:/usr/bin:/bin",
                "DVC_NO_ANALYTICS": "1", "WORKER_ID": "1", **extra}

    def text(self, key_: str) -> str:
        assert key_ in self.commands, f"not a documented command of this place: {key_!r}"
        self.ran.add(key_)
        return self.commands[key_]

    def run(self, *keys: str, cwd: Path | None = None, timeout: float = 600, replace: tuple[str, str] | None = None,
            **env: str) -> subprocess.CompletedProcess[str]:
        """The documented commands `keys`, one script (so `&` and `wait` work as on the page)."""
        script = "\n".join(self.text(k) for k in keys)
        if replace:  # a fixed port of the page, moved to a free one
            script = script.replace(*replace)
        activate = (self.venv or self.cwd / ".venv") / "bin" / "activate"
        return subprocess.run(["bash", "-c", f"source {activate}\n{script}"], cwd=cwd or self.cwd,
                              env=self.env(**env), capture_output=True, text=True, timeout=timeout)

    def ok(self, *keys: str, **kwargs: object) -> str:
        done = self.run(*keys, **kwargs)
        assert done.returncode == 0, f"{keys}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout + done.stderr

    def fails(self, *keys: str, says: str, code: int | None = None, **kwargs: object) -> str:
        """The command fails the documented way: an exit code, and one `error:` line (or the
        message docs/errors.md gives) that says `says`, which the errors page names too."""
        done = self.run(*keys, **kwargs)
        output = done.stdout + done.stderr
        assert done.returncode != 0 and (code is None or done.returncode == code), (keys, done.returncode, output)
        assert says in output, (keys, output[-3000:])
        assert "Traceback" not in output, output
        assert says in ERRORS_PAGE.read_text(), f"docs/errors.md does not name {says!r}"
        return output

    def script(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """A step of the test's own (not a documented command), in the same environment."""
        activate = (self.venv or self.cwd / ".venv") / "bin" / "activate"
        done = subprocess.run(["bash", "-c", f"source {activate}\n{command}"], cwd=self.cwd, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.cwd, env=self.env(), capture_output=True, text=True,
                              check=True).stdout

    def changed(self) -> list[str]:
        """`git status`, untracked files included."""
        return self.git("status", "--porcelain", "--untracked-files=all").splitlines()

    def set_params(self, message: str, changes: dict) -> None:
        """Change params.yaml and commit it, as a user keeps a change."""
        path = self.cwd / "params.yaml"
        params = yaml.safe_load(path.read_text())
        for section, values in changes.items():
            params[section].update(values)
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        self.git("commit", "--quiet", "-am", message)


def fresh_clone(base: Path, place: str) -> Shell:
    """A clone of the committed HEAD with this suite's venv as its `.venv`, and a home of its own."""
    repo, home = base / "kaggle-pipeline", base / "home"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(repo)], check=True)
    (repo / ".venv").symlink_to(sys.prefix)
    home.mkdir()
    return Shell(repo, home, for_place(place))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serving:
    """A documented server command started in the background on a free port (the page's fixed one
    moved), waited for on `probe`, and stopped with its process group. Its log goes to a file: a
    pipe nobody reads would fill and stop the server. A port another process took meanwhile is
    tried again with another."""

    def __init__(self, sh: Shell, command: str, probe: str, fixed_port: str | None = None) -> None:
        sh.text(command)  # recorded as run; its words, without the page's comment, get the port
        self.sh, self.text, self.probe, self.fixed_port = sh, command, probe, fixed_port

    def _start(self) -> None:
        self.port = free_port()
        text = (self.text.replace(f"-p {self.fixed_port}", f"-p {self.port}") if self.fixed_port
                else f"{self.text} --port {self.port}")
        self.log = self.sh.home / f"server-{self.port}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(["bash", "-c", f"source .venv/bin/activate && {text}"], cwd=self.sh.cwd,
                                            env=self.sh.env(), stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Serving:
        for _ in range(3):
            self._start()
            deadline = time.monotonic() + 180
            while self.process.poll() is None:
                try:
                    if requests.get(self.url + self.probe, timeout=2).ok:
                        return self
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, f"{self.url} did not answer: {self.log.read_text()[-3000:]}"
                time.sleep(0.5)
            assert "Address already in use" in self.log.read_text(), self.log.read_text()[-3000:]
        raise AssertionError(f"no free port for {self.text}")

    def __exit__(self, *exc: object) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)
