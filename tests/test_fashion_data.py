"""Fetching: the checksum table, both sources, and that failures leave nothing behind."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import serve_directory

from pipeline.common.download import FetchError
from pipeline.common.errors import PipelineError
from pipeline.fashion.arrays import FashionArrays, check_arrays, load_arrays, save_arrays, to_tensors
from pipeline.fashion.fetch import (
    FASHION_FILES,
    ChecksumError,
    fetch_all,
    fetch_file,
    read_arrays,
    sha256_of_gzip,
    verify_file,
)

LABELS = next(f for f in FASHION_FILES if f.key == "test_labels")
CAP = 200 << 20  # params.yaml's fashion_data.max_file_mb


@pytest.fixture
def http_server(fashion_dir: Path) -> Iterator[str]:
    """A loopback HTTP server serving the Debian files, standing in for Zalando's bucket."""
    with serve_directory(fashion_dir) as url:
        yield url


def test_checksum_table_matches_the_installed_files(fashion_dir: Path):
    for file in FASHION_FILES:
        assert sha256_of_gzip(fashion_dir / file.name, CAP) == file.sha256, file.name


def test_checksum_is_of_content_so_recompressed_files_still_verify(fashion_dir, tmp_path):
    recompressed = tmp_path / LABELS.name
    recompressed.write_bytes(gzip.compress(gzip.decompress((fashion_dir / LABELS.name)
                                                           .read_bytes()), compresslevel=1))
    verify_file(recompressed, LABELS.sha256, CAP)


def test_checksum_mismatch_names_the_file_and_leaves_nothing_behind(fashion_dir, tmp_path):
    source = tmp_path / "mirror"
    source.mkdir()
    content = bytearray(gzip.decompress((fashion_dir / LABELS.name).read_bytes()))
    content[-1] ^= 1  # one changed label
    (source / LABELS.name).write_bytes(gzip.compress(bytes(content)))
    raw_dir = tmp_path / "raw"
    with pytest.raises(ChecksumError, match=LABELS.name + r".*expected " + LABELS.sha256):
        fetch_file("local", LABELS, source, "unused", raw_dir / LABELS.name, CAP)
    assert list(raw_dir.iterdir()) == []


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_a_corrupt_gzip_names_the_source_not_a_temporary_file(fashion_dir, tmp_path, damage):
    source = tmp_path / "mirror"
    source.mkdir()
    packed = bytearray((fashion_dir / LABELS.name).read_bytes())
    if damage == "flipped":
        for offset in range(40, 60):  # inside the deflate stream
            packed[offset] ^= 0xFF
    else:
        packed = packed[: len(packed) // 2]
    (source / LABELS.name).write_bytes(bytes(packed))
    raw_dir = tmp_path / "raw"
    with pytest.raises(PipelineError) as err:
        fetch_file("local", LABELS, source, "unused", raw_dir / LABELS.name, CAP)
    message = str(err.value)
    assert str(source / LABELS.name) in message and ".part" not in message
    assert "gzip" in message or "SHA-256" in message
    assert list(raw_dir.iterdir()) == []


def test_a_decompression_bomb_is_refused_at_the_cap(tmp_path):
    bomb = tmp_path / "mirror" / LABELS.name
    bomb.parent.mkdir()
    bomb.write_bytes(gzip.compress(bytes(3 << 20)))  # 3 MB of zeros in a few KB
    with pytest.raises(PipelineError, match="decompresses to more than 1 MB"):
        fetch_file("local", LABELS, bomb.parent, "unused", tmp_path / "raw" / LABELS.name, 1 << 20)


def test_missing_local_file_says_how_to_get_it(tmp_path):
    with pytest.raises(FetchError, match="dataset-fashion-mnist"):
        fetch_file("local", LABELS, tmp_path, "unused", tmp_path / "raw" / LABELS.name, CAP)


def test_local_source_gives_the_whole_dataset(fashion_dir, tmp_path):
    data = read_arrays(fetch_all("local", fashion_dir, "unused", tmp_path / "raw", CAP), CAP)
    assert data.train_images.shape == (60000, 28, 28)
    assert data.test_images.shape == (10000, 28, 28)
    assert data.train_images.dtype == np.uint8 and data.train_labels.dtype == np.uint8
    assert np.bincount(data.train_labels).tolist() == [6000] * 10  # balanced, as published
    assert np.bincount(data.test_labels).tolist() == [1000] * 10


def test_url_source_downloads_and_verifies(http_server, fashion_dir, tmp_path):
    raw_dir = tmp_path / "raw"
    files = fetch_all("url", Path("/nonexistent"), http_server, raw_dir, CAP)
    for file in FASHION_FILES:
        assert files[file.key].read_bytes() == (fashion_dir / file.name).read_bytes()
    assert sorted(p.name for p in raw_dir.iterdir()) == sorted(f.name for f in FASHION_FILES)


def test_url_that_fails_is_an_error_naming_the_url(http_server, tmp_path):
    missing = LABELS.__class__(LABELS.key, "no-such-file.gz", LABELS.sha256, 1)
    raw_dir = tmp_path / "raw"
    with pytest.raises(FetchError, match=rf"{http_server}no-such-file.gz.*404"):
        fetch_file("url", missing, tmp_path, http_server, raw_dir / missing.name, CAP)
    assert list(raw_dir.iterdir()) == []


def test_unreachable_host_is_an_error_naming_the_url(tmp_path):
    url = "http://127.0.0.1:9/"  # discard port: nothing listens
    with pytest.raises(FetchError, match="127.0.0.1:9/t10k-labels"):
        fetch_file("url", LABELS, tmp_path, url, tmp_path / "raw" / LABELS.name, CAP)


def test_npz_round_trip_keeps_uint8(tmp_path):
    rng = np.random.default_rng(0)
    data = FashionArrays(rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
                         rng.integers(0, 10, 5, dtype=np.uint8),
                         rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
                         rng.integers(0, 10, 3, dtype=np.uint8))
    save_arrays(data, tmp_path / "f.npz")
    loaded = load_arrays(tmp_path / "f.npz")
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(data, name))
        assert getattr(loaded, name).dtype == np.uint8
    assert [p.name for p in tmp_path.iterdir()] == ["f.npz"]  # no temp file left


def test_images_and_labels_must_agree():
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        check_arrays(FashionArrays(images, np.zeros(3, dtype=np.uint8), images,
                                   np.zeros(4, dtype=np.uint8)))
    with pytest.raises(ValueError, match="label 10 outside"):
        check_arrays(FashionArrays(images, np.full(4, 10, dtype=np.uint8), images,
                                   np.zeros(4, dtype=np.uint8)))


def test_tensors_are_flat_floats_in_unit_range_and_can_be_limited():
    images = np.full((7, 28, 28), 255, dtype=np.uint8)
    images[0, 0, 0] = 0
    x, y = to_tensors(images, np.arange(7, dtype=np.uint8), max_rows=5)
    assert x.shape == (5, 784) and x.dtype == torch.float32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert y.dtype == torch.int64 and y.tolist() == [0, 1, 2, 3, 4]
