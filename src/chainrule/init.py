"""Weight initialisation for ``Linear(m, n)``: normal draws with a spread set by m and n.

======== ================== ==================================================
name     Var W              why
======== ================== ==================================================
gaussian 1 / m              keeps Var Z ≈ Var A_prev (the notes, Concept 20, say only
                            "a Gaussian"; the variance 1/m is beyond the notes)
xavier   2 / (m + n)        Glorot and Bengio: balances forward and backward
he       2 / m              He et al.: makes up for ReLU zeroing half the units
======== ================== ==================================================

Every draw is ``rng.normal(0, std, shape)`` in float64, then cast to the layer's dtype, so
float32 and float64 layers built from the same seed start from the same numbers, and a
legacy ``RandomState`` gives what ``np.random.seed(s); np.random.normal(0, std, shape)`` gives.
"""

from __future__ import annotations

import numpy as np

# Standard deviations, written as the powers a course's code writes (m ** -0.5, not
# sqrt(1 / m), which can differ in the last bit).
STD = {
    "gaussian": lambda m, n: m ** -0.5,
    "xavier": lambda m, n: (2.0 / (m + n)) ** 0.5,
    "he": lambda m, n: (2.0 / m) ** 0.5,
}


def draw(m: int, n: int, init: str, rng, shape: tuple, dtype) -> np.ndarray:
    """An array of ``shape`` drawn from N(0, STD[init](m, n)²) by ``rng`` (a Generator or a
    RandomState), in float64 and then cast to ``dtype``."""
    return rng.normal(0.0, STD[init](m, n), shape).astype(dtype, copy=False)
