"""The registered MLflow model: logged the way the `train` stage logs it, loaded and served the
ways a user loads and serves it, and predicting exactly what the pipeline predicts.

One small ensemble (a linear model and an MLP, two epochs each) is trained once for the module
and registered as `house-prices` in a fresh SQLite store. The tests that start another
interpreter or a server are `e2e`.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from conftest import BIN, ROOT, model_params, plain_features, train_params
from mlflow.exceptions import MlflowException
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.common.io import sha1_of
from pipeline.common.paths import ProjectPaths
from pipeline.common.tracking import HOUSE_PRICES_EXPERIMENT, RunRecord, open_run
from pipeline.house_prices.artifacts import save_members
from pipeline.house_prices.final import FinalModel, fit_final, predict_blend
from pipeline.house_prices.serving import REGISTERED_MODEL, log_model
from pipeline.submissions.source import submission_source
from pipeline.tabular.registry import REQUIREMENTS

LATEST = f"models:/{REGISTERED_MODEL}/latest"


@dataclass
class Registered:
    paths: ProjectPaths  # a project folder: data/raw/test.csv and the saved model
    uri: str  # the tracking store
    members: list[FinalModel]
    version: str


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path, clean_frames,
               house_prices_dir: Path) -> Iterator[Registered]:
    train, test = clean_frames
    paths = ProjectPaths(tmp_path_factory.mktemp("project"))
    for made in (paths.params, paths.dvc_yaml):  # a project, where kpipe runs
        shutil.copy(ROOT / made.name, made)
    paths.raw_dir.mkdir(parents=True)
    shutil.copy(house_prices_dir / "kaggle_house_pred_test.csv", paths.raw_test)
    shutil.copy(mlflow_template, paths.mlflow_db)
    uri = f"sqlite:///{paths.mlflow_db}"
    fast = train_params(epochs=2)
    members = [fit_final(train, test, plain_features(), model, fast, seed=0)
               for model in (model_params("linear"), model_params("mlp", hidden=(16,)))]
    save_members(members, paths.model_dir, {})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", uri)
        with open_run(paths, HOUSE_PRICES_EXPERIMENT, RunRecord("train", tags={"stage": "train"})) as run:
            info = run.log_model(lambda: log_model(paths.model_dir, pd.read_csv(paths.raw_test)))
        assert info is not None, "logging the model failed (see the warning)"
        mlflow.set_tracking_uri(uri)
        yield Registered(paths, uri, members, str(info.registered_model_version))
    mlflow.set_tracking_uri(None)


def _relative_gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a) / np.asarray(b) - 1)))


def test_the_registered_model_predicts_test_csv_as_read_like_the_pipeline(registered: Registered,
                                                                          clean_frames) -> None:
    _, clean_test = clean_frames
    raw = pd.read_csv(registered.paths.raw_test)  # the CSV as read: Id included, nothing typed
    predicted = mlflow.pyfunc.load_model(LATEST).predict(raw)
    expected = predict_blend(registered.members, clean_test)  # what the predict stage writes
    assert list(predicted.columns) == ["Id", "SalePrice"]
    assert (predicted["Id"].to_numpy() == raw["Id"].to_numpy()).all()
    assert _relative_gap(predicted["SalePrice"], expected["SalePrice"]) < 1e-6


def test_the_signature_is_test_csv_with_id_and_the_output_a_submission(registered: Registered) -> None:
    model = mlflow.pyfunc.load_model(LATEST)
    inputs = {c.name: (c.type.name, c.required) for c in model.metadata.signature.inputs.inputs}
    assert list(inputs)[:3] == ["Id", "MSSubClass", "MSZoning"] and len(inputs) == 80  # the file's columns
    assert inputs["Id"] == ("long", True) and inputs["LotArea"] == ("long", True)
    assert inputs["GarageCars"] == ("double", False)  # gaps in test.csv: optional, read as floats
    assert inputs["PoolQC"] == ("string", False)
    assert [(c.name, c.type.name) for c in model.metadata.signature.outputs.inputs] == [
        ("Id", "long"), ("SalePrice", "double")]
    example = model.metadata.load_input_example(model.metadata.artifact_path)
    assert list(example["Id"]) == [1461, 1462, 1463]


def test_a_house_that_breaks_the_schema_is_refused_with_the_report(registered: Registered) -> None:
    raw = pd.read_csv(registered.paths.raw_test).head(3).assign(OverallQual=[5, 11, 6])
    with pytest.raises(MlflowException, match=r"test\.OverallQual: less_than_or_equal_to\(10\)"):
        mlflow.pyfunc.load_model(LATEST).predict(raw)


@dataclass
class FreshLoad:
    local: Path  # the registered model, downloaded
    modules: dict[str, Path]  # the pipeline modules a fresh interpreter ran to load and predict


@pytest.fixture(scope="module")
def fresh_load(registered: Registered, tmp_path_factory: pytest.TempPathFactory) -> FreshLoad:
    """The model loaded and used by a fresh interpreter in an empty folder, without
    MLFLOW_ALLOW_PICKLE_DESERIALIZATION (MLflow then refuses pickled python models)."""
    folder = tmp_path_factory.mktemp("fresh")
    local = Path(mlflow.artifacts.download_artifacts(LATEST, dst_path=str(folder / "model")))
    script = ("import json, sys, mlflow.pyfunc, pandas as pd; m = mlflow.pyfunc.load_model(sys.argv[1]); "
              "m.predict(pd.read_csv(sys.argv[2]).head(2)); print(json.dumps({n: m.__file__ "
              "for n, m in sys.modules.items() if n.split('.')[0] == 'pipeline'}))")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"}
    shown = subprocess.run([sys.executable, "-c", script, str(local), str(registered.paths.raw_test)],
                           cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    return FreshLoad(local, {k: Path(v) for k, v in json.loads(shown.stdout.splitlines()[-1]).items()})


@pytest.mark.e2e
def test_the_model_loads_no_pickle_and_carries_its_own_code(fresh_load: FreshLoad) -> None:
    files = [p.relative_to(fresh_load.local) for p in fresh_load.local.rglob("*") if p.is_file()]
    assert not [f for f in files if f.suffix in (".pkl", ".pickle", ".joblib", ".pt", ".pth")]
    assert {f.suffix for f in files if f.parts[0] == "artifacts"} == {".json", ".safetensors", ".skops"}
    assert "code_model" in (fresh_load.local / "MLmodel").read_text()  # "models from code" loader
    # The fresh interpreter imported the pipeline from the model's own code folder.
    assert fresh_load.modules["pipeline"] == fresh_load.local / "code" / "pipeline" / "__init__.py"
    assert fresh_load.modules["pipeline.house_prices.final"].is_relative_to(fresh_load.local / "code")


@pytest.mark.e2e
def test_the_pinned_requirements_cover_every_package_the_model_imports(fresh_load: FreshLoad) -> None:
    pinned = (fresh_load.local / "requirements.txt").read_text().split()
    assert [line.split("==")[0] for line in pinned] == list(REQUIREMENTS)
    assert all(len(line.split("==")) == 2 and line.split("==")[1][0].isdigit() for line in pinned)
    # The third-party modules that the pipeline code run by the model imports (pip then
    # brings what those need in turn), each provided by a pinned distribution.
    imported: set[str] = set()
    for module in fresh_load.modules.values():
        for node in ast.walk(ast.parse(module.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            imported |= {n.split(".")[0] for n in names}
    imported -= {*sys.stdlib_module_names, "pipeline", "__future__"}
    assert {"torch", "skops", "safetensors", "pandera", "mlflow"} <= imported  # the check sees the model's imports
    owners = importlib.metadata.packages_distributions()  # module -> the distributions that provide it
    names = {r.lower() for r in REQUIREMENTS}
    assert {m for m in imported if not {d.lower() for d in owners[m]} & names} == set()


def test_kpipe_predict_writes_a_checked_submission_from_any_registered_version(
        registered: Registered, monkeypatch: pytest.MonkeyPatch, clean_frames,
        caplog: pytest.LogCaptureFixture) -> None:
    _, clean_test = clean_frames
    monkeypatch.chdir(registered.paths.root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registered.uri)
    uri = f"models:/{REGISTERED_MODEL}/{registered.version}"
    result = CliRunner().invoke(app, ["predict", "--model-uri", uri])
    written = registered.paths.submission_from(uri)
    assert result.exit_code == 0, result.output
    assert written.name == f"submission-{REGISTERED_MODEL}-{registered.version}.csv"
    assert result.output.strip() == f"wrote {written} from {uri}"
    submission = pd.read_csv(written)
    expected = predict_blend(registered.members, clean_test)
    assert (submission["Id"] == expected["Id"]).all()
    assert _relative_gap(submission["SalePrice"], expected["SalePrice"]) < 1e-6
    assert not registered.paths.submission.exists()  # the DVC output is left alone
    # `kpipe submit` will find the model version that wrote these bytes.
    source = submission_source(registered.paths, "house-prices", sha1_of(written), "house-prices", "log_rmse")
    assert (source.model_name, source.model_version) == (REGISTERED_MODEL, str(registered.version))

    unknown = CliRunner().invoke(app, ["predict", "--model-uri", f"models:/{REGISTERED_MODEL}/99"])
    assert unknown.exit_code == 1
    assert f"cannot load models:/{REGISTERED_MODEL}/99" in unknown.output

    # Without --model-uri it is the `predict` stage, on the saved model folder: the same prices.
    registered.paths.interim_dir.mkdir(exist_ok=True)
    clean_test.to_parquet(registered.paths.clean_test)
    assert CliRunner().invoke(app, ["predict"]).exit_code == 0
    assert _relative_gap(pd.read_csv(registered.paths.submission)["SalePrice"], submission["SalePrice"]) < 1e-6


def test_on_ones_own_store_promote_creates_the_trusted_model_and_champion_loads_it(
        registered: Registered, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(registered.paths.root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registered.uri)
    missing = CliRunner().invoke(app, ["promote", "99"])
    assert missing.exit_code == 1
    assert f"error: cannot promote models:/{REGISTERED_MODEL}/99:" in missing.output

    promoted = CliRunner().invoke(app, ["promote", registered.version])
    assert promoted.exit_code == 0, promoted.output
    assert f"as {REGISTERED_MODEL}-trusted version 1; alias champion now points at it" in promoted.output
    champion = CliRunner().invoke(app, ["predict", "--champion"])
    assert champion.exit_code == 0, champion.output
    assert "note:" not in champion.output  # one's own store: every version is one's own
    written = registered.paths.submission_from(f"models:/{REGISTERED_MODEL}-trusted@champion")
    assert written.name == f"submission-{REGISTERED_MODEL}-trusted-champion.csv"
    source = CliRunner().invoke(app, ["predict", "--model-uri", f"models:/{REGISTERED_MODEL}/{registered.version}",
                                      "-o", str(registered.paths.root / "source.csv")])
    assert source.exit_code == 0, source.output
    assert written.read_bytes() == (registered.paths.root / "source.csv").read_bytes()  # the same model
    both = CliRunner().invoke(app, ["predict", "--champion", "--model-uri", LATEST])
    assert both.exit_code == 1 and "give --model-uri or --champion, not both" in both.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_mlflow_models_serve_answers_invocations_with_the_pipelines_prices(registered: Registered,
                                                                           clean_frames) -> None:
    """The README's command, for real, on a free loopback port: JSON houses in, prices out."""
    _, clean_test = clean_frames
    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "models", "serve", "-m", LATEST, "--env-manager", "local",
         "--host", "127.0.0.1", "-p", str(port), "-w", "1"],
        env={**os.environ, "MLFLOW_TRACKING_URI": registered.uri, "PATH": f"{BIN}:{os.environ['PATH']}"},
        cwd=registered.paths.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read()[-3000:]
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the server did not come up in 120 s"
            time.sleep(0.5)
        rows = pd.read_csv(registered.paths.raw_test).head(5)
        houses = [{k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
                  for row in rows.to_dict(orient="records")]  # gaps left out, as a client sends them
        answer = requests.post(f"{url}/invocations", data=json.dumps({"dataframe_records": houses}),
                               headers={"Content-Type": "application/json"}, timeout=60)
        assert answer.status_code == 200, answer.text
        predicted = pd.DataFrame(answer.json()["predictions"])
        expected = predict_blend(registered.members, clean_test.head(5))
        assert list(predicted["Id"]) == list(rows["Id"])
        assert _relative_gap(predicted["SalePrice"], expected["SalePrice"]) < 1e-6

        refused = requests.post(f"{url}/invocations", timeout=60, headers={"Content-Type": "application/json"},
                                data=json.dumps({"dataframe_records": [{**houses[0], "OverallQual": 11}]}))
        assert refused.status_code == 400 and "OverallQual" in refused.text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
