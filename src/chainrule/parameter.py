"""``Parameter``: a trainable array and the gradient of the loss with respect to it."""

from __future__ import annotations

import numpy as np


class Parameter:
    """A weight array together with its gradient.

    Attributes
    ----------
    data : ndarray
        The value, e.g. a ``Linear`` layer's ``W`` of shape ``(m, n)``.
    grad : ndarray
        ``dL/d(data)``, same shape and dtype as ``data``; zeros until a backward pass, then
        overwritten (not accumulated) by each ``backward``.
    name : str
        The notes' symbol: ``"W"``, ``"W0"`` (offset), ``"G"`` or ``"B"`` (batch norm).
        Weight decay applies to parameters named ``"W"`` only.
    """

    __slots__ = ("data", "grad", "name")

    def __init__(self, data: np.ndarray, name: str):
        self.data = data
        self.grad = np.zeros_like(data)
        self.name = name

    @property
    def decayed(self) -> bool:
        """Does weight decay apply? To weights ``W`` only, not to offsets or batch norm's."""
        return self.name == "W"

    def __repr__(self) -> str:
        return f"Parameter({self.name}, shape={self.data.shape}, dtype={self.data.dtype})"
