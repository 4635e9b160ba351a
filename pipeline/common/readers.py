"""The one way the pipeline reads a table or a compressed file a user or a download supplied.

Whatever is wrong with the bytes (too big, not text, not UTF-8, not CSV, a `;`-separated export,
no rows, a corrupt or truncated gzip) becomes one `UnreadableFile` that names the file and the
problem, instead of a pandas, codec or zlib traceback from deep inside a stage.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from pathlib import Path

import pandas as pd

from pipeline.common.errors import PipelineError

MB = 1 << 20
_SNIFF_BYTES = 64 * 1024


def describe_size(n_bytes: float) -> str:
    """`"50 MB"`, or plain bytes below a megabyte."""
    return f"{n_bytes / MB:.0f} MB" if n_bytes >= MB else f"{n_bytes:.0f} bytes"


class UnreadableFile(PipelineError, ValueError):
    """A file that cannot be read as what the pipeline expects; the message says why."""


def _size_checked(path: Path, max_bytes: int, hint: str) -> int:
    if not path.exists():
        raise UnreadableFile(f"{path} not found{': ' + hint if hint else ''}")
    if not path.is_file():
        raise UnreadableFile(f"{path} is not a file")
    size = path.stat().st_size
    if size > max_bytes:
        raise UnreadableFile(f"{path} is {describe_size(size)}, more than the {describe_size(max_bytes)} limit "
                             "for this file; it is not the file the pipeline expects")
    return size


def read_csv_table(path: Path, *, max_bytes: int, allow_empty: bool = False, hint: str = "") -> pd.DataFrame:
    """A comma-separated UTF-8 table with a header row and (unless `allow_empty`) data rows.

    `hint` is added when the file is missing (e.g. which stage writes it).
    """
    size = _size_checked(path, max_bytes, hint)
    if size == 0:
        raise UnreadableFile(f"{path} is empty: expected a CSV with a header row")
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if b"\0" in head:
        raise UnreadableFile(f"{path} is not a text file (it holds NUL bytes): expected a CSV table")
    try:
        frame = pd.read_csv(path, encoding="utf-8", encoding_errors="strict", low_memory=False)
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                             f"{exc.start}): expected a CSV table") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as exc:
        raise UnreadableFile(f"{path} is not a readable CSV table: {_first_line(exc)}") from exc
    delimiter = _other_delimiter(head, frame)
    if delimiter:
        raise UnreadableFile(f"{path}: the header is separated by {delimiter}, not commas (an export with "
                             "another delimiter?); save it as comma-separated CSV")
    if frame.empty and not allow_empty:
        raise UnreadableFile(f"{path} has a header but no rows")
    return frame


def _other_delimiter(head: bytes, frame: pd.DataFrame) -> str | None:
    """`';'` or `'tabs'` when the header line uses it and pandas found a single column."""
    if frame.shape[1] != 1:
        return None
    header = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    for char, name in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
        if char in header:
            return name
    return None


def read_gzip(path: Path, *, max_bytes: int, shown: str | None = None) -> bytes:
    """The decompressed content of a `.gz` file, refused past `max_bytes` (a decompression bomb).

    `shown` names the file in messages when `path` is a temporary copy of it.
    """
    name = shown or str(path)
    if not path.is_file():
        raise UnreadableFile(f"{name} not found")
    out = io.BytesIO()
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(MB):
                out.write(chunk)
                if out.tell() > max_bytes:
                    raise UnreadableFile(f"{name} decompresses to more than {describe_size(max_bytes)}: "
                                         "not the file the pipeline expects")
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise UnreadableFile(f"{name} is not a readable gzip file ({_first_line(exc)}): corrupt or "
                             "truncated; fetch it again") from exc
    return out.getvalue()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
