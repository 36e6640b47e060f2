"""Content hashes of arrays: the data fingerprint of a run and the checksum of a cache entry.

Reference: issue 15 (a damaged cache is detected and rebuilt), issue 17 (the data fingerprint in the skip key).
Trap: the bytes alone are not the content: the same bytes under another shape or dtype are other data, so each
array's dtype and shape are hashed before its bytes, and object arrays (lists of words) by their items.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np


def arrays(named: Iterable[tuple[str, Any]], digits: int = 16) -> str:
    """SHA-256 (`digits` hex digits) of (name, value) pairs in the given order: numpy arrays by dtype, shape and
    bytes, anything else by its repr."""
    digest = hashlib.sha256()
    for name, value in named:
        digest.update(name.encode() + b"\0")
        if isinstance(value, np.ndarray):
            array = np.ascontiguousarray(value)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            if array.dtype == object:
                digest.update(repr(array.tolist()).encode())
            else:
                digest.update(memoryview(array.reshape(-1)).cast("B"))
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()[:digits]
