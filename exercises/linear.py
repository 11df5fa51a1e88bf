"""Exercise: the fully connected layer, forward and backward.

With one row per sample (A_prev: (K, m)) and W: (m, n), W0: (1, n) as in chainrule::

    Z = A_prev @ W + W0                   forward: (K, n)
    dLdW = A_prev.T @ dLdZ                (m, n), the shape of W
    dLdW0 = dLdZ summed over the rows     (1, n), the shape of W0
    dLdA_prev = dLdZ @ W.T                (K, m), what backward returns

(The notes write one column per sample, Z = Wᵀ A + W0, and dL/dW = A (∂L/∂Z)ᵀ in
Notation 16; transposing both sides gives the rows above.) backward must *overwrite*
``self.W.grad`` and ``self.W0.grad`` with this batch's gradients (``self.W.grad[...] = ...``),
never add to them. Check your work with ``python exercises/check.py linear``.
"""

import numpy as np

import chainrule as cr


class Linear(cr.Module):
    _params = ("W", "W0")

    def __init__(self, m: int, n: int, *, rng=0, dtype=np.float32):
        self.m, self.n = m, n
        W = np.random.default_rng(rng).normal(0.0, m ** -0.5, (m, n)).astype(dtype)
        self.W = cr.Parameter(W, "W")
        self.W0 = cr.Parameter(np.zeros((1, n), dtype), "W0")

    def forward(self, A_prev: np.ndarray) -> np.ndarray:
        # TODO: cast A_prev to W's dtype, keep it for backward, return Z = A_prev W + W0.
        raise NotImplementedError("write Linear.forward in exercises/linear.py")

    def backward(self, dLdZ: np.ndarray) -> np.ndarray:
        # TODO: set self.W.grad and self.W0.grad, return dLdA_prev.
        raise NotImplementedError("write Linear.backward in exercises/linear.py")
