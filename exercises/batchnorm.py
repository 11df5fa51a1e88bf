"""Exercise: batch normalization in training mode, as the notes define it.

For each unit i (column) over the K rows of the batch Z: (K, n), Key Equation 37 and
Definition 41::

    μ_i = (1/K) Σ_j Z_ji        σ_i² = (1/K) Σ_j (Z_ji − μ_i)²
    Z̄ = (Z − μ) / (σ + ε)       A = G * Z̄ + B           G, B: (1, n)

Backward (the notes defer it to their Appendix B, 6.8.3.6; this is its result)::

    dLdG = Σ_rows dLdA * Z̄      dLdB = Σ_rows dLdA
    dLdZ = G / (σ + ε) * (dLdA − mean(dLdA) − c Z̄ * mean(dLdA * Z̄)),   c = (σ + ε) / σ

with ``mean`` over the K rows: it goes through μ and σ too, because they depend on every
row. (``chainrule.BatchNorm(n, eps_inside="std")`` computes the same.) Training mode only:
no running statistics here. Check your work with ``python exercises/check.py batchnorm``.
"""

import numpy as np

import chainrule as cr


class BatchNorm(cr.Module):
    _params = ("G", "B")

    def __init__(self, n: int, *, eps: float = 1e-5, dtype=np.float32):
        self.n, self.eps = n, eps
        self.G = cr.Parameter(np.ones((1, n), dtype), "G")
        self.B = cr.Parameter(np.zeros((1, n), dtype), "B")

    def forward(self, Z: np.ndarray) -> np.ndarray:
        # TODO: μ, σ over the rows; keep Z̄ and σ for backward; return G * Z̄ + B.
        raise NotImplementedError("write BatchNorm.forward in exercises/batchnorm.py")

    def backward(self, dLdA: np.ndarray) -> np.ndarray:
        # TODO: set self.G.grad and self.B.grad, return dLdZ.
        raise NotImplementedError("write BatchNorm.backward in exercises/batchnorm.py")
