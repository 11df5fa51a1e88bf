"""Exercise: softmax over each row, and the multiclass negative log-likelihood (NLLM).

Softmax, for each row z of Z: (K, n)::

    a_j = e^(z_j) / Σ_k e^(z_k)           subtract the row's maximum from z first: the same a,
                                          and e^z never overflows
    dLdZ = A * (dLdA − Σ_j dLdA_j a_j)    backward: the Jacobian ∂a_i/∂z_j = a_i (δ_ij − a_j)
                                          applied row by row, without forming it

NLLM, with Y one-hot (K, n) (row i has a 1 in the column of sample i's class)::

    L = (1/K) Σ_i −Σ_j Y_ij log A_ij      the mean over the K samples (chainrule's default;
                                          the notes sum over the samples, Definitions 21, 24)
    dLdA = −Y / (A K)                     what backward returns, (K, n)

The notes omit both derivatives (6.5.12, 6.5.13); they are beyond the notes. Check your work
with ``python exercises/check.py softmax nllm``.
"""

import numpy as np

import chainrule as cr


class Softmax(cr.Module):
    def forward(self, Z: np.ndarray) -> np.ndarray:
        # TODO: return the row-wise softmax of Z, keeping A for backward.
        raise NotImplementedError("write Softmax.forward in exercises/softmax_nllm.py")

    def backward(self, dLdA: np.ndarray) -> np.ndarray:
        # TODO: return dLdZ = A * (dLdA − Σ_j dLdA_j a_j), the sum taken over each row.
        raise NotImplementedError("write Softmax.backward in exercises/softmax_nllm.py")


class NLLM:
    """``loss(A, Y)`` returns the mean loss (a float) and keeps A and Y; ``loss.backward()``
    returns dL/dA. ``Y`` is one-hot, of A's shape."""

    def __call__(self, A: np.ndarray, Y: np.ndarray) -> float:
        # TODO: keep A and Y, return (1/K) Σ_i −Σ_j Y_ij log A_ij as a float.
        raise NotImplementedError("write NLLM.__call__ in exercises/softmax_nllm.py")

    def backward(self) -> np.ndarray:
        # TODO: return dL/dA = −Y / (A K), in A's dtype.
        raise NotImplementedError("write NLLM.backward in exercises/softmax_nllm.py")
