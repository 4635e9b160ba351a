"""Where a result came from: the git commit it was computed at, and the DVC experiment.

MLflow runs, Kaggle submission messages and `kpipe runs` all name a result by these facts,
so they are read here once. None of them is ever required: outside a git checkout or outside
`dvc exp run` they are simply absent.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

# What `dvc exp run` puts in its stages' environment (dvc/env.py, set by
# dvc/repo/experiments/queue/base.py for workspace and queued runs alike).
DVC_EXP_NAME = "DVC_EXP_NAME"
DVC_EXP_BASELINE_REV = "DVC_EXP_BASELINE_REV"


@dataclass(frozen=True)
class Commit:
    """A git commit, and whether tracked files differed from it (params edited by `-S` count).

    The files DVC's stages write (committed metrics and curves, dvc.lock) do not count: DVC
    deletes a stage's outputs before running it, so at a stage's start they always differ from
    the commit, whatever the inputs. What makes a result differ from the commit's is its code,
    params or committed data, the other tracked files."""

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
        changed = _changed_files(_git(root, "status", "--porcelain", "-z", "--untracked-files=no", strip=False))
    except (OSError, subprocess.SubprocessError):
        return None
    outputs = _stage_outputs(root)
    return Commit(sha, any(not any(fnmatch.fnmatch(path, o) or path.startswith(f"{o}/") for o in outputs)
                           for path in changed))


def _changed_files(porcelain_z: str) -> list[str]:
    """The paths of `git status --porcelain -z`: `XY path` entries, a rename's source as an entry of its own."""
    return [entry[3:] if entry[2:3] == " " else entry for entry in porcelain_z.split("\0") if entry]


def _stage_outputs(root: Path) -> list[str]:
    """dvc.lock and every path dvc.yaml's stages write (`${...}` of a matrix as a wildcard)."""
    try:
        stages = yaml.safe_load((root / "dvc.yaml").read_text()).get("stages", {})
    except (OSError, yaml.YAMLError, AttributeError):
        return ["dvc.lock"]
    declared = [next(iter(o)) if isinstance(o, dict) else o for stage in stages.values() if isinstance(stage, dict)
                for kind in ("outs", "metrics", "plots") for o in (stage.get("do", stage).get(kind) or [])]
    return ["dvc.lock", *(re.sub(r"\$\{[^}]*\}", "*", str(path)).rstrip("/") for path in declared)]


def dvc_experiment() -> str | None:
    """The experiment's name when the stage runs under `dvc exp run`, else None."""
    return os.environ.get(DVC_EXP_NAME) or None


def dvc_baseline() -> str | None:
    """The commit a `dvc exp run` experiment is based on, else None."""
    return os.environ.get(DVC_EXP_BASELINE_REV) or None


def _git(root: Path, *args: str, strip: bool = True) -> str:
    """git's output; `strip=False` keeps the leading blank a `--porcelain` status line starts with."""
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=30).stdout
    return out.strip() if strip else out
