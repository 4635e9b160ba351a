"""Throwaway team services on 127.0.0.1: a PostgreSQL cluster and MLflow's own tracking server
on top of it. Real servers, never mocks; for the team demo, the throughput benchmark and the
tests, not for a team's long-lived setup (docs/team.md says how to run that).

    with running_postgres() as pg:                      # PostgresServer
        url = pg.create_database("optuna")              # postgresql+psycopg://kp@127.0.0.1:PORT/optuna
        with running_mlflow(pg) as server:              # MlflowServer
            print(server.url)                           # http://127.0.0.1:PORT

It lives in the package (not under tests/) because three entry points start these services:
`scripts/team_demo.py`, `benchmarks/tune_throughput.py` and the tests' fixtures
(`tests/services.py`); the package is what all three import without path tricks.

PostgreSQL is Debian's `postgresql` package (`apt-get install postgresql`, which .ci/run does);
where its binaries are missing, `check_postgres()` and the context managers raise
ServiceUnavailable saying what to install. Everything lives in a folder under /tmp, owned by
`postgres` when we are root (initdb refuses to run as root, and a folder under
/tmp/pytest-of-root is not traversable for another user), and is stopped and deleted on the way
out, an exception or Ctrl-C included.

The cluster authenticates every connection with `scram-sha-256` and a password generated at
start, which is never on a command line or in a URL: it is only in a pgpass file (mode 0600)
that `running_postgres` names in `PGPASSFILE` while it runs, where libpq (psycopg, SQLAlchemy,
Optuna, `mlflow server`, `kpipe tune`) reads it, as a team's own setup would use `~/.pgpass`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

HOST = "127.0.0.1"
PG_USER = "kp"
ADMIN_USER = "admin"  # MLflow's basic-auth app creates it at first start
INSTALL_HINT = "apt-get install postgresql (.ci/run installs it when missing)"
PG_START_TIMEOUT_S = 60.0
MLFLOW_START_TIMEOUT_S = 120.0  # it starts in seconds on an idle machine; far more under a loaded CI run


class ServiceUnavailable(RuntimeError):
    """A service's prerequisites are missing from this machine (the fixtures skip on it)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


def postgres_bindir() -> Path:
    """Debian's newest /usr/lib/postgresql/<version>/bin, else a `postgres` on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version_key)
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    raise ServiceUnavailable(f"PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin): {INSTALL_HINT}")


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"<no log: {exc}>"


@dataclasses.dataclass
class PostgresServer:
    bindir: Path
    base: Path          # everything: data/, the socket, postgres.log
    port: int
    process: subprocess.Popen
    # generated at start; only in `pgpass` (never in a URL or on a command line)
    password: str = dataclasses.field(repr=False)
    pgpass: Path        # the pgpass file (0600) that PGPASSFILE names while the cluster runs
    user: str = PG_USER
    host: str = HOST
    startup_s: float = 0.0

    @property
    def log_path(self) -> Path:
        return self.base / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of a database (psycopg 3 driver), without the password: libpq reads
        it from PGPASSFILE."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user, passfile=str(self.pgpass),
                               dbname=database, autocommit=True, connect_timeout=5)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name` (a fresh, empty one: an earlier one of that name is dropped)."""
        self.drop_database(name)
        with self.connect() as conn:
            conn.execute(f"CREATE DATABASE {_identifier(name)}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {_identifier(name)} WITH (FORCE)")


def _identifier(name: str) -> str:
    """`name`, checked to be a plain identifier: it goes into SQL unquoted."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"database name must be a plain lower-case identifier, got {name!r}")
    return name


def _as_postgres() -> dict:
    """Popen keyword arguments that run a command as the `postgres` user when we are root."""
    if os.geteuid() != 0:
        return {}
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceUnavailable(f"running as root and there is no `postgres` user: {INSTALL_HINT}") from None
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [],
            "env": {**os.environ, "HOME": str(pw.pw_dir), "USER": "postgres", "LOGNAME": "postgres"}}


def _stop_process(proc: subprocess.Popen, sig: int, *, group: bool = False, timeout: float = 15.0) -> None:
    """`sig` to the process (or its whole process group), SIGKILL after `timeout`; with `group`,
    whatever is left in the group once the leader has gone is killed too."""
    def send(s: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, s) if group else proc.send_signal(s)

    if proc.poll() is None:
        send(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
            proc.wait(10)
    if group:
        send(signal.SIGKILL)


def check_postgres() -> Path:
    """The server binaries' folder; ServiceUnavailable (with what to install) when something is missing."""
    bindir = postgres_bindir()
    _as_postgres()
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ServiceUnavailable("psycopg (PostgreSQL driver) is not installed: pip install -e '.[team]'") from None
    return bindir


