"""``Linear``: the notes' fully connected layer, Z = A_prev W + W0."""

from __future__ import annotations

import numpy as np

from .. import kernels
from .._rng import as_source
from .._validate import check_dtype, check_matrix, check_positive_int
from ..errors import InputError
from ..init import STD, draw
from ..module import Module
from ..parameter import Parameter

OFFSETS = ("zeros", "random")


class Linear(Module):
    """Fully connected layer from ``m`` inputs to ``n`` outputs.

    Forward, ``A_prev: (n_samples, m) -> Z: (n_samples, n)``::

        Z = A_prev @ W + W0          W: (m, n), W0: (1, n)

    Backward, given ``dLdZ: (n_samples, n)`` (the chain rule, notes' Notation 17)::

        dLdW     = A_prev.T @ dLdZ   (m, n)
        dLdW0    = Σ_rows dLdZ       (1, n)
        dLdA_prev = dLdZ @ W.T       (n_samples, m)

    ``W`` keeps the notes' ``(m, n)`` shape; rows are samples, so the notes' ``Wᵀ A`` becomes
    ``A @ W`` here.

    Parameters
    ----------
    m, n : int
        Number of inputs and outputs.
    init : {"gaussian", "xavier", "he"}, default "gaussian"
        Variance of the normal draw for ``W``: 1/m, 2/(m+n) or 2/m (see ``chainrule.init``).
    offsets : {"zeros", "random"}, default "zeros"
        ``"zeros"``: ``W0`` starts at 0 (beyond the notes). ``"random"``: ``W0`` is drawn from
        the same distribution as ``W``, right after it, as the pseudocode of the notes' 6.6.2
        randomly initialises "the biases in every layer".
    rng : None, int, numpy.random.Generator or numpy.random.RandomState
        A RandomState draws ``rng.normal(0, std, (m, n))`` itself (then ``(1, n)`` for
        random offsets), so ``np.random.seed(0)``-style weights are reproduced.
    dtype : float32 (default) or float64
        The draws are made in float64 and then cast, so both dtypes start from the same
        numbers for the same seed.

    Example
    -------
    >>> layer = Linear(3, 2, rng=0)
    >>> layer(np.ones((5, 3), np.float32)).shape
    (5, 2)
    """

    _params = ("W", "W0")

    def __init__(self, m: int, n: int, *, init: str = "gaussian", offsets: str = "zeros",
                 rng=None, dtype=np.float32):
        m = check_positive_int("Linear", "m", m)
        n = check_positive_int("Linear", "n", n)
        if init not in STD:
            raise InputError(f"Linear expected init in {sorted(STD)}, got {init!r}")
        if offsets not in OFFSETS:
            raise InputError(f"Linear expected offsets in {list(OFFSETS)}, got {offsets!r}")
        dtype = check_dtype("Linear", dtype)
        self.m, self.n, self.init, self.offsets = m, n, init, offsets
        rng = as_source(rng)
        self.W = Parameter(draw(m, n, init, rng, (m, n), dtype), "W")
        if offsets == "zeros":
            self.W0 = Parameter(np.zeros((1, n), dtype), "W0")
        else:
            self.W0 = Parameter(draw(m, n, init, rng, (1, n), dtype), "W0")
        self.A_prev = None

    @kernels.compiled
    def forward(self, A_prev: np.ndarray) -> np.ndarray:
        if getattr(A_prev, "ndim", 0) != 2 or A_prev.shape[1] != self.m:
            check_matrix(repr(self), A_prev, self.m)
        W = self.W.data
        if A_prev.dtype != W.dtype:
            A_prev = A_prev.astype(W.dtype)
        self.A_prev = A_prev  # backward needs it for dLdW
        return A_prev @ W + self.W0.data

    def backward(self, dLdZ: np.ndarray) -> np.ndarray:
        self.backward_params(dLdZ)  # dLdW and dLdW0
        return dLdZ @ self.W.data.T

    @kernels.compiled
    def backward_params(self, dLdZ: np.ndarray) -> None:
        """``dLdW`` and ``dLdW0`` only (``backward`` without ``dLdA_prev``): all that a first
        layer, whose input is the data, needs. Both are written into the existing ``.grad``
        arrays (``out=``), which may be views into one buffer of all gradients."""
        np.matmul(self.A_prev.T, dLdZ, out=self.W.grad)  # dLdW = A_prevᵀ dLdZ
        dLdZ.sum(axis=0, keepdims=True, out=self.W0.grad)  # dLdW0 = Σ_rows dLdZ

    def config(self) -> dict:
        return {"m": self.m, "n": self.n, "init": self.init, "offsets": self.offsets,
                "dtype": self.W.data.dtype.name}

    def __repr__(self) -> str:
        return f"Linear({self.m}, {self.n})"
