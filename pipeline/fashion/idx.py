"""The IDX format of (Fashion-)MNIST, parsed with numpy and checked byte for byte.

A truncated download must fail here, naming the file, rather than become a silently short
dataset: numpy's `frombuffer` would happily read whatever bytes are there.
"""

from __future__ import annotations

import numpy as np

from pipeline.common.errors import PipelineError

# Third byte of the magic number -> element type (the IDX spec; MNIST uses only 0x08).
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxError(PipelineError, ValueError):
    """An IDX file is malformed: wrong magic number, dimensions, or length."""


def parse_idx(raw: bytes, name: str, expected_ndim: int | None = None) -> np.ndarray:
    """Decode the (already decompressed) bytes of one IDX file into an array.

    `name` is only used in error messages. `expected_ndim` (1 for labels, 3 for images) guards
    against swapping an images file for a labels file.
    """
    if len(raw) < 4:
        raise IdxError(f"{name}: {len(raw)} bytes, too short for an IDX header")
    zero0, zero1, type_code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or type_code not in _DTYPES or ndim == 0:
        raise IdxError(f"{name}: bad IDX magic number 0x{raw[:4].hex()} "
                       "(expected 0x0000 then a type code and a dimension count)")
    if expected_ndim is not None and ndim != expected_ndim:
        raise IdxError(f"{name}: IDX file has {ndim} dimension(s), expected {expected_ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{name}: truncated inside the header ({len(raw)} of {header} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if any(d == 0 for d in shape):
        raise IdxError(f"{name}: IDX dimensions {shape} contain a zero")
    dtype = _DTYPES[type_code]
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "has trailing bytes"
        raise IdxError(f"{name}: {kind}: {len(raw)} bytes, expected {expected} for shape {shape}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)
