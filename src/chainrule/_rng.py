"""One way in for randomness: an int seed, a ``numpy.random.Generator`` or ``None``."""

from __future__ import annotations

import numpy as np

from ._validate import is_int
from .errors import InputError


def as_generator(rng) -> np.random.Generator:
    """Turn ``rng`` (None, an int seed or a Generator) into a ``numpy.random.Generator``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if is_int(rng) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise InputError(
        f"rng must be None, a non-negative int seed or a numpy.random.Generator, got {rng!r}"
    )
