"""Every bad input, bad param and fault ends in one clear message: exit 1, no traceback, no output.

One test per case of the hostile-input review. Stages run in-process through `run_stage` (what
`python -m pipeline.stages.<name>`, DVC and `kpipe` all call); a few run as real processes to
prove the same from the outside.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import BIN, ROOT, SHIPPED_PARAMS
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.common.paths import ProjectPaths
from pipeline.stages import cv as cv_stage
from pipeline.stages import fetch as fetch_stage
from pipeline.stages import run_stage
from pipeline.stages import train as train_stage
from pipeline.stages import validate as validate_stage

# A small, fast experiment: what the failure cases need, not a good score.
SMALL = {"model": {"kind": "linear", "members": []}, "train": {"epochs": 3}, "cv": {"folds": 3},
         "runtime": {"threads": 1}}


def _params(**sections: dict) -> dict:
    params = yaml.safe_load(yaml.safe_dump(SHIPPED_PARAMS))
    for name, values in {**SMALL, **sections}.items():
        params[name].update(values)
    return params


@pytest.fixture
def project(tmp_path: Path, house_prices_dir: Path, monkeypatch: pytest.MonkeyPatch) -> ProjectPaths:
    """A project folder holding params.yaml and the real raw CSVs; the working directory."""
    paths = ProjectPaths(tmp_path / "project")
    paths.raw_dir.mkdir(parents=True)
    paths.params.write_text(yaml.safe_dump(_params()))
    paths.dvc_yaml.write_bytes((ROOT / "dvc.yaml").read_bytes())
    for name, target in (("kaggle_house_pred_train.csv", paths.raw_train),
                         ("kaggle_house_pred_test.csv", paths.raw_test),
                         ("house-prices-advanced-regression-techniques.zip", paths.bundled_archive)):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((house_prices_dir / name).read_bytes())
    monkeypatch.chdir(paths.root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return paths


@pytest.fixture
def validated(project: ProjectPaths, clean_frames) -> ProjectPaths:
    """The project with small validated frames in data/interim, as the `validate` stage leaves them."""
    train, test = clean_frames
    project.interim_dir.mkdir(parents=True)
    train.head(150).to_parquet(project.clean_train)
    test.head(50).to_parquet(project.clean_test)
    return project


def run(main: Callable[[], object], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """(exit code, stderr) of a stage run as a program runs it."""
    try:
        run_stage(main)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def assert_clean_failure(code: int, err: str, *needles: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err and "error: " in err, err
    message = err[err.index("error: "):]  # the stage's last word, after any progress bar
    for needle in needles:
        assert needle in message, (needle, err)


def outputs_of_validate(paths: ProjectPaths) -> list[Path]:
    return [p for p in (paths.clean_train, paths.clean_test) if p.exists()]


# --- reading: one reader for every table --------------------------------------------------------

@pytest.mark.parametrize(("content", "needle"), [
    (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)), "not a text file"),
    ("Id,MSSubClass,Neighborhood\n1,60,Crawf\u00f6rd\n".encode("latin-1"), "not UTF-8 text"),
    (b"Id;MSSubClass;LotArea\n1;60;8450\n", "separated by ';'"),
    (b"", "is empty"),
])
def test_unreadable_train_csv_is_one_message_naming_the_file(project: ProjectPaths, capsys, content, needle) -> None:
    project.raw_train.write_bytes(content)
    code, err = run(validate_stage.main, capsys)
    assert_clean_failure(code, err, str(project.raw_train), needle)
    assert outputs_of_validate(project) == []


def test_a_text_file_linked_in_as_train_fails_validation_cleanly(project: ProjectPaths, capsys,
                                                                  house_prices_dir: Path) -> None:
    """`data.verify: false` and a symlink to the competition's description text."""
    import zipfile

    description = project.root / "data_description.txt"
    with zipfile.ZipFile(house_prices_dir / "house-prices-advanced-regression-techniques.zip") as zf:
        description.write_bytes(zf.read("data_description.txt"))
    project.raw_train.unlink()
    project.raw_train.symlink_to(description)
    code, err = run(validate_stage.main, capsys)
    assert_clean_failure(code, err, str(project.raw_train))
    assert outputs_of_validate(project) == []


