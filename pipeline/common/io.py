"""Writing outputs: one atomic write for every file and folder, JSON metrics, wide CSV curves.

Every writer goes through `atomic_path` (or `atomic_dir`): the content is written beside the
target under a temporary name and renamed onto it only when complete. A failure or a kill
mid-write leaves the previous file (or none), never a truncated one that DVC, `kpipe submit`
or the next stage would take as good.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.common.errors import PipelineError

PART = ".part"  # the suffix of every temporary file or folder, so leftovers are recognisable


def _mode_for(target: Path) -> int:
    """The target's current mode, or what a plain `open` would give (mkstemp's 0600 is private)."""
    if target.exists():
        return target.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary file beside `target`, renamed onto it when the block succeeds, removed otherwise.

    The block writes the file at the yielded path (and may check it and raise to abandon it).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PART, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """A temporary folder beside `target`, put in its place when the block succeeds.

    The old folder is moved aside first and deleted after the swap, so at every moment
    `target` is either the complete old folder, absent, or the complete new one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=PART, dir=target.parent))
    old = target.with_name(f".{target.name}.old{PART}")
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def remove_leftovers(folder: Path, name: str) -> list[Path]:
    """Delete the temporary files an interrupted write of `folder/name` left (e.g. after kill -9)."""
    removed = []
    if folder.is_dir():
        for leftover in folder.glob(f".{name}.*{PART}"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


class NotWritable(PipelineError, OSError):
    """An output folder the stage cannot write to; raised before any long computation."""


def ensure_writable(*folders: Path) -> None:
    """Create each folder and write and delete a probe file in it, so a read-only or blocked
    output location fails the stage at its start, not after minutes of training."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=PART, dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise NotWritable(f"cannot write to {folder}: {exc.strerror or exc}; nothing was computed") from exc


def write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(data: Mapping[str, Any], path: Path) -> None:
    write_text(json.dumps(data, indent=2) + "\n", path)


def write_columns(index_name: str, columns: Mapping[str, Sequence[float]], path: Path) -> None:
    """One row per step (1-based), one column per named series, for `dvc plots`."""
    length = max(len(v) for v in columns.values())
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([index_name, *columns])
        for i in range(length):
            writer.writerow([i + 1, *(v[i] if i < len(v) else "" for v in columns.values())])


def write_frame(frame: Any, path: Path) -> None:
    """A pandas frame as CSV or Parquet (by suffix), without its index."""
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def sha1_of(path: Path, chunk: int = 1 << 20) -> str:
    """The file's SHA-1, as Kaggle's file lists and `sha1sum` give it."""
    digest = hashlib.sha1()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
