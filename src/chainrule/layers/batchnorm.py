"""``BatchNorm``: normalise each unit over the batch, then scale by G and shift by B."""

from __future__ import annotations

import numpy as np

from .._validate import check_dtype, check_float, check_matrix, check_positive_int
from ..errors import InputError
from ..module import Module
from ..parameter import Parameter
from ._rows import mean_rows, sum_rows

EPS_INSIDE = ("variance", "std")


class BatchNorm(Module):
    """Batch normalisation of ``n`` units (notes' section 6.8.3).

    Training forward, ``Z: (b, n) -> (b, n)``, per unit over the b rows of the batch::

        μ = mean(Z),  σ² = mean((Z − μ)²)            (biased variance)
        Z̄ = (Z − μ) / s,   s = sqrt(σ² + eps)        (eps_inside="variance")
                           s = σ + eps               (eps_inside="std": Key Equation 37)
        A = G * Z̄ + B                                G, B: (1, n)

    Backward goes through μ and σ² too (they depend on every row)::

        dLdG = Σ_rows dLdA * Z̄,   dLdB = Σ_rows dLdA
        dLdZ̄ = dLdA * G
        dLdZ = (dLdZ̄ − mean(dLdZ̄) − c Z̄ * mean(dLdZ̄ * Z̄)) / s
             = G / s * (dLdA − mean(dLdA) − c Z̄ * mean(dLdA * Z̄))

    with ``c = 1`` for ``"variance"`` and ``c = s / σ`` for ``"std"``: from
    ``∂Z̄_k/∂Z_j = (δ_jk − 1/b)/s − Z̄_k (∂s/∂Z_j)/s`` and ``∂s/∂Z_j = (Z_j − μ)/(b σ)`` when
    s = σ + eps, but ``(Z_j − μ)/(b s)`` when s = sqrt(σ² + eps). (The notes defer this
    backward to an appendix, 6.8.3.6.) A unit with σ = 0 has Z̄ = 0 and takes ``c = 0``.

    Running statistics, updated in each training forward::

        running = (1 − momentum) * running + momentum * batch_statistic

    with the *unbiased* batch variance (b/(b−1) σ²) for ``running_var``. Note the
    convention: ``momentum`` is the weight of the *new* batch (as in PyTorch), the opposite
    of the usual momentum in optimizers. Eval mode normalises with the running statistics,
    which backward treats as constants. A training batch needs at least 2 rows.

    ``mean`` and ``Σ_rows`` are over the b rows of the batch, taken by ``mean_rows`` and
    ``sum_rows`` (see ``_rows``).

    Parameters
    ----------
    n : int
        Number of units (features).
    eps : float, default 1e-5
    momentum : float in [0, 1], default 0.1
    eps_inside : {"variance", "std"}, default "variance"
        Where eps goes: ``sqrt(σ² + eps)`` (as PyTorch, beyond the notes) or the notes'
        ``σ + eps`` (Key Equation 37, Definition 41), also with the running statistics:
        ``sqrt(running_var) + eps``.
    dtype : float32 (default) or float64
    """

    _params = ("G", "B")

    def __init__(self, n: int, *, eps: float = 1e-5, momentum: float = 0.1,
                 eps_inside: str = "variance", dtype=np.float32):
        self.n = check_positive_int("BatchNorm", "n", n)
        self.eps = check_float("BatchNorm", "eps", eps, 0.0, np.inf)
        self.momentum = check_float("BatchNorm", "momentum", momentum, 0.0, 1.0)
        if eps_inside not in EPS_INSIDE:
            raise InputError(f"BatchNorm expected eps_inside in {list(EPS_INSIDE)}, "
                             f"got {eps_inside!r}")
        self.eps_inside = eps_inside
        dtype = check_dtype("BatchNorm", dtype)
        self.G = Parameter(np.ones((1, n), dtype), "G")
        self.B = Parameter(np.zeros((1, n), dtype), "B")
        self.running_mean = np.zeros((1, n), dtype)
        self.running_var = np.ones((1, n), dtype)

    def forward(self, Z):
        if Z.ndim != 2 or Z.shape[1] != self.n:
            check_matrix(repr(self), Z, self.n)
        dtype = self.G.data.dtype
        if Z.dtype != dtype:
            Z = Z.astype(dtype)
        if self.training:
            b = Z.shape[0]
            if b < 2:
                raise InputError(
                    f"{self!r} in training mode needs a batch of at least 2 rows to compute "
                    f"batch statistics, got array of shape {Z.shape}"
                )
            mu = mean_rows(Z)
            D = Z - mu
            var = mean_rows(D * D)  # biased: over b
            m = self.momentum
            self.running_mean[...] = (1 - m) * self.running_mean + m * mu
            self.running_var[...] = (1 - m) * self.running_var + (m * b / (b - 1)) * var
        else:
            D = Z - self.running_mean
            var = self.running_var
        eps = dtype.type(self.eps)
        if self.eps_inside == "variance":
            self.inv_std = 1 / np.sqrt(var + eps)  # 1 / sqrt(σ² + eps)
        else:
            sigma = np.sqrt(var)
            self.inv_std = 1 / (sigma + eps)  # 1 / (σ + eps), Key Equation 37
            # c = s / σ of the backward (0 where σ = 0, where Z̄ = 0 too)
            self.c = np.divide(sigma + eps, sigma, out=np.zeros_like(sigma), where=sigma > 0)
        self.Zbar = D * self.inv_std
        return self.G.data * self.Zbar + self.B.data

    def backward(self, dLdA):
        Zbar, inv_std, G = self.Zbar, self.inv_std, self.G.data
        dLdG = sum_rows(dLdA * Zbar, out=self.G.grad)  # Σ_rows dLdA * Z̄
        dLdB = sum_rows(dLdA, out=self.B.grad)  # Σ_rows dLdA
        if not self.training:  # running statistics are constants
            return dLdA * (G * inv_std)
        # The formula above with G, constant over the rows, taken out of the bracket.
        b = len(dLdA)
        mean_dLdA = dLdB / b  # mean(dLdA) = Σ_rows dLdA / b
        mean_dLdA_Zbar = dLdG / b  # mean(dLdA * Z̄)
        if self.eps_inside == "std":  # ∂σ/∂Z brings 1/σ where sqrt(σ² + eps) brings 1/s
            mean_dLdA_Zbar = self.c * mean_dLdA_Zbar
        return G * inv_std * (dLdA - mean_dLdA - Zbar * mean_dLdA_Zbar)

    def config(self):
        return {"n": self.n, "eps": self.eps, "momentum": self.momentum,
                "eps_inside": self.eps_inside, "dtype": self.G.data.dtype.name}

    def __repr__(self):
        return f"BatchNorm({self.n})"

