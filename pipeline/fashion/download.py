"""Streaming HTTP download into a temporary file beside the target, then an atomic rename.

Beside the target (not in /tmp) so that the final `os.replace` never crosses a file system:
a reader sees either no file or the whole file, never a half-written one.
"""

from __future__ import annotations

import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

log = logging.getLogger(__name__)

_CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """A URL could not be fetched completely."""


def download_file(url: str, target: Path, timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch `url` into `target`; on any failure nothing is left at or beside `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                _stream(url, out, target.name, timeout, progress)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                raise DownloadError(f"cannot download {url}: {exc}") from exc
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the data private to one user
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("downloaded %s -> %s", url, target)
    return target


def _stream(url: str, out: BinaryIO, label: str, timeout: float, progress: bool) -> None:
    """Copy the response body to `out` in chunks, checking it against Content-Length."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s) URLs
        total = response.headers.get("Content-Length")
        size = int(total) if total is not None else None
        received = 0
        with tqdm(total=size, unit="B", unit_scale=True, desc=label,
                  disable=not progress, leave=False) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if size is not None and received != size:
        raise DownloadError(f"cannot download {url}: got {received} of {size} bytes")
