"""Activation functions f, each beside its derivative f′ (notes' Notation 13).

Every activation is elementwise except ``Softmax``. Forward caches what backward needs, and
backward computes ``dLdZ = dLdA * f′(Z)`` (for ``Softmax``, the full Jacobian product).
Where the derivative is cheaper from the output ``A = f(Z)`` (sigmoid, tanh, softmax), the
cache is ``A``. They compute in their input's dtype: float32 in, float32 out.
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from .._validate import check_float, check_matrix
from ..module import Module


def _float(Z: np.ndarray) -> np.ndarray:
    # Integer inputs would make integer outputs (and wrong derivatives): promote them.
    return Z if Z.dtype.kind == "f" else Z.astype(np.float32)


class Identity(Module):
    """f(z) = z, f′(z) = 1. The output layer of a regression network."""

    def forward(self, Z):
        return _float(Z)

    def backward(self, dLdA):
        return dLdA


class Step(Module):
    """f(z) = 1 if z ≥ 0 else 0; f′(z) = 0 (so no gradient flows through it)."""

    def forward(self, Z):
        Z = _float(Z)
        return (Z >= 0).astype(Z.dtype)

    def backward(self, dLdA):
        return np.zeros_like(dLdA)


class ReLU(Module):
    """f(z) = max(0, z); f′(z) = step(z): 1 where z ≥ 0, else 0 (the notes' (6.34) and (6.35)).

    Caches ``step(Z)`` as booleans (``Z ≥ 0``), all that backward needs. f(−∞) = 0 and
    f(NaN) = NaN.
    """

    @kernels.compiled
    def forward(self, Z):
        Z = _float(Z)
        self.mask = Z >= 0  # step(Z)
        return np.maximum(Z, 0)

    @kernels.compiled
    def backward(self, dLdA):
        return dLdA * self.mask


class LeakyReLU(Module):
    """f(z) = z if z ≥ 0 else alpha·z; f′(z) = 1 if z ≥ 0 else alpha.

    Parameters
    ----------
    alpha : float, default 0.01
        Slope for negative z.
    """

    def __init__(self, alpha: float = 0.01):
        self.alpha = check_float("LeakyReLU", "alpha", alpha, 0.0, np.inf)

    def forward(self, Z):
        Z = _float(Z)
        self.slope = np.where(Z >= 0, Z.dtype.type(1), Z.dtype.type(self.alpha))
        return Z * self.slope

    def backward(self, dLdA):
        return dLdA * self.slope

    def config(self):
        return {"alpha": self.alpha}


class Sigmoid(Module):
    """f(z) = σ(z) = 1 / (1 + e^(−z)); f′(z) = σ(z)(1 − σ(z)), computed from the output.

    Evaluated as e^z / (1 + e^z) for z < 0, so e^(−z) never overflows (no warning at
    |z| = 1000) and small outputs keep their relative precision.
    """

    def forward(self, Z):
        Z = _float(Z)
        E = np.exp(-np.abs(Z))  # in (0, 1]: never overflows
        self.A = np.where(Z >= 0, 1, E) / (1 + E)
        return self.A

    def backward(self, dLdA):
        A = self.A
        return dLdA * A * (1 - A)


class Tanh(Module):
    """f(z) = tanh(z); f′(z) = 1 − tanh(z)², computed from the output."""

    def forward(self, Z):
        self.A = np.tanh(_float(Z))
        return self.A

    def backward(self, dLdA):
        return dLdA * (1 - self.A * self.A)


class Softmax(Module):
    """Softmax over each row: a_j = e^(z_j) / Σ_k e^(z_k).

    The row maximum is subtracted first (the result is unchanged, e^z never overflows).
    Backward multiplies by the Jacobian ∂a_i/∂z_j = a_i (δ_ij − a_j) without forming it:
    ``dLdZ = A * (dLdA − Σ_j dLdA_j a_j)``. After ``Softmax`` with the ``NLLM`` loss,
    ``Sequential.backward_from`` skips this and uses the fused ``dLdZ = (A − Y)/n``.
    """

    @kernels.compiled
    def forward(self, Z):
        if Z.ndim != 2:  # rows are samples; say so instead of NumPy's axis error
            check_matrix(repr(self), Z)
        Z = _float(Z)
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        E /= E.sum(axis=1, keepdims=True)
        self.A = E
        return E

    def backward(self, dLdA):
        A = self.A
        return A * (dLdA - np.sum(dLdA * A, axis=1, keepdims=True))
