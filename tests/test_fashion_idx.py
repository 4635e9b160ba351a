"""The IDX parser accepts exactly well-formed files and names the file in every error."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from pipeline.fashion.idx import IdxError, parse_idx


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of uint8 `array`, written by hand from the format description."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_valid_images_round_trip():
    images = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28) % 256
    parsed = parse_idx(idx_bytes(images), "imgs", expected_ndim=3)
    assert parsed.dtype == np.uint8
    assert parsed.shape == (3, 28, 28)
    np.testing.assert_array_equal(parsed, images)


def test_valid_labels_round_trip():
    labels = np.array([9, 0, 0, 3, 7], dtype=np.uint8)
    np.testing.assert_array_equal(parse_idx(idx_bytes(labels), "labels", 1), labels)


def test_parsed_array_is_writable_and_owns_its_memory():
    parsed = parse_idx(idx_bytes(np.zeros(4, dtype=np.uint8)), "labels", 1)
    parsed[0] = 1  # frombuffer alone would be read-only
    assert parsed[0] == 1


def test_wrong_magic_number_is_an_error_naming_the_file():
    raw = bytearray(idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8)))
    raw[0] = 0x1F  # e.g. a still-gzipped file
    with pytest.raises(IdxError, match=r"train-images.*magic"):
        parse_idx(bytes(raw), "train-images-idx3-ubyte", 3)


def test_unknown_type_code_is_rejected():
    raw = bytearray(idx_bytes(np.zeros(3, dtype=np.uint8)))
    raw[2] = 0x07
    with pytest.raises(IdxError, match="magic"):
        parse_idx(bytes(raw), "f", 1)


def test_truncated_data_is_an_error_not_a_short_dataset():
    raw = idx_bytes(np.zeros((10, 28, 28), dtype=np.uint8))
    with pytest.raises(IdxError, match=r"t10k-images.*truncated"):
        parse_idx(raw[:-100], "t10k-images", 3)


def test_truncated_header_is_an_error():
    raw = idx_bytes(np.zeros((10, 28, 28), dtype=np.uint8))
    with pytest.raises(IdxError, match="truncated inside the header"):
        parse_idx(raw[:9], "x", 3)
    with pytest.raises(IdxError, match="too short"):
        parse_idx(raw[:2], "x", 3)


def test_trailing_bytes_are_an_error():
    raw = idx_bytes(np.zeros(5, dtype=np.uint8)) + b"\x00"
    with pytest.raises(IdxError, match="trailing"):
        parse_idx(raw, "labels", 1)


def test_labels_file_in_place_of_images_is_rejected():
    with pytest.raises(IdxError, match="1 dimension.*expected 3"):
        parse_idx(idx_bytes(np.zeros(5, dtype=np.uint8)), "labels", expected_ndim=3)
