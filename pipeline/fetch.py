"""Fetch the competition files from the bundled archive, the D2L mirror, Kaggle or a folder, verified.

Every file is written to a temporary file beside its target, verified by SHA-1, then
renamed into place (atomic on one file system), so a failed or tampered download leaves
nothing behind and a half-written file is never mistaken for data. A target that already
verifies is not fetched again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import requests
from tqdm.auto import tqdm

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataFile:
    """One competition file under its two published names, with its published SHA-1."""

    mirror_name: str  # the D2L mirror's name
    kaggle_name: str  # the name inside Kaggle's zip
    sha1: str


HOUSE_PRICES = {
    "train": DataFile("kaggle_house_pred_train.csv", "train.csv", "585e9cc93e70b39160e7921475f9bcd7d31219ce"),
    "test": DataFile("kaggle_house_pred_test.csv", "test.csv", "fa19780a7b011d9b009e8bff8e99922a8ee2eb90"),
}


class FetchError(PipelineError, RuntimeError):
    """A source was unreachable, or a file did not match its published hash."""


SOURCES = ("bundled", "d2l", "kaggle", "local")

OTHER_SOURCES = ("other sources, one -S away: -S data.source=bundled (Kaggle's archive, shipped "
                 "in data/external/), -S data.source=kaggle (the Kaggle API, with credentials), or "
                 "-S data.source=local -S data.local_dir=DIR (a folder holding the zip or the two CSVs)")


class UnsafeArchive(FetchError):
    """A zip member would land outside the extraction folder (zip-slip)."""


def sha1_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verifies(path: Path, sha1: str) -> bool:
    """True when `path` exists and has the expected hash."""
    return path.is_file() and sha1_of(path) == sha1


@contextmanager
def _staged(target: Path) -> Iterator[Path]:
    """A temporary file beside `target`, renamed onto it on success and removed otherwise."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the data private to one user
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


Check = Callable[[Path], None]
"""An extra verification of the staged file (e.g. a hash of decompressed content); raises."""


def _check(tmp: Path, sha1: str | None, origin: str, check: Check | None = None) -> None:
    if check is not None:
        check(tmp)
    if sha1 is None:
        return
    actual = sha1_of(tmp)
    if actual != sha1:
        raise FetchError(f"SHA-1 mismatch for {origin}: expected {sha1}, got {actual}. "
                         "Nothing was written. If you edited the file on purpose, set "
                         "data.verify: false (validation is then the only guard).")


def _why(exc: requests.RequestException) -> str:
    """The one line of a requests error a user needs (not urllib3's nested reprs)."""
    if isinstance(exc, requests.ConnectionError):
        return "no connection (offline, or the host is unreachable or unknown)"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return str(exc)


def download(url: str, target: Path, sha1: str | None, timeout: float = 60.0,
             check: Check | None = None) -> Path:
    """Stream `url` into `target` with a progress bar; verify before it becomes visible."""
    with _staged(target) as tmp:
        try:
            with requests.get(url, stream=True, timeout=timeout) as response:
                response.raise_for_status()
                total = int(response.headers.get("content-length") or 0) or None
                with tmp.open("wb") as out, tqdm(total=total, unit="B", unit_scale=True,
                                                 desc=target.name, leave=False) as bar:
                    for block in response.iter_content(chunk_size=1 << 16):
                        out.write(block)
                        bar.update(len(block))
        except requests.RequestException as exc:
            raise FetchError(f"could not download {url}: {_why(exc)}. Nothing was written; "
                             + OTHER_SOURCES) from exc
        _check(tmp, sha1, url, check)
    return target


def copy_verified(source: Path | BinaryIO, target: Path, sha1: str | None, origin: str,
                  check: Check | None = None) -> Path:
    """Copy a local file (or open stream) into `target` through the same verify-then-rename path."""
    if isinstance(source, Path) and not source.is_file():
        raise FetchError(f"{source} not found")
    with _staged(target) as tmp:
        with tmp.open("wb") as out:
            if isinstance(source, Path):
                with source.open("rb") as fh:
                    shutil.copyfileobj(fh, out)
            else:
                shutil.copyfileobj(source, out)
        _check(tmp, sha1, origin, check)
    return target


