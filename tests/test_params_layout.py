"""params.yaml is kept in the layout `dvc exp run -S` writes, so an experiment's diff is its own line.

`dvc exp run -S key=value` rewrites the whole file through DVC's `apply_overrides` (ruamel.yaml:
block lists, `''` for the empty string, flow mappings wrapped at 80 columns, and a comment lost
below a section that ends on a list). A file already in that layout comes back unchanged but for
the one value; these tests call the very function `-S` calls, on the files a user has: the
repository's params.yaml, the one `kpipe new` writes, and the one `kpipe tune --apply` writes.
"""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from dvc.utils.hydra import apply_overrides

from pipeline.common.params_edit import write_params
from pipeline.tabular.params import DEFAULTS
from pipeline.tabular.scaffold import PARAMS_HEADER


def _changed_lines(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), n=0, lineterm="")
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def _set(path: Path, tmp_path: Path, *overrides: str) -> str:
    """What `dvc exp run -S <overrides>` leaves in a copy of `path`."""
    copy = tmp_path / "params.yaml"
    shutil.copy(path, copy)
    apply_overrides(copy, list(overrides))
    return copy.read_text()


def _scalar_leaves(node: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, object]]:
    """Every scalar a `-S key=value` can address (keys with dots, like tune.space's, cannot be)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if "." not in str(key) and "[" not in str(key):
                yield from _scalar_leaves(value, (*path, str(key)))
    elif not isinstance(node, list):
        yield ".".join(path), node


def _another(value: object) -> str:
    if isinstance(value, bool):
        return str(not value).lower()
    if isinstance(value, int):
        return str(value + 1)
    if isinstance(value, float):
        return repr(value * 2 + 0.5)
    return "changed"


@pytest.fixture(scope="module")
def new_project_params(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """params.yaml as `kpipe new` writes it (pipeline/tabular/scaffold.py)."""
    path = tmp_path_factory.mktemp("new") / "params.yaml"
    path.write_text(PARAMS_HEADER + yaml.safe_dump(DEFAULTS, sort_keys=False))
    return path


@pytest.fixture(params=["repository", "kpipe new"])
def params_file(request: pytest.FixtureRequest, new_project_params: Path) -> Path:
    return ROOT / "params.yaml" if request.param == "repository" else new_project_params


def test_a_set_param_that_changes_nothing_leaves_the_file_byte_for_byte(params_file: Path, tmp_path: Path) -> None:
    seed = yaml.safe_load(params_file.read_text())["base"]["seed"]
    assert _set(params_file, tmp_path, f"base.seed={seed}") == params_file.read_text()


def test_every_scalar_set_param_changes_exactly_its_own_line(params_file: Path, tmp_path: Path) -> None:
    text = params_file.read_text()
    leaves = list(_scalar_leaves(yaml.safe_load(text)))
    assert len(leaves) > 20
    for key, value in leaves:
        changed = _changed_lines(text, _set(params_file, tmp_path, f"{key}={_another(value)}"))
        assert len(changed) == 2, (key, changed)  # one line out, one line in
        assert f"{key.split('.')[-1]}:" in changed[0], (key, changed)  # its own line (or one-line mapping)


def test_every_comment_of_params_yaml_survives_a_set_param(tmp_path: Path) -> None:
    path = ROOT / "params.yaml"
    after = _set(path, tmp_path, "train.lr=0.002")
    assert [line.split("#", 1)[1] for line in path.read_text().splitlines() if "#" in line] == \
        [line.split("#", 1)[1] for line in after.splitlines() if "#" in line]


def test_tune_apply_writes_the_same_layout(tmp_path: Path) -> None:
    """`kpipe tune --apply` and `kpipe blend` write through `write_params`: a value and the ensemble's
    members changed, then a `-S` of something else changes just that line."""
    written = tmp_path / "written" / "params.yaml"
    written.parent.mkdir()
    members = [{"model.kind": "mlp"}, {"model.kind": "sklearn", "sklearn.estimator": "svr", "sklearn.svr.C": 10.0}]
    write_params(ROOT / "params.yaml", {"train.lr": 0.003, "model.members": members, "model.hidden": [128, 64]},
                 written)
    text = written.read_text()
    assert _set(written, tmp_path, "base.seed=42") == text
    assert len(_changed_lines(text, _set(written, tmp_path, "train.epochs=10"))) == 2
