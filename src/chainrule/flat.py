"""One contiguous buffer for all of a model's weights, and one for their gradients.

``Sequential`` stores its parameters this way: each ``Parameter.data`` (and ``.grad``) is a
view into a flat array, in the order of ``parameters()``. Nothing in the modules changes (they
read ``self.W.data`` and write ``self.W.grad`` in place as before), but an optimizer step, a
gradient norm or a copy of all weights becomes a handful of NumPy calls on one long array
instead of a handful per parameter — what makes small networks fast in Python.

Anything may rebind a ``Parameter``'s ``.data`` (``gradcheck`` casts copies to float64, for
example); :func:`flat_view` then no longer recognises the layout and callers fall back to
working parameter by parameter, with the same results.
"""

from __future__ import annotations

import numpy as np

from .parameter import Parameter


def flatten(params: list[Parameter]) -> None:
    """Move ``params``' values and gradients into two contiguous buffers (views in order).

    Does nothing when there is nothing to gain or the layout cannot be shared: fewer than two
    parameters, mixed dtypes, or a parameter listed twice (shared weights).
    """
    if len(params) < 2 or len({id(p) for p in params}) != len(params):
        return
    dtypes = {p.data.dtype for p in params}
    if len(dtypes) != 1 or next(iter(dtypes)).kind != "f":
        return
    dtype = dtypes.pop()
    size = sum(p.data.size for p in params)
    data, grad = np.empty(size, dtype), np.empty(size, dtype)
    for p, view, gview in zip(params, views_like(params, data), views_like(params, grad)):
        view[...] = p.data
        gview[...] = p.grad
        p.data, p.grad = view, gview


def views_like(params: list[Parameter], buffer: np.ndarray) -> list[np.ndarray]:
    """Views into the 1-D ``buffer``, one per parameter in order, each of its shape: the
    layout of :func:`flatten` (``fit`` lays out its second weight buffer with it)."""
    views, start = [], 0
    for p in params:
        views.append(buffer[start:start + p.data.size].reshape(p.data.shape))
        start += p.data.size
    return views


def flat_view(params: list[Parameter]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(data, grad)``: the flat buffers behind ``params`` if they are laid out by
    :func:`flatten` (each a view, in order, covering the whole buffer), else None."""
    if not params:
        return None
    data, grad = params[0].data.base, params[0].grad.base
    if data is None or grad is None or data.ndim != 1 or grad.shape != data.shape:
        return None
    at, itemsize = 0, data.itemsize
    d0, g0 = data.ctypes.data, grad.ctypes.data
    for p in params:
        W, G = p.data, p.grad
        if (W.base is not data or G.base is not grad or not W.flags.c_contiguous
                or not G.flags.c_contiguous or W.ctypes.data != d0 + at * itemsize
                or G.ctypes.data != g0 + at * itemsize):
            return None
        at += W.size
    return (data, grad) if at == data.size else None
