"""An experiment from the D2L mirror over HTTP, in a clone of the repo (the default source, the
bundled archive, is `make`'s, in tests/test_documented_commands.py)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from conftest import edit_params, run_dvc

from pipeline.common.download import sha1_of
from pipeline.common.paths import ProjectPaths
from pipeline.house_prices.dataset import HOUSE_PRICES as HOUSE_PRICES_FILES

pytestmark = pytest.mark.e2e


def test_an_experiment_from_the_d2l_mirror_over_http(repo_copy: Path, http_server: str, mlflow_uri: str) -> None:
    """The mirror as the source, under `dvc exp run`: the files arrive over HTTP, verified, and
    the runs carry the experiment's name (a quick single model: the full default runs above)."""
    edit_params(repo_copy, data__source="d2l", data__base_url=http_server, cv__folds=2, model__kind="linear",
                train__epochs=2, runtime__threads=1)
    result = run_dvc(repo_copy, "exp", "run", "cv", "--name", "from-the-mirror")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "downloaded http://127.0.0.1" in result.stdout + result.stderr
    paths = ProjectPaths(repo_copy)
    assert {k: sha1_of(p) for k, p in (("train", paths.raw_train), ("test", paths.raw_test))} == \
        {k: spec.sha1 for k, spec in HOUSE_PRICES_FILES.items()}

    mlflow.set_tracking_uri(mlflow_uri)
    (cv,) = mlflow.search_runs(experiment_names=["house-prices"], filter_string="tags.stage = 'cv'",
                               output_format="list")
    assert cv.data.tags["dvc.exp.name"] == "from-the-mirror" and cv.data.tags.get("dvc.exp.baseline_rev")
    assert cv.data.tags["mlflow.runName"].startswith("cv linear lr=")
    mlflow.set_tracking_uri(None)
