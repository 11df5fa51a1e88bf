"""The safetensors container: an 8-byte little-endian header length, a JSON header, raw tensors.

The header maps each tensor's name to its dtype, shape and byte range, and holds the file's
metadata (string to string) under ``__metadata__``. :func:`write` and :func:`read` go through
the ``safetensors`` package, which never unpickles; :func:`read` first checks what that package
would have to trust (the header length against the file's size, the header's JSON), so a
hostile file is refused with a message naming its defect.
"""

from __future__ import annotations

import struct

import numpy as np
import safetensors.numpy

from ..errors import InputError
from . import jsontext

MAX_HEADER = 100 * 2**20  # safetensors' own limit; a real header is a few kB
# The dtypes both chainrule and safetensors store (no strings, objects or complex numbers).
TENSOR_DTYPES = frozenset(np.dtype(t) for t in (
    np.float64, np.float32, np.float16, np.int64, np.uint64, np.int32, np.uint32, np.int16,
    np.uint16, np.int8, np.uint8, np.bool_))


def as_tensor(value, what: str) -> np.ndarray:
    """``value`` as a C-contiguous array a file can store; anything else raises
    :class:`~chainrule.errors.InputError` naming ``what``."""
    A = np.ascontiguousarray(value)
    if A.dtype not in TENSOR_DTYPES:
        raise InputError(
            f"save expected {what} as a numeric or boolean array, got array of dtype {A.dtype}"
        )
    return A


def write(metadata: dict[str, str], tensors: dict[str, np.ndarray]) -> bytes:
    """The bytes of a container holding ``tensors`` (C-contiguous) and ``metadata``."""
    return safetensors.numpy.save(tensors, metadata=metadata)


def read(data: bytes, fail) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """``(metadata, tensors)`` of a container's bytes; any defect raises ``fail(problem)``."""
    metadata = _metadata(data, fail)
    try:
        tensors = safetensors.numpy.load(data)
    except Exception as e:  # SafetensorError, an unknown dtype's KeyError, ...
        raise fail(f"not a valid safetensors file ({e})") from None
    return metadata, tensors


def _metadata(data: bytes, fail) -> dict[str, str]:
    """The header's ``__metadata__``, after checking the header length against the file."""
    if len(data) < 8:
        raise fail(f"truncated: {len(data)} bytes, not even a safetensors header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(len(data) - 8, MAX_HEADER):
        raise fail(f"not a safetensors file: header length {n} exceeds the file's "
                   f"{len(data) - 8} remaining bytes (or the {MAX_HEADER}-byte limit)")
    header = jsontext.parse(data[8:8 + n], fail, "header")
    if not isinstance(header, dict):
        raise fail("header is not a JSON object")
    metadata = header.get("__metadata__")
    if metadata is None:
        raise fail("missing metadata (no '__metadata__' in the header)")
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise fail("'__metadata__' must map strings to strings")
    return metadata