def test_a_file_past_the_size_cap_is_refused_before_it_is_read(project: ProjectPaths, capsys) -> None:
    project.params.write_text(yaml.safe_dump(_params(data={"max_file_mb": 0.1})))
    code, err = run(validate_stage.main, capsys)
    assert_clean_failure(code, err, str(project.raw_train), "more than the 104857 bytes limit")
    assert outputs_of_validate(project) == []


# --- schemas ------------------------------------------------------------------------------------

def _edit_raw(path: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    edit(pd.read_csv(path)).to_csv(path, index=False)


@pytest.mark.parametrize(("table", "edit", "needles"), [
    ("test", lambda f: f.head(0), ["test", "has_rows"]),
    ("train", lambda f: f.assign(LotArea=f["LotArea"].astype(float).where(f.index != 3, 1e308)), ["LotArea", "1e+308"]),
    ("test", lambda f: f.assign(GrLivArea=f["GrLivArea"].astype(float).where(f.index != 0, float("inf"))),
     ["GrLivArea", "inf"]),
    ("test", lambda f: f.assign(LotFrontage=float("nan")), ["LotFrontage", "not_entirely_missing"]),
    ("test", lambda f: f.assign(Id=f["Id"].astype(float).where(f.index != 0, 1461.5)), ["Id", "integral", "1461.5"]),
])
def test_values_a_house_cannot_have_are_refused(project: ProjectPaths, capsys, table, edit, needles) -> None:
    _edit_raw(project.raw_train if table == "train" else project.raw_test, edit)
    code, err = run(validate_stage.main, capsys)
    assert_clean_failure(code, err, "validation failed", *needles)
    assert outputs_of_validate(project) == []
    assert project.validation_report.exists()  # every failure, written for reading


# --- params -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("train", "needle"), [
    ({"lr": -0.01}, "train.lr=-0.01: must be > 0"),
    ({"epochs": 0}, "train.epochs=0: must be >= 1"),
])
def test_out_of_range_params_stop_the_stage_before_any_work(validated: ProjectPaths, capsys, train, needle) -> None:
    validated.params.write_text(yaml.safe_dump(_params(train={**SMALL["train"], **train})))
    for stage in (cv_stage, train_stage):
        code, err = run(stage.main, capsys)
        assert_clean_failure(code, err, needle)
    assert not validated.cv_metrics.exists() and not validated.model_dir.exists()


@pytest.mark.parametrize("loss", ["huber", "mse"])
def test_divergence_fails_cv_and_keeps_no_metrics(validated: ProjectPaths, capsys, loss: str) -> None:
    validated.params.write_text(yaml.safe_dump(_params(train={**SMALL["train"], "lr": 1e6, "loss": loss})))
    code, err = run(cv_stage.main, capsys)
    assert_clean_failure(code, err, "diverged", "lower train.lr (now 1e+06)")
    assert not validated.cv_metrics.exists() and not validated.oof_predictions.exists()
    assert not validated.cv_curves_dir.exists()


def test_broken_yaml_through_kpipe_is_one_message(project: ProjectPaths) -> None:
    project.params.write_text("data:\n  source: [bundled\n")
    result = CliRunner().invoke(app, ["fetch"])
    assert result.exit_code == 1
    assert "params.yaml is not valid YAML (line" in result.output and "Traceback" not in result.output


# --- faults -------------------------------------------------------------------------------------

def test_a_blocked_models_folder_fails_train_before_training(validated: ProjectPaths, capsys) -> None:
    """A `models` that cannot hold a folder (here a file: read-only works the same for non-root)."""
    (validated.root / "models").write_text("not a folder")
    validated.cv_metrics.parent.mkdir(parents=True)
    validated.cv_metrics.write_text('{"log_rmse_mean": 0.2, "members": [{"weight": 1.0, "final_epochs": 3}]}')
    started = time.perf_counter()
    code, err = run(train_stage.main, capsys)
    assert_clean_failure(code, err, "cannot write to", "models", "nothing was computed")
    assert time.perf_counter() - started < 10  # it did not train first
    assert not validated.train_metrics.exists()


