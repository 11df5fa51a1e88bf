"""Checks at the public boundaries (constructors, fit, predict, losses, load): validate once.

Arguments (dtypes, ints, floats in a range), user data (shape, emptiness, NaN and inf) and
optimizer state dicts; each check raises an ``InputError`` that names what was expected and
what was given.
"""

from __future__ import annotations

import math
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


def is_int(value) -> bool:
    """An integer, and not a bool (``True`` is an int to Python, never a count here)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(owner: str, name: str, value, lo: int, *, or_none: bool = False) -> int | None:
    """``value`` as an int ≥ ``lo`` (or None, with ``or_none``)."""
    if value is None and or_none:
        return None
    if not (is_int(value) and value >= lo):
        expected = f"{name} ≥ {lo}" + (" or None" if or_none else " (an int)")
        raise InputError(f"{owner} expected {expected}, got {value!r}")
    return int(value)


def check_positive_int(owner: str, name: str, value) -> int:
    if not (is_int(value) and value >= 1):
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


# -- user data ---------------------------------------------------------------------------

def as_float_matrix(X, name: str, owner: str, dtype=None) -> np.ndarray:
    """``X`` as a non-empty, finite 2-D float array (cast to ``dtype`` when given)."""
    try:
        X = np.asarray(X)
    except (TypeError, ValueError) as e:  # ragged lists and the like
        raise InputError(f"{owner} expected {name} as a 2-D numeric array, got {e}") from None
    if X.dtype.kind not in "biuf":
        raise InputError(f"{owner} expected numeric {name}, got array of dtype {X.dtype}")
    if X.ndim != 2:
        raise InputError(
            f"{owner} expected {name} as a 2-D array (n_samples, n_features), "
            f"got array of shape {X.shape}"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise InputError(f"{owner} expected non-empty {name}, got array of shape {X.shape}")
    target = np.dtype(dtype) if dtype is not None else (
        X.dtype if X.dtype.kind == "f" else np.dtype(np.float32))
    X = X.astype(target, copy=False)
    check_finite(X, name, owner)
    return X


def check_finite(X: np.ndarray, name: str, owner: str) -> None:
    """Raise naming NaN or inf when ``X`` has any non-finite value."""
    if X.dtype.kind == "f" and X.size and not all_finite(X):
        n_nan = int(np.isnan(X).sum())
        what = "NaN" if n_nan else "inf"
        count = n_nan if n_nan else int(np.isinf(X).sum())
        raise InputError(
            f"{owner} expected finite values in {name}, got {count} {what} value(s) "
            f"in array of shape {X.shape}"
        )


def check_same_length(X, Y, owner: str) -> None:
    if len(X) != len(Y):
        raise InputError(
            f"{owner} expected X and Y with the same number of samples, "
            f"got {len(X)} samples in X and {len(Y)} in Y"
        )


def all_finite(W: np.ndarray) -> bool:
    """All of ``W`` finite? Without a temporary array: a dot product of ``W`` with itself (one
    BLAS pass; NaN or inf when any value is, or when the sum of squares overflows, and then
    the exact check decides); min and max for arrays that are not contiguous."""
    if W.flags.c_contiguous or W.flags.f_contiguous:
        w = W.ravel(order="K")  # a view
        with np.errstate(over="ignore", invalid="ignore"):  # overflow only sends us on
            square_sum = np.dot(w, w)
        return math.isfinite(square_sum) or bool(np.isfinite(W).all())
    return math.isfinite(W.min()) and math.isfinite(W.max())


def as_number(value):
    """A 0-d array (as a checkpoint may hold) as its Python number; anything else unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def check_state_dict(owner: str, d, hyper_names: list[str], state_names: tuple[str, ...]):
    """An optimizer's ``state_dict()`` as ``(hyper, t, [per-parameter state])``, its
    structure checked (each hyper-parameter's range is the optimizer's to check)."""
    if not isinstance(d, dict) or set(d) != {"hyper", "t", "state"}:
        got = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise InputError(f"{owner} expected a dict with keys ['hyper', 'state', 't'], got {got}")
    hyper, t, state = d["hyper"], as_number(d["t"]), d["state"]
    if not isinstance(hyper, dict) or sorted(hyper) != sorted(hyper_names):
        got = sorted(hyper) if isinstance(hyper, dict) else type(hyper).__name__
        raise InputError(f"{owner} expected hyper-parameters {sorted(hyper_names)}, got {got}")
    if not (is_int(t) and t >= 0):
        raise InputError(f"{owner} expected t to be an int >= 0, got {t!r}")
    if not isinstance(state, list | tuple):
        raise InputError(f"{owner} expected state as a list of dicts, got {type(state).__name__}")
    return hyper, int(t), [_param_state(owner, i, s, state_names) for i, s in enumerate(state)]


def _param_state(owner: str, i: int, s, state_names) -> dict[str, np.ndarray]:
    names = sorted(state_names)
    if not isinstance(s, dict) or (s and sorted(s) != names):
        got = sorted(s) if isinstance(s, dict) else type(s).__name__
        raise InputError(f"{owner} expected state[{i}] with keys {names} (or empty), got {got}")
    checked = {}
    for name, a in s.items():
        try:
            a = np.array(a)  # a copy: later changes to the dict do not reach the optimizer
        except (TypeError, ValueError):
            a = np.array(None)
        if a.dtype.kind != "f" or not np.isfinite(a).all():
            raise InputError(f"{owner} expected state[{i}][{name!r}] as a finite float array, "
                             f"got array of dtype {a.dtype} and shape {a.shape}")
        checked[name] = a
    return checked


def check_loaded_state(owner: str, loaded: list[dict], params: list) -> None:
    """Does loaded per-parameter state fit ``params``, in number and, each, in shape?"""
    if len(loaded) != len(params):
        raise InputError(f"{owner} expected {len(loaded)} parameters to match the loaded state, "
                         f"got {len(params)}")
    for i, (p, s) in enumerate(zip(params, loaded)):
        for name, a in s.items():
            if a.shape != p.data.shape:
                raise InputError(f"{owner} expected loaded state[{i}][{name!r}] to have the "
                                 f"shape of parameter {i} ({p!r}), got array of shape {a.shape}")
