"""Training data of any kind: in memory, sparse, or read a window at a time from disk.

``fit`` sorts what it is given into three kinds (:func:`kind`):

- ``"memory"``: a ``numpy.ndarray``, or anything NumPy turns into one (lists, DataFrames).
  Each epoch the rows are put in a uniformly random order (``rng.permutation(n)``).
- ``"sparse"``: a ``scipy.sparse`` matrix or array. It stays sparse (as CSR): only each
  batch's rows are made dense. Shuffled as in memory.
- ``"rows"``: anything else with ``.shape`` and row slicing (``numpy.memmap``,
  ``h5py.Dataset``, ``zarr.Array``, a Dask array, or a :class:`Rows` made by hand). It is read
  through a :class:`Rows`, which holds at most a window of it in memory.

What randomness an epoch over a :class:`Rows` gets
--------------------------------------------------
The rows are cut into *blocks* of consecutive rows: the array's own chunks along axis 0
(zarr, h5py, Dask), else blocks of about 4 MiB (``BLOCK_BYTES``). A *window* is
``window_blocks`` blocks, about 64 MiB (``WINDOW_BYTES``), read together. With
``shuffle=True``, every epoch

1. puts the blocks in a uniformly random order (``rng.permutation(n_blocks)``);
2. reads them a window at a time, in that order;
3. puts the rows of each window in a uniformly random order (``rng.permutation``);

and the batches are consecutive runs of that order, so a batch can span the end of one
window and the start of the next. Every row is seen once per epoch; the order of the windows
and of the rows within each is random; but rows of one block always fall in the same window,
and rows of different windows share a batch only at a window's edge. When the data fit in
one window, the order is ``rng.permutation(n)``, exactly as in memory, so training on a small
memmap gives the same network as on the array in memory. With ``shuffle=False`` the rows
are read in their order. With ``sampling="replacement"`` each batch's rows are drawn
uniformly with replacement from all rows, as in memory, and read where they are (a random
read per row: fine on a memmap or HDF5 file, a chunk read per row on a compressed zarr
store). The same ``rng`` seed gives the same order.

Before the first update, ``fit`` reads a :class:`Rows` once, a window at a time, to check
that every value is finite (and the targets' values). It never holds the whole array, except
when asked to: ``batch_size=None`` (batch gradient descent) makes all rows one batch.
"""

from __future__ import annotations

import sys

import numpy as np

from .errors import InputError, describe

BLOCK_BYTES = 4 << 20    # rows of an unchunked array are read in blocks of about this size
WINDOW_BYTES = 64 << 20  # and held in windows of about this size


def kind(A) -> str:
    """``"memory"``, ``"sparse"`` or ``"rows"``: how ``fit`` reads ``A`` (see the module)."""
    if isinstance(A, Rows):
        return "rows"
    if is_sparse(A):
        return "sparse"
    if isinstance(A, np.memmap):
        return "rows"
    if isinstance(A, (np.ndarray, list, tuple)) or hasattr(A, "iloc"):  # iloc: pandas
        return "memory"
    if hasattr(A, "shape") and hasattr(A, "__getitem__"):
        return "rows"
    return "memory"  # scalars, generators...: np.asarray and its errors decide


def is_sparse(A) -> bool:
    """A ``scipy.sparse`` matrix or array? (Without importing scipy: such an object exists
    only once ``scipy.sparse`` is loaded.)"""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(A)


def n_rows(A, name: str = "X", owner: str = "fit") -> int:
    """Rows of an array-like (``len`` fails on a sparse matrix and is missing on zarr 3)."""
    if not hasattr(A, "shape"):
        return len(A)
    n = A.shape[0] if len(A.shape) else None
    if isinstance(n, (int, np.integer)):
        return int(n)
    if hasattr(A, "compute_chunk_sizes"):
        raise InputError(f"{owner} expected {name} with a known number of rows, got {name} "
                         f"of shape {A.shape}: {name} has an unknown number of rows (a Dask "
                         f"array with unknown chunk sizes: call {name}.compute_chunk_sizes())")
    raise InputError(f"{owner} expected {name} whose .shape[0] is a number of rows, got "
                     f"{describe(A)} of shape {A.shape}")


