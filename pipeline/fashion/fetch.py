"""Fashion-MNIST files: the one table of their checksums, fetching and verifying them.

Checksums are SHA-256 of the *decompressed* IDX bytes. Debian's `dataset-fashion-mnist`
recompresses the files, so hashes of the `.gz` bytes differ from Zalando's while the data is
identical; hashing the content accepts both sources and still catches any changed byte.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.common.download import FetchError, copy_verified, download
from pipeline.common.errors import PipelineError
from pipeline.fashion.arrays import FashionArrays, check_arrays
from pipeline.fashion.idx import parse_idx

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class FashionFile:
    """One of the four IDX files: its name, what it holds, and its content checksum."""

    key: str
    name: str
    sha256: str  # of the decompressed bytes
    ndim: int


FASHION_FILES: tuple[FashionFile, ...] = (
    FashionFile("train_images", "train-images-idx3-ubyte.gz",
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 3),
    FashionFile("train_labels", "train-labels-idx1-ubyte.gz",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 1),
    FashionFile("test_images", "t10k-images-idx3-ubyte.gz",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 3),
    FashionFile("test_labels", "t10k-labels-idx1-ubyte.gz",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 1),
)


class ChecksumError(PipelineError, ValueError):
    """A fetched file's content does not match the checksum table."""


def sha256_of_gzip(path: Path) -> str:
    """SHA-256 of the decompressed content of a `.gz` file, streamed (no full copy in memory)."""
    digest = hashlib.sha256()
    with gzip.open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, expected_sha256: str) -> None:
    """Raise `ChecksumError` naming `path` unless its decompressed content has the expected hash."""
    try:
        actual = sha256_of_gzip(path)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ChecksumError(f"{path}: not a readable gzip file ({exc})") from exc
    if actual != expected_sha256:
        raise ChecksumError(f"{path}: SHA-256 of decompressed content is {actual}, "
                            f"expected {expected_sha256}")


def fetch_file(source: Literal["local", "url"], file: FashionFile, local_dir: Path, url: str,
               target: Path) -> Path:
    """Copy or download one file to `target`, which appears only once its checksum matches.

    It is staged beside `target` first; a failed copy, download or check removes the staged
    file, so a failure leaves nothing behind that a later run could mistake for data.
    """
    def check(staged: Path) -> None:
        verify_file(staged, file.sha256)

    if source == "local":
        if not (local_dir / file.name).is_file():
            raise FetchError(f"{local_dir / file.name} not found: install Debian's package "
                             "(sudo apt-get install dataset-fashion-mnist), or download the files "
                             "from fashion_data.url with -S fashion_data.source=url")
        return copy_verified(local_dir / file.name, target, None, str(local_dir / file.name), check)
    return download(url.rstrip("/") + "/" + file.name, target, None, check=check)


def fetch_all(source: Literal["local", "url"], local_dir: Path, url: str, raw_dir: Path) -> dict[str, Path]:
    """All four files into `raw_dir`, verified; returns key -> path."""
    fetched = {}
    for file in FASHION_FILES:
        fetched[file.key] = fetch_file(source, file, local_dir, url, raw_dir / file.name)
        log.info("fetched and verified %s", file.name)
    return fetched


def read_arrays(files: dict[str, Path]) -> FashionArrays:
    """Parse the four IDX files and check that images and labels agree."""
    by_key = {f.key: f for f in FASHION_FILES}
    arrays = {key: parse_idx(gzip.decompress(path.read_bytes()), str(path), by_key[key].ndim)
              for key, path in files.items()}
    data = FashionArrays(**{k: arrays[k].astype(np.uint8, copy=False) for k in by_key})
    check_arrays(data)
    return data
