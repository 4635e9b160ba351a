"""Fashion-MNIST files: the one table of their checksums, fetching and verifying them.

Checksums are SHA-256 of the *decompressed* IDX bytes. Debian's `dataset-fashion-mnist`
recompresses the files, so hashes of the `.gz` bytes differ from Zalando's while the data is
identical; hashing the content accepts both sources and still catches any changed byte.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.common.download import FetchError, copy_verified, download
from pipeline.common.errors import PipelineError
from pipeline.common.readers import read_gzip
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


def sha256_of_gzip(path: Path, max_bytes: int, shown: str | None = None) -> str:
    """SHA-256 of the decompressed content of a `.gz` file (refused past `max_bytes`)."""
    return hashlib.sha256(read_gzip(path, max_bytes=max_bytes, shown=shown)).hexdigest()


def verify_file(path: Path, expected_sha256: str, max_bytes: int, shown: str | None = None) -> None:
    """Raise unless the decompressed content has the expected hash; messages name `shown`
    (the source) rather than `path` when `path` is a temporary copy."""
    actual = sha256_of_gzip(path, max_bytes, shown)
    if actual != expected_sha256:
        raise ChecksumError(f"{shown or path}: SHA-256 of decompressed content is {actual}, "
                            f"expected {expected_sha256}")


def fetch_file(source: Literal["local", "url"], file: FashionFile, local_dir: Path, url: str,
               target: Path, max_bytes: int) -> Path:
    """Copy or download one file to `target`, which appears only once its checksum matches.

    It is staged beside `target` first; a failed copy, download or check removes the staged
    file, so a failure leaves nothing behind that a later run could mistake for data.
    """
    def check(staged: Path, origin: str) -> None:
        verify_file(staged, file.sha256, max_bytes, shown=origin)

    if source == "local":
        if not (local_dir / file.name).is_file():
            raise FetchError(f"{local_dir / file.name} not found: install Debian's package "
                             "(sudo apt-get install dataset-fashion-mnist), or download the files "
                             "from fashion_data.url with -S fashion_data.source=url")
        return copy_verified(local_dir / file.name, target, None, str(local_dir / file.name), check,
                             max_bytes=max_bytes)
    return download(url.rstrip("/") + "/" + file.name, target, None, check=check, max_bytes=max_bytes)


def fetch_all(source: Literal["local", "url"], local_dir: Path, url: str, raw_dir: Path,
              max_bytes: int) -> dict[str, Path]:
    """All four files into `raw_dir`, verified; returns key -> path."""
    fetched = {}
    for file in FASHION_FILES:
        fetched[file.key] = fetch_file(source, file, local_dir, url, raw_dir / file.name, max_bytes)
        log.info("fetched and verified %s", file.name)
    return fetched


def read_arrays(files: dict[str, Path], max_bytes: int) -> FashionArrays:
    """Parse the four IDX files and check that images and labels agree."""
    by_key = {f.key: f for f in FASHION_FILES}
    arrays = {key: parse_idx(read_gzip(path, max_bytes=max_bytes), str(path), by_key[key].ndim)
              for key, path in files.items()}
    data = FashionArrays(**{k: arrays[k].astype(np.uint8, copy=False) for k in by_key})
    check_arrays(data)
    return data
