"""Compiled kernels: one pass over the arrays in place of an optimizer's NumPy lines.

This package is the one place that chooses between an optimizer's plain ``_update`` and a
compiled kernel. ``Optimizer`` asks :func:`find` once per update; a kernel is used only for
the exact class it was written for (a subclass that changes ``_update`` keeps its own
lines), on arrays it can take, and while kernels are enabled. Every kernel gives the same
bits as the lines it replaces (``tests/test_kernels.py``), so which one runs never changes a
result: ``CHAINRULE_KERNELS=0`` in the environment, or :func:`enabled(False) <enabled>`, runs
the NumPy lines everywhere.

A kernel is a function ``kernel(optimizer, W, g, state, eta, out) -> bool``: the update of
``W`` by gradient ``g`` with the optimizer's per-parameter ``state`` and step size ``eta``,
the new weights written to ``out`` (``W`` itself, or a ``ParameterBuffer``'s proposal), and
whether they are all finite.

The kernels are built from C sources in this folder when the package is installed with a C
compiler (``setup.py``); without one this package only ever answers "no kernel".
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np

try:
    from . import _adam
except ImportError:  # built without a C compiler
    _adam = None

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_on = os.environ.get("CHAINRULE_KERNELS", "1") != "0"


def _adam_kernel(opt, W, g, state, eta, out) -> bool:
    """Adam's update (``Adam._update``) in one pass: ``kernels/adam.c``."""
    k, eps_hat = opt._folded(eta)
    return _adam.adam(W, g, state["exp_avg"], state["exp_avg_sq"], out, opt.beta1, opt.beta2,
                      k, eps_hat, W.dtype == np.float64)


# (module, class name) -> (kernel, the state it reads), for the kernels that were built;
# keyed by name so that the optimizers can ask this package without the two importing each
# other, and so that a subclass (which may change _update) is never taken for its parent.
_KERNELS = {} if _adam is None else {
    ("chainrule.optimizers", "Adam"): (_adam_kernel, ("exp_avg", "exp_avg_sq"))}


def find(optimizer, W: np.ndarray, g: np.ndarray, state: dict, out: np.ndarray):
    """The kernel for ``optimizer``'s update of these arrays, or None (then ``_update`` runs).

    The arrays must be C-contiguous, of one float32 or float64 dtype, ``out`` writable.
    """
    entry = _KERNELS.get((type(optimizer).__module__, type(optimizer).__qualname__))
    if entry is None or not _on:
        return None
    kernel, names = entry
    arrays = (W, g, out, *(state[name] for name in names))
    if W.dtype in _FLOATS and out.flags.writeable and all(
            a.dtype == W.dtype and a.flags.c_contiguous for a in arrays):
        return kernel
    return None


def available() -> list[str]:
    """The optimizer classes with a compiled kernel in this installation."""
    return [name for _, name in _KERNELS]


@contextmanager
def enabled(on: bool):
    """Within ``with kernels.enabled(False):`` every optimizer runs its NumPy lines."""
    global _on
    before, _on = _on, bool(on)
    try:
        yield
    finally:
        _on = before
