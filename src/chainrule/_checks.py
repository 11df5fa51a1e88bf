"""Argument checks shared by constructors (validate once, at the boundary)."""

from __future__ import annotations

import numbers

import numpy as np

from .errors import InputError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(owner: str, dtype) -> np.dtype:
    # np.dtype(None) is float64, and a dtype compares equal to None when it is float64: test
    # for None first, or an unknown name such as "banana" would pass as float64.
    try:
        dt = None if dtype is None else np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in FLOAT_DTYPES:
        raise InputError(f"{owner} expected dtype float32 or float64, got {dtype!r}")
    return dt


def check_positive_int(owner: str, name: str, value) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise InputError(f"{owner} expected {name} to be a positive int, got {value!r}")
    return int(value)


def check_float(owner: str, name: str, value, lo: float, hi: float, *, hi_open=False) -> float:
    """``value`` as a float in ``[lo, hi]`` (or ``[lo, hi)`` with ``hi_open``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and np.isfinite(value) and lo <= value and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"[{lo}, {hi})" if hi_open else f"[{lo}, {hi}]"
        raise InputError(f"{owner} expected {name} in {interval}, got {value!r}")
    return float(value)


def check_matrix(owner: str, A, n_features: int | None = None) -> None:
    """Raise unless ``A`` is a 2-D array (with ``n_features`` columns when given)."""
    shape = getattr(A, "shape", None)
    if shape is None or len(shape) != 2:
        raise InputError(
            f"{owner} expected a 2-D array (n_samples, n_features), got "
            + (f"array of shape {tuple(shape)}" if shape is not None else type(A).__name__)
        )
    if n_features is not None and shape[1] != n_features:
        raise InputError(
            f"{owner} expected input with {n_features} features, got array of shape {shape}"
        )
