"""Exercise: the tanh activation, forward and backward.

    A = tanh(Z)                       forward, elementwise
    dLdZ = dLdA * (1 − tanh(Z)²)      backward: the notes' (6.39), times dL/dA (Notation 17's
                                      diagonal ∂A/∂Z, applied elementwise)

Shapes: Z, A, dLdA and dLdZ are all (K, n), one row per sample. Compute in the input's dtype
(float32 in, float32 out). Check your work with ``python exercises/check.py tanh``.
"""

import numpy as np

import chainrule as cr


class Tanh(cr.Module):
    def forward(self, Z: np.ndarray) -> np.ndarray:
        # TODO: compute A = tanh(Z), keep what backward needs (A is enough), return A.
        raise NotImplementedError("write Tanh.forward in exercises/tanh.py")

    def backward(self, dLdA: np.ndarray) -> np.ndarray:
        # TODO: return dLdZ = dLdA * (1 − A²), from what forward kept.
        raise NotImplementedError("write Tanh.backward in exercises/tanh.py")