def as_sparse_matrix(X, name: str, owner: str, dtype) -> object:
    """A sparse ``X`` as a CSR matrix (or array) of ``dtype``, finite and non-empty."""
    if X.ndim != 2 or 0 in X.shape:
        raise InputError(f"{owner} expected {name} as a non-empty 2-D sparse matrix, "
                         f"got sparse matrix of shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise InputError(f"{owner} expected numeric {name}, got sparse matrix of dtype {X.dtype}")
    target = np.dtype(dtype) if dtype is not None else (
        X.dtype if X.dtype.kind == "f" else np.dtype(np.float32))
    X = X.tocsr().astype(target, copy=False)
    bad = ~np.isfinite(X.data)
    if bad.any():
        n_nan = int(np.isnan(X.data).sum())
        what, count = ("NaN", n_nan) if n_nan else ("inf", int(bad.sum()))
        raise InputError(f"{owner} expected finite values in {name}, got {count} {what} "
                         f"value(s) in sparse matrix of shape {X.shape}")
    return X


def check_sample_weight(w, n: int, owner: str) -> np.ndarray:
    """Per-row weights as float64 of shape (n,): finite, ≥ 0, not all 0."""
    try:
        w = np.asarray(w, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"{owner} expected sample_weight as {n} numbers, got {e}") from None
    if w.shape != (n,):
        raise InputError(f"{owner} expected sample_weight of shape ({n},), one per row, got "
                         f"array of shape {w.shape}")
    if not np.isfinite(w).all():
        raise InputError(f"{owner} expected finite sample_weight, got "
                         f"{int((~np.isfinite(w)).sum())} NaN or inf value(s)")
    if (w < 0).any():
        raise InputError(f"{owner} expected sample_weight ≥ 0, got {int((w < 0).sum())} "
                         f"negative value(s), the smallest {w.min():g}")
    if not w.any():
        raise InputError(f"{owner} expected at least one sample_weight > 0, got weights "
                         f"that are all zero")
    return w


def normalised_weights(w: np.ndarray | None, dtype, owner: str,
                       rows: str = "training rows") -> np.ndarray | None:
    """Checked weights divided by their mean, w / w̄, computed in float64: ``fit``'s batch
    losses Σᵢ wᵢ Lᵢ / K are then unbiased for the weighted mean over all rows (see ``fit``).

    None for uniform weights of any size (they are no weights). Refused when a weight over
    the mean does not fit in ``dtype`` (the model's), or when every weight is 0.
    """
    if w is None:
        return None
    top = w.max()
    if top == 0:
        raise InputError(f"{owner} expected at least one sample_weight > 0 among the {rows}, "
                         f"got {len(w)} weights that are all zero")
    w = w / top  # in [0, 1]: the mean cannot overflow, w / w̄ is at most n
    w = w / w.mean()
    if (w == 1).all():
        return None
    largest = float(w.max())
    if dtype is not None and largest > float(np.finfo(dtype).max):
        raise InputError(f"{owner} expected sample_weight whose ratios to their mean fit in "
                         f"the model's {np.dtype(dtype)} (at most {np.finfo(dtype).max:g}), "
                         f"got a weight {largest:g} times the mean")
    return w


def take(A, rows):
    """Rows of an in-memory or sparse array, as a dense ndarray: a slice (a view), or
    gathered by ``take``, which is faster than ``A[idx]``."""
    if isinstance(A, np.ndarray):
        return A[rows] if isinstance(rows, slice) else A.take(rows, axis=0)
    return A[rows].toarray()  # sparse: only these rows are made dense


class Rows:
    """Rows ``start:stop`` of an array-like ``data``, read by blocks and windows.

    ``data`` needs ``.shape`` and ``data[a:b]`` giving an array of shape (b − a, ...); for
    ``sampling="replacement"`` also ``data[sorted int array]``. A ``Rows`` is itself such an
    array-like (``rows[a:b]``, ``rows[idx]`` give ndarrays), so one made by hand, with other
    block and window sizes, can be given to ``fit``.

    Parameters
    ----------
    data : numpy.memmap, h5py.Dataset, zarr.Array, dask.array.Array, ...
    block_rows : int, optional
        Rows per block (the unit shuffled as a whole). Default: the array's chunks along
        axis 0 when they are at most a window, else about ``BLOCK_BYTES``.
    window_blocks : int, optional
        Blocks read together. Default: about ``WINDOW_BYTES`` per window.
    """

    def __init__(self, data, *, block_rows: int | None = None, window_blocks: int | None = None,
                 name: str = "X", owner: str = "fit"):
        shape = getattr(data, "shape", None)
        if shape is None or len(shape) < 1 or not hasattr(data, "__getitem__"):
            raise InputError(f"{owner} expected {name} as an array-like with .shape and row "
                             f"slicing ({name}[a:b]), got {type(data).__name__}")
        self.data, self.name, self.owner = data, name, owner
        self.start, self.stop = 0, n_rows(data, name, owner)
        self.row_shape = tuple(int(s) for s in shape[1:])
        self.convert = None  # a window's rows -> what fit trains on (dtype, target form)
        self.out_dtype = None  # the dtype convert gives, when known
        probe = self._read(0, min(2, self.stop))
        self.source_dtype = probe.dtype
        if probe.dtype.kind not in "biuf":
            raise InputError(f"{owner} expected numeric {name}, got {describe(data)} of dtype "
                             f"{probe.dtype}")
        row_bytes = max(1, probe.dtype.itemsize * int(np.prod(self.row_shape, dtype=np.int64)))
        self.bounds = _block_bounds(data, self.stop, row_bytes, block_rows)
        block_bytes = row_bytes * max(1, self.stop // max(1, len(self.bounds) - 1))
        if window_blocks is None:
            window_blocks = max(1, WINDOW_BYTES // block_bytes)
        if not (isinstance(window_blocks, (int, np.integer)) and window_blocks >= 1):
            raise InputError(f"Rows expected window_blocks ≥ 1, got {window_blocks!r}")
        self.window_blocks = int(window_blocks)

    # -- an array-like ---------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return (self.stop - self.start, *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    @property
    def dtype(self) -> np.dtype:
        return self.out_dtype or self.source_dtype

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, rows):
        """``rows[a:b]`` (a range, step 1) or ``rows[idx]`` (ints, any order, repeats)."""
        if isinstance(rows, slice):
            a, b, step = rows.indices(len(self))
            if step != 1:
                raise InputError(f"{self.owner} reads {self.name} by ranges of step 1, "
                                 f"got {rows}")
            return self._converted(self._read(a, max(a, b)))
        rows = np.asarray(rows)
        unique, inverse = np.unique(rows, return_inverse=True)
        try:
            A = np.asarray(self.data[unique + self.start])
        except Exception as e:  # the array-like's own error, whatever its kind
            raise InputError(
                f"{self.owner} expected {self.name} to be indexable by a sorted int array "
                f"(for sampling='replacement'), got {describe(self.data)} whose "
                f"{self.name}[idx] raised {type(e).__name__}: {e}") from None
        self._check_rows(A, len(unique), f"the sorted rows {self.name}[idx]")
        return self._converted(A if len(unique) == len(rows) and (unique == rows).all()
                               else A.take(inverse.reshape(-1), axis=0))

    def __repr__(self) -> str:
        return (f"Rows({describe(self.data)}, rows {self.start}:{self.stop}, "
                f"{len(self.bounds) - 1} blocks, window_blocks={self.window_blocks})")

    # -- what fit uses ---------------------------------------------------------------------
    def part(self, start: int, stop: int) -> Rows:
        """Rows ``start:stop`` of these (a training or validation split), same blocks."""
        other = object.__new__(Rows)
        other.__dict__.update(self.__dict__)
        other.start, other.stop = self.start + start, self.start + stop
        inside = self.bounds[(self.bounds > start) & (self.bounds < stop)]
        other.bounds = np.concatenate([[0], inside - start, [stop - start]]).astype(np.int64)
        return other

    def with_convert(self, convert, dtype=None) -> Rows:
        """The same rows, each window passed through ``convert`` (giving ``dtype``) as it is
        read."""
        other = self.part(0, len(self))
        other.convert, other.out_dtype = convert, dtype
        return other

    def check(self, check_window) -> None:
        """Read every row once, a window at a time in order: ``check_window(A, a, b)`` on
        each window ``A`` (rows ``a:b``, converted), which raises on a bad value."""
        for ranges in self.windows(None, shuffle=False):
            a, b = ranges[0][0], ranges[-1][1]
            check_window(self.read(ranges), a, b)

    def windows(self, rng, shuffle: bool) -> list[list[tuple[int, int]]]:
        """An epoch's windows: each a list of ``(start, end)`` row ranges, in reading order."""
        n_blocks = len(self.bounds) - 1
        if n_blocks <= self.window_blocks:  # one window: no block order to draw
            return [[(0, len(self))]]
        order = rng.permutation(n_blocks) if shuffle else np.arange(n_blocks)
        return [_ranges(self.bounds, order[i:i + self.window_blocks])
                for i in range(0, n_blocks, self.window_blocks)]

    def read(self, ranges: list[tuple[int, int]]) -> np.ndarray:
        """The rows of ``ranges``, one after the other, converted."""
        parts = _compute([self._lazy(a, b) for a, b in ranges])
        for (a, b), part in zip(ranges, parts):
            self._check_rows(part, b - a, self._slice(a, b))
        A = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return self._converted(A)

    # -- reading -----------------------------------------------------------------------------
    def _lazy(self, a: int, b: int):
        return self.data[self.start + a:self.start + b]

    def _read(self, a: int, b: int) -> np.ndarray:
        try:
            A = _compute([self._lazy(a, b)])[0]
        except Exception as e:  # the array-like's own error, whatever its kind
            raise InputError(f"{self.owner} expected {self.name} to support row slicing "
                             f"{self.name}[a:b], got {describe(self.data)} whose "
                             f"{self.name}[{a}:{b}] raised {type(e).__name__}: {e}") from None
        self._check_rows(A, b - a, self._slice(a, b))
        return A

    def _slice(self, a: int, b: int) -> str:
        return f"a slice of rows {self.start + a}:{self.start + b}"

    def _check_rows(self, A: np.ndarray, n: int, what: str) -> None:
        """What ``.shape`` promised: ``n`` rows of ``row_shape`` in the part ``what`` read."""
        if A.shape != (n, *self.row_shape):
            given = f"{len(A)} rows" if A.ndim and A.shape[1:] == self.row_shape else describe(A)
            raise InputError(
                f"{self.owner} expected {self.name} to hold the rows its .shape "
                f"{tuple(self.data.shape)} promises: {what} expected {n} rows of shape "
                f"{self.row_shape}, got {given}")

    def _converted(self, A: np.ndarray) -> np.ndarray:
        return A if self.convert is None else self.convert(A)


class Dataset:
    """What ``fit`` trains on: ``X``, ``Y`` and row weights ``w`` (or None), each in memory,
    sparse (X) or a :class:`Rows`, and the batches of an epoch over them.

    All in memory (or sparse): each epoch is ``rng.permutation(n)`` cut into the batches
    (beyond the notes, whose pseudocode in 6.6.2 draws each point at random). Any
    :class:`Rows` among them: the first one's blocks and windows decide the order (see the
    module), and the others are read along by the same row ranges.
    ``sampling="replacement"``: each batch's rows are ``rng.integers(0, n, size)``.
    """

    def __init__(self, X, Y, w=None, *, shuffle: bool = True, sampling: str = "epochs"):
        self.sources = [A for A in (X, Y, w)]
        self.n = n_rows(X)
        self.shuffle, self.sampling = shuffle, sampling
        self.rows = next((A for A in (X, Y) if isinstance(A, Rows)), None)

    def epoch(self, rng, batches: list[tuple[int, int]]):
        """Yield ``(Xb, Yb, wb)`` for each ``(start, end)`` of ``batches`` (only its size
        matters with ``"replacement"``); ``wb`` is None without weights."""
        if self.sampling == "replacement":
            for start, end in batches:
                rows = rng.integers(0, self.n, end - start)
                yield tuple(_take_any(A, rows) for A in self.sources)
        elif self.rows is None:
            order = rng.permutation(self.n) if self.shuffle else None
            for start, end in batches:
                rows = slice(start, end) if order is None else order[start:end]
                yield tuple(_take_any(A, rows) for A in self.sources)
        else:
            yield from self._windowed(rng, batches)

    def _windowed(self, rng, batches):
        """Batches cut from the windows one after the other; a batch may span two."""
        windows = iter(self.rows.windows(rng, self.shuffle))
        held, order, at = None, None, 0  # the window's rows, their order, rows used
        for start, end in batches:
            pieces, need = [], end - start
            while need:
                if held is None or at == len(held[0]):
                    held = None  # let the last window go before reading the next
                    held = self._read(next(windows))
                    n = len(held[0])
                    order = rng.permutation(n) if self.shuffle else None
                    at = 0
                k = min(need, len(held[0]) - at)
                rows = slice(at, at + k) if order is None else order[at:at + k]
                pieces.append([_take_any(A, rows) for A in held])
                at, need = at + k, need - k
            if len(pieces) == 1:
                yield tuple(pieces[0])
            else:
                yield tuple(None if parts[0] is None else np.concatenate(parts)
                            for parts in zip(*pieces))

    def _read(self, ranges) -> list:
        """Every source's rows of ``ranges``, in memory."""
        out = []
        for A in self.sources:
            if A is None or isinstance(A, Rows):
                out.append(None if A is None else A.read(ranges))
            else:
                parts = [_take_any(A, slice(a, b)) for a, b in ranges]
                out.append(parts[0] if len(parts) == 1 else np.concatenate(parts))
        return out

    def chunks(self):
        """Yield ``(Xc, Yc, wc)``: all rows, in order, a window (or CHUNK_ROWS) at a time."""
        if self.rows is not None:
            for ranges in self.rows.windows(None, shuffle=False):
                yield tuple(self._read(ranges))
            return
        for a in range(0, self.n, CHUNK_ROWS):
            yield tuple(_take_any(A, slice(a, min(a + CHUNK_ROWS, self.n)))
                        for A in self.sources)


CHUNK_ROWS = 4096  # rows of a sparse matrix made dense at a time to evaluate it


def _take_any(A, rows):
    """``take``, for any source: None stays None, a Rows reads the rows."""
    if A is None:
        return None
    return A[rows] if isinstance(A, Rows) else take(A, rows)


def _compute(parts: list) -> list[np.ndarray]:
    """The parts as ndarrays; Dask arrays computed together, in one call."""
    if any(hasattr(p, "dask") and hasattr(p, "compute") for p in parts):
        import dask

        parts = dask.compute(*parts)
    return [np.asarray(p) for p in parts]


def _block_bounds(data, n: int, row_bytes: int, block_rows: int | None) -> np.ndarray:
    """``[0, b₁, b₂, ..., n]``: where each block starts, and the end."""
    if block_rows is None:
        chunks = getattr(data, "chunks", None)
        first = chunks[0] if isinstance(chunks, tuple) and chunks else None
        if isinstance(first, tuple):  # Dask: the sizes of every chunk along axis 0
            if first and max(first) * row_bytes <= WINDOW_BYTES:
                return np.concatenate([[0], np.cumsum(first)]).astype(np.int64)
        elif isinstance(first, (int, np.integer)) and 0 < first * row_bytes <= WINDOW_BYTES:
            block_rows = int(first)  # zarr, h5py
        block_rows = block_rows or max(1, BLOCK_BYTES // row_bytes)
    if not (isinstance(block_rows, (int, np.integer)) and block_rows >= 1):
        raise InputError(f"Rows expected block_rows ≥ 1, got {block_rows!r}")
    return np.append(np.arange(0, n, int(block_rows), dtype=np.int64), n)


def _ranges(bounds: np.ndarray, blocks: np.ndarray) -> list[tuple[int, int]]:
    """The blocks' row ranges, neighbours in reading order merged into one read."""
    ranges: list[tuple[int, int]] = []
    for b in blocks:
        a, e = int(bounds[b]), int(bounds[b + 1])
        if ranges and ranges[-1][1] == a:
            ranges[-1] = (ranges[-1][0], e)
        else:
            ranges.append((a, e))
    return ranges
