"""Whole files or none: the digest that catches a changed bit, and writes that never leave half
a file behind."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import stat
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

    A temporary file in the same folder (``.<name>.<pid>.<random>.tmp``) is written, flushed
    and fsync'ed, then renamed over ``path`` with ``os.replace`` (atomic on one file system).
    On any failure, including ``KeyboardInterrupt``, the temporary file is removed and an
    existing ``path`` is untouched. A process killed while writing cannot remove its own:
    the next write of the same ``path`` removes those whose process is no longer running.
    An ``OSError`` names ``path`` (not the temporary file).

    A symbolic link is kept: the file it points to is the one replaced. An existing target
    that is not a regular file is refused before anything is written: a folder raises
    ``IsADirectoryError``; a FIFO, a device (``/dev/null``) or a socket raises
    :class:`~chainrule.errors.InputError` (writing into a FIFO waits for a reader forever,
    and renaming over a device would remove the device itself).
    """
    path = fspath(path)
    target = os.path.realpath(path)
    _check_target(target, path)
    folder, base = os.path.split(target)
    _remove_stale_temporaries(folder, base)
    try:
        fd, tmp = _create_temporary(folder, base)
    except OSError as e:
        raise _naming(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _naming(e, path) from None
        raise
    with contextlib.suppress(OSError, AttributeError):  # make the rename durable (POSIX)
        _fsync_folder(folder)


def _check_target(target: str, path: str) -> None:
    """Refuse an existing ``target`` (``path``, its links resolved) that is no regular file."""
    try:
        mode = os.stat(target).st_mode
    except OSError:  # none yet (or unreachable: creating the temporary file will say)
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file")
        raise InputError(f"{path}: expected a regular file to write, got {kind}, a special file "
                         "(a FIFO would wait for a reader, a device be replaced)")


def _naming(e: OSError, path: str) -> OSError:
    """``e`` as the same kind of error about ``path``: a full disk or a file-size limit
    (``write``'s errors carry no file name) then says which file could not be written."""
    if e.errno is None:
        return e
    return OSError(e.errno, e.strerror or str(e), path)  # OSError(errno, ...) picks the subclass


_TEMPORARY = re.compile(r"(\d+)\.[0-9a-f]{12}\.tmp")  # after ".<name>.": "<pid>.<random>.tmp"


def _create_temporary(folder: str, base: str) -> tuple[int, str]:
    """A new hidden file beside ``base`` in ``folder``: ``(file descriptor, path)``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        name = f".{base[:200]}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
        tmp = os.path.join(folder, name)
        try:
            return os.open(tmp, flags, 0o666), tmp  # the umask applies, as for a plain open()
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue


def _remove_stale_temporaries(folder: str, base: str) -> None:
    """Delete the temporary files of earlier writes of ``base`` whose process has died (a
    kill -9 during a write leaves one); those of running processes are theirs to finish."""
    prefix = f".{base[:200]}."
    try:
        with os.scandir(folder) as entries:
            stale = [e.path for e in entries if e.name.startswith(prefix)
                     and (m := _TEMPORARY.fullmatch(e.name[len(prefix):]))
                     and not _is_running(int(m.group(1)))]
    except OSError:  # an unlistable folder: writing may still work, and will say if not
        return
    for tmp in stale:
        with contextlib.suppress(OSError):  # another writer may have removed it already
            os.unlink(tmp)


def _is_running(pid: int) -> bool:
    """Is process ``pid`` alive? Anything but a sure "no" counts as yes."""
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) would terminate a process on Windows
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: alive, another user's
        return True
    return True


def _fsync_folder(folder: str) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
