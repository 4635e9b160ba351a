"""The import contract ([tool.importlinter] in pyproject.toml): each package of `pipeline` imports only
from the layers below it, and no two packages import each other. import-linter reads every import,
function-level and TYPE_CHECKING ones included, so an import hidden inside a function breaks the
contract as surely as one at the top of a module."""

from __future__ import annotations

import subprocess

import pytest
from conftest import BIN, ROOT


def _lint(contract: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache", "--contract", contract], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("contract", ["layers", "acyclic"])
def test_the_packages_keep_the_import_contract(contract: str) -> None:
    """`layers`: common < tabular (the core) < submissions, tuning < the competitions and pipelines
    < projects < stages < cli, every package of pipeline in one layer. `acyclic`: no cycle between
    pipeline's packages. Imports that a later step of issue 29 removes are listed in the contract's
    ignore_imports, and an entry whose import has gone fails the contract too."""
    done = _lint(contract)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
