"""The safetensors container: an 8-byte little-endian header length, a JSON header, raw tensors.

The header maps each tensor's name to its dtype, shape and byte range, and holds the file's
metadata (string to string) under ``__metadata__``. :func:`write` and :func:`read_file` go through
the ``safetensors`` package, which never unpickles; :func:`read_file` first checks what that
package would have to trust (that the file is a regular file, the header length against the
file's size and :data:`MAX_HEADER`, the header's JSON, the bytes it declares), so a hostile
file is refused with a message naming its defect.
"""

from __future__ import annotations

import os
import stat
import struct

import numpy as np
import safetensors.numpy

from ..errors import InputError
from . import jsontext

# Bounds on what a file may ask a reader to hold, far above any real model file: a header of a
# 10,000-module model with its optimizer, or a checkpoint with a 10,000-epoch History, is a few
# MB and a few hundred thousand JSON values. A hostile header within them is read in well
# under a second and 200 MB.
MAX_HEADER = 16 * 2**20  # bytes (safetensors' own limit is 100 MB)
MAX_JSON_VALUES = 2_000_000  # commas, lists and objects in the header: items of JSON values
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


def write(metadata: dict[str, str], tensors: dict[str, np.ndarray], fail) -> bytes:
    """The bytes of a container holding ``tensors`` (C-contiguous) and ``metadata``; a header
    beyond what :func:`read_file` reads raises ``fail(problem)``."""
    data = safetensors.numpy.save(tensors, metadata=metadata)
    (n,) = struct.unpack("<Q", data[:8])
    values = _json_values(data[8:8 + n])
    if n > MAX_HEADER or values > MAX_JSON_VALUES:
        raise fail(f"its header would be {n} bytes with about {values} JSON values, beyond the "
                   f"{MAX_HEADER} bytes and {MAX_JSON_VALUES} values a file may have (a "
                   "checkpoint's History of very many epochs?)")
    return data


def read_file(name: str, fail) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """``(metadata, tensors)`` of the container file ``name``; any defect raises
    ``fail(problem)``, a missing file the usual ``FileNotFoundError``.

    Only a regular file is opened (a FIFO would block, ``/dev/zero`` never ends), and no more
    is read than its header, then, once the header is checked, the tensor bytes it declares.
    """
    with _open_regular(name, fail) as f:
        size = os.fstat(f.fileno()).st_size
        start = f.read(8)
        if len(start) < 8:
            raise fail(f"truncated: {len(start)} bytes, not even a safetensors header length")
        (n,) = struct.unpack("<Q", start)
        if n > min(size - 8, MAX_HEADER):
            raise fail(f"not a safetensors file: header length {n} exceeds the file's "
                       f"{size - 8} remaining bytes (or the {MAX_HEADER}-byte limit)")
        header = _header(f.read(n), fail)
        metadata = _metadata(header, fail)
        total = 8 + n + _tensor_bytes(header, fail)
        if size != total:
            raise fail(f"truncated or extended: its safetensors header declares {total} bytes, "
                       f"the file has {size}")
        f.seek(0)
        data = f.read(total)
    if len(data) != total:  # changed while being read
        raise fail(f"truncated: read {len(data)} of the {total} bytes its header declares")
    try:
        tensors = safetensors.numpy.load(data)
    except Exception as e:  # SafetensorError, an unknown dtype's KeyError, ...
        raise fail(f"not a valid safetensors file ({e})") from None
    return metadata, tensors


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _open_regular(name: str, fail):
    """``name`` opened for reading, once it is known to be a regular file: checked before
    opening (so a FIFO without writer is never waited on) and again on the open file (in case
    ``name`` was swapped in between)."""
    _check_regular(os.stat(name).st_mode, fail)
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        _check_regular(os.fstat(fd).st_mode, fail)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _check_regular(mode: int, fail) -> None:
    if not stat.S_ISREG(mode):
        kind = next((what for test, what in _KINDS if test(mode)), "not a regular file")
        raise fail(f"expected a regular file, got {kind}")


def _header(text: bytes, fail) -> dict:
    """The header's JSON object, parsed only if it is within :data:`MAX_JSON_VALUES`."""
    values = _json_values(text)
    if values > MAX_JSON_VALUES:
        raise fail(f"header holds more than {MAX_JSON_VALUES} JSON values (about {values}): "
                   "far more than any model file")
    header = jsontext.parse(text, fail, "header")
    if not isinstance(header, dict):
        raise fail("header is not a JSON object")
    return header


def _json_values(text: bytes) -> int:
    """A bound on the number of values parsing JSON ``text`` makes, counted without parsing
    it: its commas (every item of a list or object but the first follows one) and its opened
    lists and objects."""
    return text.count(b",") + text.count(b"[") + text.count(b"{")


def _tensor_bytes(header: dict, fail) -> int:
    """How many bytes of tensors the header declares: the end of its last byte range."""
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(type(o) is int and o >= 0 for o in offsets)):
            raise fail(f"not a valid safetensors file (tensor {jsontext.short(name)} has no "
                       "'data_offsets' pair of byte positions)")
        end = max(end, *offsets)
    return end


def _metadata(header: dict, fail) -> dict[str, str]:
    """The header's ``__metadata__``: strings to strings."""
    metadata = header.get("__metadata__")
    if metadata is None:
        raise fail("missing metadata (no '__metadata__' in the header)")
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise fail("'__metadata__' must map strings to strings")
    return metadata
