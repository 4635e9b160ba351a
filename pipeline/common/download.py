"""Verified downloads, copies and zip extraction: what every pipeline's fetch stage builds on.

Every file is written to a temporary file beside its target, verified by SHA-1, then
renamed into place (atomic on one file system), so a failed or tampered download leaves
nothing behind and a half-written file is never mistaken for data. A target that already
verifies is not fetched again.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import requests

from pipeline.common.console import progress_bar
from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_path, remove_leftovers, sha1_of
from pipeline.common.readers import describe_size

log = logging.getLogger(__name__)


class FetchError(PipelineError, RuntimeError):
    """A source was unreachable, or a file did not match its published hash."""


class Unreachable(FetchError):
    """No answer from the source (offline, unknown host, refused, timed out)."""


class HashMismatch(FetchError):
    """The bytes arrived but are not the published file."""


class UnsafeArchive(FetchError):
    """A zip member would land outside the extraction folder (zip-slip)."""


def verifies(path: Path, sha1: str) -> bool:
    """True when `path` exists and has the expected hash."""
    return path.is_file() and sha1_of(path) == sha1


Check = Callable[[Path, str], None]
"""An extra verification of the staged file (e.g. a hash of decompressed content): called with
the staged path and the name to show in messages (the source, not the temporary file); raises."""



class TooLarge(FetchError):
    """More bytes than the size cap allows: not the expected file (or a decompression bomb)."""


def _check(tmp: Path, sha1: str | None, origin: str, check: Check | None = None) -> None:
    if check is not None:
        check(tmp, origin)
    if sha1 is None:
        return
    actual = sha1_of(tmp)
    if actual != sha1:
        raise HashMismatch(f"SHA-1 mismatch for {origin}: expected {sha1}, got {actual}. "
                           "Nothing was written.")


def _why(exc: requests.RequestException) -> str:
    """The one line of a requests error a user needs (not urllib3's nested reprs)."""
    if isinstance(exc, requests.ConnectionError):
        return "no connection (offline, or the host is unreachable or unknown)"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return str(exc)


def _too_large(origin: str, max_bytes: int) -> TooLarge:
    return TooLarge(f"{origin} is larger than the {describe_size(max_bytes)} cap (params: data.max_file_mb, "
                    "fashion_data.max_file_mb): not the expected file. Nothing was written.")


def _blocks(stream: BinaryIO) -> Iterator[bytes]:
    return iter(lambda: stream.read(1 << 16), b"")


def _copy_capped(blocks: Iterable[bytes], out: BinaryIO, max_bytes: int | None, origin: str,
                 progress: Callable[[int], object] | None = None) -> None:
    """Copy in blocks, stopping as soon as more than `max_bytes` arrived (before writing them)."""
    written = 0
    for block in blocks:
        written += len(block)
        if max_bytes is not None and written > max_bytes:
            raise _too_large(origin, max_bytes)
        out.write(block)
        if progress is not None:
            progress(len(block))


def download(url: str, target: Path, sha1: str | None, timeout: float = 60.0,
             check: Check | None = None, max_bytes: int | None = None) -> Path:
    """Stream `url` into `target` with a progress bar; verify before it becomes visible.

    A declared length over `max_bytes` is refused before anything is written; a stream that
    runs past it is cut off there.
    """
    remove_leftovers(target.parent, target.name)
    with atomic_path(target) as tmp:
        try:
            with requests.get(url, stream=True, timeout=timeout) as response:
                response.raise_for_status()
                total = int(response.headers.get("content-length") or 0) or None
                if max_bytes is not None and total is not None and total > max_bytes:
                    raise _too_large(url, max_bytes)
                with tmp.open("wb") as out, progress_bar(total=total, unit="B", unit_scale=True,
                                                 desc=target.name, leave=False) as bar:
                    _copy_capped(response.iter_content(chunk_size=1 << 16), out, max_bytes, url, bar.update)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Unreachable(f"could not download {url}: {_why(exc)}. Nothing was written") from exc
        except requests.RequestException as exc:
            raise FetchError(f"could not download {url}: {_why(exc)}. Nothing was written") from exc
        _check(tmp, sha1, url, check)
    return target


def copy_verified(source: Path | BinaryIO, target: Path, sha1: str | None, origin: str,
                  check: Check | None = None, max_bytes: int | None = None) -> Path:
    """Copy a local file (or open stream) into `target` through the same verify-then-rename path."""
    if isinstance(source, Path) and not source.is_file():
        raise FetchError(f"{source} not found")
    remove_leftovers(target.parent, target.name)
    with atomic_path(target) as tmp:
        with tmp.open("wb") as out:
            if isinstance(source, Path):
                with source.open("rb") as fh:
                    _copy_capped(_blocks(fh), out, max_bytes, origin)
            else:
                _copy_capped(_blocks(source), out, max_bytes, origin)
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


def extract_verified(archive_path: Path, member: str, target: Path, sha1: str | None,
                     max_bytes: int | None = None) -> Path:
    """Extract one member of a (checked) zip into `target`, verified; a member whose declared or
    actual size passes `max_bytes` is refused."""
    origin = f"{archive_path}!{member}"
    try:
        with zipfile.ZipFile(archive_path) as archive:
            members = safe_members(archive)
            if member not in members:
                raise FetchError(f"{archive_path} has no member '{member}' (has: {', '.join(members)})")
            if max_bytes is not None and members[member].file_size > max_bytes:
                raise _too_large(origin, max_bytes)
            with archive.open(members[member]) as stream:
                return copy_verified(stream, target, sha1, origin, max_bytes=max_bytes)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{archive_path} is not a valid zip archive: {exc}") from exc
