"""`dvc repro` of the fashion stages, in a throw-away copy of this checkout, on a real slice.

Proves what a unit test cannot: dvc.yaml's commands, deps and outs line up with the code,
the matrix expands to all six models, and every declared output is produced.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.fashion.params import FASHION_MODELS

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def copy_checkout(target: Path) -> None:
    """Tracked files plus new, not-ignored ones: what a commit of this tree would hold."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, check=True, capture_output=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def shrink_params(params_file: Path) -> None:
    """A 5000-row, 3-epoch run: seconds per model instead of minutes."""
    params = yaml.safe_load(params_file.read_text())
    params["fashion_train"].update(max_train_rows=5000, max_test_rows=1000, epochs=3,
                                   num_threads=1)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.e2e
def test_dvc_repro_trains_all_six_models(tmp_path, fashion_dir):
    repo = tmp_path / "repo"
    copy_checkout(repo)
    shrink_params(repo / "params.yaml")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(repo), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    result = subprocess.run([str(VENV_BIN / "dvc"), "repro", "train-fashion"], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    assert (repo / "data/fashion/fashion_mnist.npz").exists()
    for model in FASHION_MODELS:
        metrics = json.loads((repo / f"metrics/fashion/{model}.json").read_text())
        assert set(metrics) == {"test_accuracy", "train_accuracy", "train_loss", "epoch_seconds"}
        assert metrics["test_accuracy"] > 0.6, (model, metrics)
        curves = (repo / f"plots/fashion/{model}_curves.csv").read_text().splitlines()
        assert curves[0] == "epoch,train_loss,train_accuracy,test_accuracy,seconds"
        assert len(curves) == 1 + 3
        for png in (f"plots/fashion/{model}_curves.png", f"plots/fashion/{model}_predictions.png"):
            assert (repo / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png

    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert {f"train-fashion@{m}" for m in FASHION_MODELS} | {"fetch-fashion"} <= set(lock["stages"])
    assert (tmp_path / "mlflow.db").exists()
    # Outputs are DVC's, never git's: DVC wrote .gitignore entries for them.
    assert "/fashion_mnist.npz" in (repo / "data/fashion/.gitignore").read_text()
