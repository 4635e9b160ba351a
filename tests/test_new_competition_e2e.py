"""End to end on a competition the package has never met, as a competitor runs it: the raw Palmer
penguins (tests/public_tables.py; multiclass log-loss) downloaded by `kpipe new` through the
unmodified Kaggle client from the loopback stand-in, `dvc repro`, a checked submission that
beats the class prior on the held-out rows, `mlflow models serve`, and `kpipe submit`.
The regression case, from Kaggle's archive, with its submissions' scores brought back:
tests/test_documented_new_competition.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml
from competition_projects import TOKEN, USER, kpipe, migrated_store, own_store, quicken, repro
from conftest import BIN
from kaggle_standin import KaggleStandIn, write_credentials
from public_tables import penguins

from pipeline.common.paths import ProjectPaths
from pipeline.tabular.competition import read_competition
from pipeline.tabular.metrics import get_metric
from pipeline.tabular.submission import check_submission

pytestmark = pytest.mark.e2e
def serve_and_check(project: Path, uri: str, rows: pd.DataFrame, expected: pd.DataFrame) -> None:
    """docs/new-competition.md's `mlflow models serve`, for real on a free loopback port: test
    rows in, the submission's rows out; a row the inferred schema refuses is a 400."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local", "--host", "127.0.0.1",
         "-p", str(port), "-w", "1"],
        env={**os.environ, **own_store(project), "PATH": f"{BIN}:{os.environ['PATH']}"},
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read()[-3000:]
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the server did not come up in 120 s"
            time.sleep(0.5)
        records = json.loads(rows.to_json(orient="records"))
        answer = requests.post(f"{url}/invocations", json={"dataframe_records": records}, timeout=60)
        assert answer.status_code == 200, answer.text
        served = pd.DataFrame(answer.json()["predictions"]).set_index("id")
        assert np.allclose(served.to_numpy(dtype=float), expected.loc[served.index, served.columns].to_numpy())
        refused = requests.post(f"{url}/invocations", timeout=60,
                                json={"dataframe_records": [{**records[0], "Island": "Atlantis"}]})
        assert refused.status_code == 400 and "Island" in refused.text, refused.text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _zip_of(folder: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for csv in sorted(folder.glob("*.csv")):
            zf.write(csv, csv.name)
    return path


def test_a_multiclass_competition_downloaded_with_the_kaggle_client_and_submitted(tmp_path: Path,
                                                                                mlflow_template: Path) -> None:
    layout = penguins(tmp_path / "kaggle-side")
    truth = layout.truth.set_index("id")["Species"]
    classes = sorted(truth.unique())
    logloss = get_metric("logloss")

    def score(content: bytes) -> tuple[str | None, str | None]:
        frame = pd.read_csv(io.BytesIO(content)).set_index("id").loc[truth.index]
        y = truth.map({c: i for i, c in enumerate(classes)}).to_numpy()
        return f"{logloss.score(y, frame[classes].to_numpy()):.5f}", None

    home = tmp_path / "home"
    home.mkdir()
    write_credentials(home, token=TOKEN)
    archive = _zip_of(layout.folder, tmp_path / "palmer-penguins.zip")
    with KaggleStandIn(tokens={TOKEN: USER}, archive=archive, competition="palmer-penguins", scorer=score,
                       pending_reads=0) as standin:
        env = {"HOME": str(home), **standin.client_env()}
        made = kpipe(tmp_path, "new", "penguins", "--competition", "palmer-penguins", env=env)
        assert made.returncode == 0, made.stdout + made.stderr
        project = tmp_path / "penguins"
        competition = read_competition(project / "competition.yaml")
        assert competition.task == "multiclass" and competition.submission.layout == "class_probabilities"
        assert yaml.safe_load((project / "params.yaml").read_text())["data"]["source"] == "kaggle"
        quicken(project)
        migrated_store(project, mlflow_template)
        repro(project, env)

        paths = ProjectPaths(project)
        submission = pd.read_csv(paths.submission)
        check_submission(submission, competition, truth.index.to_numpy())
        public, _ = score(paths.submission.read_bytes())
        prior = pd.read_csv(layout.folder / "train.csv")["Species"].value_counts(normalize=True)[classes]
        trivial = logloss.score(truth.map({c: i for i, c in enumerate(classes)}).to_numpy(),
                                np.tile(prior.to_numpy(), (len(truth), 1)))
        assert float(public) < 0.3 * trivial, (public, trivial)

        serve_and_check(project, "models:/palmer-penguins/latest", pd.read_csv(layout.folder / "test.csv").head(4),
                        submission.set_index("id"))

        sent = kpipe(project, "submit", "-m", "first", "--poll-interval", "0.1", env=env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        (received,) = standin.submissions
        assert received.content == paths.submission.read_bytes()
        assert f"public score {public}" in sent.stdout
