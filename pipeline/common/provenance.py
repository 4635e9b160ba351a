"""Where a result came from: the git commit it was computed at, and the DVC experiment.

MLflow runs, Kaggle submission messages and `kpipe runs` all name a result by these facts,
so they are read here once. None of them is ever required: outside a git checkout or outside
`dvc exp run` they are simply absent.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

# What `dvc exp run` puts in its stages' environment (dvc/env.py, set by
# dvc/repo/experiments/queue/base.py for workspace and queued runs alike).
DVC_EXP_NAME = "DVC_EXP_NAME"
DVC_EXP_BASELINE_REV = "DVC_EXP_BASELINE_REV"


@dataclass(frozen=True)
class Commit:
    """A git commit, and whether tracked files differed from it (params edited by `-S` count)."""

    sha: str
    dirty: bool

    @property
    def short(self) -> str:
        """`1a2b3c4` or `1a2b3c4-dirty`: what run names and submission messages show."""
        return self.sha[:7] + ("-dirty" if self.dirty else "")


def git_commit(root: Path) -> Commit | None:
    """HEAD of the checkout at `root`, or None when it is not a git checkout (or git is missing)."""
    try:
        sha = _git(root, "rev-parse", "HEAD")
        dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return Commit(sha, dirty)


def dvc_experiment() -> str | None:
    """The experiment's name when the stage runs under `dvc exp run`, else None."""
    return os.environ.get(DVC_EXP_NAME) or None


def dvc_baseline() -> str | None:
    """The commit a `dvc exp run` experiment is based on, else None."""
    return os.environ.get(DVC_EXP_BASELINE_REV) or None


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()
