"""Shared fixtures: the real competition files, a throwaway copy of the repo, a loopback server."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.house_prices.params import FeatureParams, ModelParams, TrainParams

ROOT = Path(__file__).resolve().parents[1]
# Kaggle's download archive, committed with the project: the tests' one source of real data.
BUNDLED_ZIP = ROOT / "data" / "external" / "house-prices-advanced-regression-techniques.zip"
MIRROR_NAMES = {"train.csv": "kaggle_house_pred_train.csv", "test.csv": "kaggle_house_pred_test.csv"}
BIN = Path(sys.executable).parent


def _leaf_keys(node: object, prefix: str = "") -> set[str]:
    if not isinstance(node, dict):
        return {prefix}
    return set().union(*(_leaf_keys(v, f"{prefix}.{k}") for k, v in node.items())) if node else {prefix}


def _committed_params() -> dict:
    """params.yaml as committed (what a fresh clone has), not as a user's `dvc exp run -S` left it.

    A user's runs change values, never keys: when the working tree's file has other keys than
    the committed one (new params being developed, or a copy without git history), it is used.
    """
    working = yaml.safe_load((ROOT / "params.yaml").read_text())
    shown = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=ROOT, capture_output=True, text=True)
    if shown.returncode != 0:
        return working
    committed = yaml.safe_load(shown.stdout)
    return committed if _leaf_keys(committed) == _leaf_keys(working) else working


SHIPPED_PARAMS = _committed_params()


def plain_features(**changes: object) -> FeatureParams:
    """The book's plain transform (every option of ours off), then `changes`."""
    from pipeline.common.params import parse_section

    shipped = parse_section(SHIPPED_PARAMS["features"], FeatureParams, "features")
    return dataclasses.replace(shipped, **{"fit_on": "train", "log_skewed": True, "ordinal": "none", "derived": False,
                                           "drop_outliers": False, "clip": False, "neighborhood_cap": False,
                                           "price_cap": False, "encoding": "onehot", **changes})


def model_params(kind: str, hidden: tuple[int, ...] = (), dropout: float = 0.0,
                 linear_skip: bool = False) -> ModelParams:
    return ModelParams(kind=kind, hidden=hidden, dropout=dropout, linear_skip=linear_skip, members=(), blend="mean")


def train_params(**changes: object) -> TrainParams:
    """Short, plain training (MSE on log prices, one process-wide seed), then `changes`."""
    from pipeline.common.params import parse_section

    shipped = parse_section(SHIPPED_PARAMS["train"], TrainParams, "train")
    return dataclasses.replace(shipped, **{"target": "log", "loss": "mse", "epochs": 4, "batch_size": 64, "lr": 0.01,
                                           "weight_decay": 0.0, "schedule": "constant", "patience": 0, **changes})


@pytest.fixture(scope="session")
def house_prices_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out like the public mirror plus Kaggle's zip: the two CSVs under the D2L
    mirror's names (read straight from the bundled archive with `zipfile`, not the project's
    fetch code, so a fetch bug cannot hide behind its own fixture) and the archive itself."""
    folder = tmp_path_factory.mktemp("house-prices")
    shutil.copy(BUNDLED_ZIP, folder / BUNDLED_ZIP.name)
    with zipfile.ZipFile(BUNDLED_ZIP) as archive:
        for member, mirror_name in MIRROR_NAMES.items():
            (folder / mirror_name).write_bytes(archive.read(member))
    return folder


@pytest.fixture(scope="session")
def raw_train(house_prices_dir: Path) -> pd.DataFrame:
    return pd.read_csv(house_prices_dir / "kaggle_house_pred_train.csv")


@pytest.fixture(scope="session")
def raw_test(house_prices_dir: Path) -> pd.DataFrame:
    return pd.read_csv(house_prices_dir / "kaggle_house_pred_test.csv")


@pytest.fixture(scope="session")
def clean_frames(raw_train: pd.DataFrame, raw_test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    from pipeline.house_prices.validation import validate_raw

    train, test, _ = validate_raw(raw_train, raw_test)
    return train, test


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite MLflow store with its migrations already run (they take seconds); copy it per test."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow") / "template.db"
    mlflow.set_tracking_uri(f"sqlite:///{path}")
    mlflow.search_experiments()
    mlflow.set_tracking_uri(None)
    return path


@pytest.fixture
def mlflow_uri(tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh store as MLFLOW_TRACKING_URI. An earlier test's in-process `mlflow.set_tracking_uri()`
    (a stage run in this process calls it) would win over the variable, so that global is unset
    first and again after the test."""
    import mlflow

    db = tmp_path / "mlflow.db"
    shutil.copy(mlflow_template, db)
    uri = f"sqlite:///{db}"
    mlflow.set_tracking_uri(None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A clone of the committed HEAD, as a user gets it: nothing beside it, none of the working
    tree's state (a reformatted params.yaml, params.tuned.yaml, outputs of earlier runs)."""
    dest = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(dest)], check=True)
    return dest


def edit_params(repo: Path, **changes: object) -> None:
    """Set `section__key` (or a top-level `key`) values in a copy's params.yaml, like `dvc exp run -S`."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        if "__" in dotted:
            section, key = dotted.split("__")
            params[section][key] = value
        else:
            params[dotted] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def run_dvc(repo: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess:
    """`dvc <args>` in `repo` with this venv first on PATH (the stages' `python`)."""
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "DVC_NO_ANALYTICS": "1", "TQDM_DISABLE": "1", **(env or {})}
    return subprocess.run([str(BIN / "dvc"), *args], cwd=repo, capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def without_mlflow(**extra: str) -> dict[str, str]:
    """This process's environment with the venv first on PATH and none of MLflow's variables (a
    command must get its tracking URI and user from the test, not from whatever ran before), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra}


def kpipe(repo: Path, *args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """`kpipe <args>` in `repo` as its own process, with MLflow's variables from `env` only."""
    return subprocess.run([str(BIN / "kpipe"), *args], cwd=repo, capture_output=True, text=True, timeout=timeout,
                          env=without_mlflow(TQDM_DISABLE="1", **env))


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """A loopback HTTP server for `directory`'s files (a stand-in for a public mirror); its URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_server(house_prices_dir: Path) -> Iterator[str]:
    """The real competition files over HTTP, as the D2L mirror serves them."""
    with serve_directory(house_prices_dir) as url:
        yield url


DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """The four real Fashion-MNIST `*-ubyte.gz` files from Debian's dataset-fashion-mnist."""
    if not all((DEBIAN_FASHION_DIR / n).exists() for n in FASHION_FILES):
        pytest.fail(f"{DEBIAN_FASHION_DIR} missing: apt-get install -y dataset-fashion-mnist "
                    "(`make test` does this when it can)")
    return DEBIAN_FASHION_DIR


# The longest files first. `make test` hands whole files to its workers in collection order
# (`--dist loadfile --no-loadscope-reorder`), so a long end-to-end file that came last would
# run alone at the end while the other worker sat idle. A stable sort: within a file, and among
# the rest, the order stays as written.
LONGEST_FIRST = ("test_documented_house_prices.py", "test_documented_new_competition.py",
                 "test_documented_commands.py", "test_team.py",
                 "test_new_competition_e2e.py", "test_tune.py",
                 "test_tracking_auth.py", "test_kaggle.py", "test_serving.py", "test_fashion_e2e.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
