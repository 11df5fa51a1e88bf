"""Whole files or none: the digest that catches a changed bit, and writes that never leave half
a file behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import struct

import numpy as np

from ..errors import InputError


def digest(metadata: dict[str, str], tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 (hex) over every metadata entry but ``sha256`` and every tensor's name, dtype,
    shape and little-endian bytes, each length-prefixed so no two contents share an encoding."""
    h = hashlib.sha256()

    def put(b: bytes | memoryview) -> None:
        h.update(struct.pack("<Q", len(b)))
        h.update(b)

    for key in sorted(metadata):
        if key != "sha256":
            put(key.encode())
            put(metadata[key].encode())
    for name in sorted(tensors):
        A = tensors[name]
        A = np.ascontiguousarray(A, dtype=A.dtype.newbyteorder("<"))
        put(name.encode())
        put(A.dtype.str.encode())
        put(json.dumps(A.shape).encode())
        put(A.reshape(-1).view(np.uint8).data)
    return h.hexdigest()


def fspath(path) -> str:
    """``path`` (a ``str`` or ``os.PathLike``) as a string; anything else is an InputError."""
    try:
        return os.fspath(path)
    except TypeError:
        raise InputError(
            f"expected path as str or os.PathLike, got {type(path).__name__}"
        ) from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either the old file or the new one.

    A temporary file in the same folder is written, flushed and fsync'ed, then renamed over
    ``path`` with ``os.replace`` (atomic on one file system). On any failure, including
    ``KeyboardInterrupt``, the temporary file is removed and an existing ``path`` is untouched.
    """
    path = fspath(path)
    folder, base = os.path.split(os.path.abspath(path))
    fd, tmp = _create_temporary(folder, base)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):  # make the rename durable (POSIX)
        _fsync_folder(folder)


def _create_temporary(folder: str, base: str) -> tuple[int, str]:
    """A new hidden file beside ``base`` in ``folder``: ``(file descriptor, path)``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f".{base[:200]}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp  # the umask applies, as for a plain open()
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue


def _fsync_folder(folder: str) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