@contextlib.contextmanager
def running_postgres(*, start_timeout: float = PG_START_TIMEOUT_S) -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on a free port of 127.0.0.1 (`scram-sha-256`, superuser `kp`,
    a generated password in the pgpass file that PGPASSFILE names meanwhile).

    The postmaster is our own child (no pg_ctl daemon), run as `postgres` when we are root; on
    the way out it gets a fast shutdown, its folder and the pgpass file are deleted and
    PGPASSFILE is restored."""
    bindir = check_postgres()
    as_pg = _as_postgres()
    t0 = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="kp-pg-", dir="/tmp"))  # short: the socket path is <108 bytes
    client = Path(tempfile.mkdtemp(prefix="kp-pgpass-"))  # ours alone (0700): the pgpass file
    password = secrets.token_urlsafe(18)  # letters, digits, - and _: nothing pgpass must escape
    previous = os.environ.get("PGPASSFILE")
    proc: subprocess.Popen | None = None
    try:
        pgpass = client / "pgpass"
        pgpass.touch(mode=0o600)
        pgpass.write_text(f"{HOST}:*:*:{PG_USER}:{password}\n")
        if as_pg:
            os.chown(base, as_pg["user"], as_pg["group"])
        os.chmod(base, 0o700)
        pwfile = base / "initdb-password"  # initdb reads the superuser's password from a file
        pwfile.touch(mode=0o600)
        pwfile.write_text(password + "\n")
        if as_pg:
            os.chown(pwfile, as_pg["user"], as_pg["group"])
        init = subprocess.run(
            [str(bindir / "initdb"), "-D", str(base / "data"), "-U", PG_USER, "--auth=scram-sha-256",
             f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            check=False, capture_output=True, text=True, cwd=base, **as_pg)
        pwfile.unlink()
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
        os.environ["PGPASSFILE"] = str(pgpass)  # every process started meanwhile inherits it
        log_path = base / "postgres.log"
        for _attempt in range(3):  # free_port() can race with another process taking the port
            port = free_port()
            with open(log_path, "wb") as log:  # one attempt's log
                proc = subprocess.Popen(
                    [str(bindir / "postgres"), "-D", str(base / "data"), "-p", str(port),
                     "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={base}",
                     # a throwaway cluster: durability off, start and commit fast
                     "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                     "-c", "max_connections=200", "-c", "shared_buffers=32MB"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=base,
                    start_new_session=True, **as_pg)
            server = PostgresServer(bindir=bindir, base=base, port=port, process=proc, password=password,
                                    pgpass=pgpass)
            if _wait_for_postgres(server, start_timeout):
                break
            if proc.poll() is None:
                raise RuntimeError(f"PostgreSQL did not accept connections within {start_timeout:.0f} s; "
                                   f"log {log_path}:\n{_tail(log_path)}")
            if "could not bind" not in _tail(log_path):
                raise RuntimeError(f"PostgreSQL exited ({proc.returncode}); log:\n{_tail(log_path)}")
        else:
            raise RuntimeError(f"PostgreSQL could not bind a free port; log:\n{_tail(log_path)}")
        server.startup_s = time.monotonic() - t0
        yield server
    finally:
        if proc is not None:
            _stop_process(proc, signal.SIGINT)  # SIGINT = fast shutdown: clients are cut off
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(client, ignore_errors=True)
        if previous is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = previous


def _wait_for_postgres(server: PostgresServer, timeout: float) -> bool:
    """True once the cluster answers; False if the postmaster died or the time ran out."""
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with server.connect():
                return True
        except psycopg.OperationalError:
            time.sleep(0.05)
    return False


@dataclasses.dataclass
class MlflowServer:
    url: str                 # http://127.0.0.1:PORT: MLFLOW_TRACKING_URI for clients
    backend_store_uri: str   # its PostgreSQL database
    artifacts_dir: Path      # --artifacts-destination: clients reach it only through the server
    log_path: Path
    process: subprocess.Popen
    startup_s: float = 0.0
    # With authentication: user -> generated password, the `admin` first (made at start).
    passwords: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def admin_password(self) -> str | None:
        return self.passwords.get(ADMIN_USER)

    def add_user(self, username: str) -> str:
        """Create a user on an authenticated server (as `admin`); its generated password. Every
        user may read (MLflow's default permission); a user may edit what it created, and what
        `kpipe team-init` gives it."""
        import requests

        if self.admin_password is None:
            raise RuntimeError("this tracking server was started without authentication")
        password = secrets.token_urlsafe(18)
        answer = requests.post(f"{self.url}/api/2.0/mlflow/users/create", auth=(ADMIN_USER, self.admin_password),
                               json={"username": username, "password": password}, timeout=30)
        answer.raise_for_status()
        self.passwords[username] = password
        return password

    def env(self, user: str | None = None) -> dict[str, str]:
        """MLflow's variables for a client of this server, as `user` (in the environment, never on
        a command line); without a user, only the URI."""
        env = {"MLFLOW_TRACKING_URI": self.url}
        if user is not None:
            env.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=self.passwords[user])
        return env


def _wait_for_health(proc: subprocess.Popen, url: str, deadline: float, log_path: Path) -> bool:
    """True once `url`/health answers 200; False if the server exited on a taken port."""
    while True:
        if proc.poll() is not None:
            if "address already in use" in _tail(log_path):  # uvicorn exits 0 then
                return False
            raise RuntimeError(f"mlflow server exited ({proc.returncode}) before answering /health; "
                               f"log {log_path}:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"mlflow server did not answer {url}/health in time; "
                               f"log {log_path}:\n{_tail(log_path)}")
        time.sleep(0.1)


# MLflow's basic-auth settings for a throwaway server (the keys of MLflow's own basic_auth.ini).
# Every user may read; the users' database is SQLite in the server's folder; a checked password
# is remembered for a minute, so a client that downloads a model's many files does not pay the
# password hash (PBKDF2, made slow on purpose) once per file. With one server worker there is no
# other worker's cache to go stale.
AUTH_CONFIG = """[mlflow]
default_permission = READ
database_uri = sqlite:///{folder}/basic_auth.db
admin_username = {admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = 60
"""


def _auth_config(folder: Path) -> Path:
    path = folder / "basic_auth.ini"
    path.write_text(AUTH_CONFIG.format(folder=folder, admin=ADMIN_USER))
    return path


@contextlib.contextmanager
def running_mlflow(postgres: PostgresServer, *, database: str = "mlflow", auth: bool = False,
                   start_timeout: float = MLFLOW_START_TIMEOUT_S) -> Iterator[MlflowServer]:
    """`mlflow server` (this interpreter's MLflow) with a PostgreSQL backend store of its own
    and proxied artifacts in a temporary folder, on a free port of 127.0.0.1; waits for /health.

    One uvicorn worker and no job-execution runner (MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false:
    otherwise it starts seven huey consumers and leaves a folder in /dev/shm per start, for
    features — scorers, trace rollups — the tests do not use). Its whole process group is
    terminated on the way out.

    With `auth`, MLflow's basic-auth app: every request but /health needs a user, the `admin`
    password is generated and given to the server in its environment (MLFLOW_AUTH_ADMIN_PASSWORD,
    never on its command line; `AUTH_CONFIG`), and `add_user` makes the team's users."""
    t0 = time.monotonic()
    backend = postgres.create_database(database)
    base = Path(tempfile.mkdtemp(prefix="kp-mlflow-"))
    artifacts = base / "artifacts"
    artifacts.mkdir()
    log_path = base / "mlflow-server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    admin_password = secrets.token_urlsafe(18) if auth else None
    app = ["--app-name", "basic-auth"] if auth else []
    if admin_password is not None:
        env.update(MLFLOW_AUTH_ADMIN_PASSWORD=admin_password, MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
                   MLFLOW_AUTH_CONFIG_PATH=str(_auth_config(base)))
    proc: subprocess.Popen | None = None
    try:
        for _attempt in range(3):  # free_port() can race with another process taking the port
            port = free_port()
            with open(log_path, "wb") as log:  # one attempt's log
                proc = subprocess.Popen(
                    [sys.executable, "-m", "mlflow", "server", *app, "--backend-store-uri", backend,
                     "--artifacts-destination", str(artifacts), "--host", HOST, "--port", str(port),
                     "--workers", "1"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=base, env=env,
                    start_new_session=True)
            url = f"http://{HOST}:{port}"
            if _wait_for_health(proc, url, time.monotonic() + start_timeout, log_path):
                break
        else:
            raise RuntimeError(f"mlflow server could not bind a free port; log {log_path}:\n{_tail(log_path)}")
        yield MlflowServer(url=url, backend_store_uri=backend, artifacts_dir=artifacts, log_path=log_path,
                           process=proc, startup_s=time.monotonic() - t0,
                           passwords={ADMIN_USER: admin_password} if admin_password else {})
    finally:
        if proc is not None:
            _stop_process(proc, signal.SIGTERM, group=True)
        shutil.rmtree(base, ignore_errors=True)