@contextlib.contextmanager
def _silent_server() -> Iterator[str]:
    """A tracking 'server' that accepts connections and never answers (a hung host)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.mark.parametrize("server", ["refused", "hung"])
def test_a_dead_tracking_server_costs_seconds_and_one_warning(project: ProjectPaths, capsys, caplog,
                                                              monkeypatch, server) -> None:
    from pipeline.stages import study_linreg

    with _silent_server() if server == "hung" else contextlib.nullcontext("http://127.0.0.1:9") as uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        started = time.perf_counter()
        code, _ = run(study_linreg.main, capsys)
        elapsed = time.perf_counter() - started
    assert code == 0 and elapsed < 15, elapsed
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "MLflow" in r.getMessage()]
    assert len(warnings) == 1 and f"no tracking server answers at {uri}" in warnings[0]
    assert ProjectPaths(project.root).study_metrics("linreg").exists()


def test_a_failing_tracking_store_is_one_warning_not_a_traceback(project: ProjectPaths, capsys, caplog,
                                                                 monkeypatch, mlflow_template: Path) -> None:
    """A read-only SQLite store (an immutable file: even root cannot write it)."""
    from pipeline.stages import study_linreg

    db = project.root / "readonly.db"
    db.write_bytes(mlflow_template.read_bytes())
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("needs `chattr +i` (root on a file system with attributes) to make a read-only store")
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
        code, err = run(study_linreg.main, capsys)
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    assert code == 0 and "Traceback" not in err and "sqlalchemy" not in caplog.text.lower().replace(
        "sqlite3.operationalerror", "")
    warnings = [r.getMessage() for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert len(warnings) == 1 and "readonly database" in warnings[0], warnings


@pytest.mark.parametrize(("content", "needle"), [
    ("", "is empty"),
    ("\0\0garbage\0", "not a text file"),
    ("Id,SalePrice\n", "has a header but no rows"),
])
def test_kpipe_submit_refuses_an_unreadable_file(validated: ProjectPaths, content: str, needle: str) -> None:
    validated.submission.parent.mkdir(parents=True)
    validated.submission.write_text(content)
    result = CliRunner().invoke(app, ["submit"])
    assert result.exit_code == 1 and needle in result.output and "Traceback" not in result.output


def test_kpipe_submit_before_validate_says_which_stage_to_run(project: ProjectPaths) -> None:
    project.submission.parent.mkdir(parents=True)
    project.submission.write_text("Id,SalePrice\n1461,100000\n")
    result = CliRunner().invoke(app, ["submit"])
    assert result.exit_code == 1 and "run `dvc repro validate` first" in result.output


class _Trickle(http.server.BaseHTTPRequestHandler):
    """A mirror that sends the headers and a little of the body, then stalls (a dropped line)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(10 << 20))
        self.end_headers()
        self.wfile.write(b"Id,MSSubClass\n" * 1000)
        self.wfile.flush()
        time.sleep(30)

    def log_message(self, *args: object) -> None:
        pass


def test_a_download_killed_mid_way_leaves_nothing_after_the_next_run(project: ProjectPaths, capsys) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        project.raw_train.unlink()
        project.raw_test.unlink()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        project.params.write_text(yaml.safe_dump(_params(data={"source": "d2l", "base_url": url})))
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        worker = subprocess.Popen([sys.executable, "-m", "pipeline.stages.fetch"], cwd=project.root, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not list(project.raw_dir.glob(".*.part")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(project.raw_dir.glob(".*.part")), "the download never started"
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert list(project.raw_dir.glob(".*.part"))  # what kill -9 leaves behind
    finally:
        server.shutdown()
        server.server_close()
    project.params.write_text(yaml.safe_dump(_params()))  # back to the bundled archive
    code, err = run(fetch_stage.main, capsys)
    assert code == 0, err
    assert sorted(p.name for p in project.raw_dir.iterdir()) == ["test.csv", "train.csv"]


def test_a_stage_process_prints_the_message_and_no_traceback(project: ProjectPaths) -> None:
    """The same from outside: `python -m pipeline.stages.validate`, as DVC runs it."""
    project.raw_test.write_bytes(b"\0\1\2 not a table")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, "-m", "pipeline.stages.validate"], cwd=project.root, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: {project.raw_test} is not a text file (it holds " \
                                                      "NUL bytes): expected a CSV table"
    assert "Traceback" not in result.stderr
