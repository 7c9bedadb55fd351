"""Read IDX files (the original MNIST format), gzip-compressed or not, and name the file when it is bad."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from kerasdl.errors import DataError

_UINT8 = 0x08


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file into a uint8 array shaped as its header says; truncation or corruption raises DataError."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            blob = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt or truncated file ({err})") from err
    if len(blob) < 4 or blob[0] != 0 or blob[1] != 0 or blob[2] != _UINT8:
        raise DataError(f"{path}: not an IDX file of uint8 (bad magic number {blob[:4].hex()})")
    ndim = blob[3]
    header = 4 + 4 * ndim
    if len(blob) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(blob, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(blob) - header != expected:
        raise DataError(
            f"{path}: truncated or corrupt IDX file: header says shape {shape} ({expected} bytes) "
            f"but {len(blob) - header} bytes follow"
        )
    return np.frombuffer(blob, dtype=np.uint8, offset=header).reshape(shape)