def safe_members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Members by name, after refusing any absolute path or `..` component in the archive."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in parts:
            raise UnsafeArchive(f"refusing archive {archive.filename}: member '{info.filename}' "
                                "escapes the extraction folder")
        members[name] = info
    return members


def extract_verified(archive_path: Path, member: str, target: Path, sha1: str | None) -> Path:
    """Extract one member of a (checked) zip into `target`, verified."""
    try:
        with zipfile.ZipFile(archive_path) as archive:
            members = safe_members(archive)
            if member not in members:
                raise FetchError(f"{archive_path} has no member '{member}' (has: {', '.join(members)})")
            with archive.open(members[member]) as stream:
                return copy_verified(stream, target, sha1, f"{archive_path}!{member}")
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{archive_path} is not a valid zip archive: {exc}") from exc


def fetch_house_prices(source: str, targets: dict[str, Path], *, base_url: str, local_dir: Path | None,
                       verify: bool, bundled: Path) -> dict[str, str]:
    """Bring `train` and `test` to their targets from `source`; return what was done per file.

    `bundled` is Kaggle's archive shipped with the project, the default source: a fresh clone
    runs offline, and the published hashes still guard it like any download.
    """
    pending = {key: path for key, path in targets.items()
               if not (verify and verifies(path, HOUSE_PRICES[key].sha1))}
    actions = {key: "already verified" for key in targets if key not in pending}
    if not pending:
        return actions
    if source == "bundled":
        if not bundled.is_file():
            raise FetchError(f"the bundled archive {bundled} is missing from this checkout "
                             f"(restore it with `git checkout -- {bundled}`); " + OTHER_SOURCES)
        for key, path in pending.items():
            extract_verified(bundled, HOUSE_PRICES[key].kaggle_name, path,
                             HOUSE_PRICES[key].sha1 if verify else None)
            actions[key] = f"extracted from the bundled {bundled.name}"
    elif source == "d2l":
        for key, path in pending.items():
            url = base_url.rstrip("/") + "/" + HOUSE_PRICES[key].mirror_name
            download(url, path, HOUSE_PRICES[key].sha1 if verify else None)
            actions[key] = f"downloaded {url}"
    elif source == "local":
        if local_dir is None:
            raise FetchError("data.source is local but data.local_dir is empty: set "
                             "-S data.local_dir=DIR (a folder holding Kaggle's zip or the two CSVs)")
        actions.update(_from_local(local_dir, pending, verify))
    elif source == "kaggle":
        from pipeline.kaggle_api import download_competition_zip

        folder = next(iter(pending.values())).parent
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            archive = download_competition_zip(Path(tmp))
            for key, path in pending.items():
                extract_verified(archive, HOUSE_PRICES[key].kaggle_name, path,
                                 HOUSE_PRICES[key].sha1 if verify else None)
                actions[key] = f"extracted from Kaggle's {archive.name}"
    else:
        raise FetchError(f"unknown data.source '{source}': choose {', '.join(SOURCES)}")
    return actions


def _from_local(folder: Path, pending: dict[str, Path], verify: bool) -> dict[str, str]:
    """A folder holding either the two CSVs (mirror or Kaggle names) or Kaggle's zip."""
    if not folder.is_dir():
        raise FetchError(f"data.local_dir {folder} is not a folder")
    actions = {}
    archives = sorted(folder.glob("*.zip"))
    for key, path in pending.items():
        spec = HOUSE_PRICES[key]
        sha1 = spec.sha1 if verify else None
        csv = next((folder / n for n in (spec.mirror_name, spec.kaggle_name) if (folder / n).is_file()), None)
        if csv is not None:
            copy_verified(csv, path, sha1, str(csv))
            actions[key] = f"copied {csv}"
        elif archives:
            extract_verified(archives[0], spec.kaggle_name, path, sha1)
            actions[key] = f"extracted from {archives[0]}"
        else:
            raise FetchError(f"{folder} holds neither {spec.mirror_name}, {spec.kaggle_name} "
                             "nor the competition zip")
    return actions
