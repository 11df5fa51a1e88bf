"""Weight initialisation for ``Linear(m, n)``: normal draws with a variance set by m and n.

======== ================== ==================================================
name     Var W              why
======== ================== ==================================================
gaussian 1 / m              the notes' choice: keeps Var Z ≈ Var A_prev
xavier   2 / (m + n)        Glorot and Bengio: balances forward and backward
he       2 / m              He et al.: makes up for ReLU zeroing half the units
======== ================== ==================================================
"""

from __future__ import annotations

import numpy as np

VARIANCE = {
    "gaussian": lambda m, n: 1.0 / m,
    "xavier": lambda m, n: 2.0 / (m + n),
    "he": lambda m, n: 2.0 / m,
}


def init_weights(m: int, n: int, init: str, rng: np.random.Generator, dtype) -> np.ndarray:
    """An ``(m, n)`` weight matrix drawn from N(0, VARIANCE[init](m, n))."""
    std = np.sqrt(VARIANCE[init](m, n))
    W = rng.standard_normal((m, n), dtype=np.dtype(dtype).type)
    W *= std
    return W
