"""The OOF library: every member's out-of-fold and test predictions, kept across experiments.

A member's cross-validation is a pure function of its params, the feature options it uses,
the fold plan, the data and the code that computes it. The library stores each result under a
key that hashes exactly those ingredients (`member_key`), so a later `dvc repro`, `kpipe tune`
trial or benchmark that needs the same computation reads it instead of training again, and
`kpipe blend` can choose blends from everything that was ever cross-validated.

Why it is not a DVC output: a read is bit-for-bit the recomputation (the arrays are stored as
float64 `.npy`, and any change to an ingredient, code included, is another key), so it changes
no stage's result and must not make any stage rerun. It is a cache beside the pipeline, like
pip's, in `.kpipe/oof/` at the project root (git- and DVC-ignored; `KPIPE_OOF_LIBRARY` moves
it, e.g. to a team's shared disk).

An entry is a folder `<key>/` holding the arrays and `manifest.json` (member, params, CV
score, commit, time). It is written under a temporary name and renamed into place in one
step, so a writer killed at any moment leaves at most a `.tmp-*` folder, which is never read
and which `prune` removes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ENV = "KPIPE_OOF_LIBRARY"
MANIFEST = "manifest.json"
ARRAYS = ("fold_scores", "history_train", "history_valid", "best_epochs", "oof_repeats", "prices", "test_prices",
          "oof_link", "test_link")  # the last two: a competition project's members (pipeline.tabular.library)
_TMP = ".tmp-"


def digest(value: Any) -> str:
    """SHA-1 of a JSON-able value, with sorted keys: the same ingredients, the same key."""
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=_jsonable).encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot key {type(value).__name__} {value!r}")


def frame_digest(*frames: Any) -> str:
    """SHA-1 of data frames as the computation sees them: columns, dtypes and every value
    (pandas' own row hashes), so an edited cell, an extra row or a retyped column is a miss."""
    import pandas as pd

    sha = hashlib.sha1()
    for frame in frames:
        if frame is None:
            sha.update(b"none")
            continue
        sha.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
        sha.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return sha.hexdigest()


def source_digest(paths: tuple[Path, ...], versions: Mapping[str, str]) -> str:
    """A version of a member's code: the bytes of the modules that compute it, and the versions
    of the libraries that do (a new torch or LightGBM may round differently)."""
    sha = hashlib.sha1()
    for path in sorted(paths):
        sha.update(path.name.encode())
        sha.update(path.read_bytes())
    sha.update(json.dumps(dict(versions), sort_keys=True).encode())
    return sha.hexdigest()


@dataclass(frozen=True)
class Entry:
    """One stored cross-validation: its key, manifest and (read on demand) arrays."""

    key: str
    path: Path
    manifest: dict[str, Any]

    @property
    def score(self) -> float:
        """What entries are ranked by, smaller first: the CV mean, or, for a metric where
        greater is better (a competition project's AUC), its `loss` (the negated mean)."""
        cv = self.manifest["cv"]
        return float(cv.get("loss", cv["mean"]))

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.load(self.path / f"{name}.npy", allow_pickle=False) for name in ARRAYS
                if (self.path / f"{name}.npy").exists()}


class OOFLibrary:
    """Entries under one folder; several processes (tuning workers) may read and write at once."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def for_project(cls, project_root: Path) -> OOFLibrary:
        """The project's library: `$KPIPE_OOF_LIBRARY`, else `.kpipe/oof/` at its root."""
        override = os.environ.get(ENV)
        return cls(Path(override) if override else project_root / ".kpipe" / "oof")

    def _folder(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str) -> Entry | None:
        """The entry stored under `key`, or None. A folder without its manifest is no entry."""
        folder = self._folder(key)
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, json.JSONDecodeError):
            return None  # unreadable: treated as absent and recomputed (then overwritten)
        return Entry(key, folder, manifest)

    def put(self, key: str, manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Entry:
        """Store an entry atomically: written in a temporary folder, renamed into place whole.

        When another writer stored the same key first, its entry stays (the same ingredients
        give the same arrays) and this one is discarded.
        """
        unknown = sorted(set(arrays) - set(ARRAYS))
        if unknown:
            raise ValueError(f"unknown OOF library arrays {unknown}; expected {ARRAYS}")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f"{_TMP}{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            for name, values in arrays.items():
                with (tmp / f"{name}.npy").open("wb") as fh:
                    np.save(fh, np.asarray(values), allow_pickle=False)
                    fh.flush()
                    os.fsync(fh.fileno())
            (tmp / MANIFEST).write_text(json.dumps({"key": key, **manifest}, indent=2, default=_jsonable))
            final = self._folder(key)
            if self.get(key) is not None:  # another writer was first: keep its entry
                shutil.rmtree(tmp, ignore_errors=True)
                return self.get(key) or self.put(key, manifest, arrays)
            if final.exists():
                shutil.rmtree(final, ignore_errors=True)  # the unreadable leftovers of an older entry
            os.rename(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if self.get(key) is None:
                raise
        entry = self.get(key)
        assert entry is not None
        return entry

    def entries(self) -> list[Entry]:
        """Every entry, best CV score first."""
        found = [self.get(p.name) for p in self._folders()]
        return sorted((e for e in found if e is not None), key=lambda e: (e.score, e.key))

    def _folders(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return iter(())
        return (p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(_TMP))

    def prune(self, *, keep: int | None = None, older_than_days: float | None = None,
              stale_tmp_s: float = 3600.0) -> list[str]:
        """Remove entries beyond the `keep` best (per fold plan and data) and entries older than
        `older_than_days`, plus temporary folders of writers dead for `stale_tmp_s`; returns the
        keys removed. With neither limit, only the leftovers of killed writers go."""
        removed: list[str] = []
        now = time.time()
        groups: dict[tuple[str, str], list[Entry]] = {}
        for entry in self.entries():
            group = (entry.manifest.get("plan_key", ""), entry.manifest.get("data_key", ""))
            groups.setdefault(group, []).append(entry)
        for group in groups.values():
            for rank, entry in enumerate(group):
                old = older_than_days is not None and now - float(entry.manifest.get("created", now)) > \
                    older_than_days * 86400
                if (keep is not None and rank >= keep) or old:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed.append(entry.key)
        if self.root.is_dir():
            for tmp in self.root.glob(f"{_TMP}*"):
                if now - tmp.stat().st_mtime > stale_tmp_s:
                    shutil.rmtree(tmp, ignore_errors=True)
        return removed
