"""One way in for randomness: ``None``, an int seed, a ``numpy.random.Generator`` or a legacy
``numpy.random.RandomState``.

Two functions, for two kinds of consumer:

* :func:`as_generator` gives a ``Generator`` always. A ``RandomState`` becomes a ``Generator``
  on the RandomState's own bit generator (MT19937), so both draw from one stream: the
  RandomState advances as the Generator draws, and the state a checkpoint saves
  (``rng.bit_generator.state``) is that stream's. ``fit``'s shuffling and noise and
  ``Dropout``'s masks use it.
* :func:`as_source` keeps a ``RandomState`` as it is, for draws that must equal a course's
  ``np.random.seed(0)``-style code call for call: ``Linear``'s initial weights are
  ``rng.normal(0, std, (m, n))``, which for a RandomState is its legacy normal.
"""

from __future__ import annotations

import numpy as np

from ._validate import is_int
from .errors import InputError


def as_source(rng) -> np.random.Generator | np.random.RandomState:
    """``rng`` as a ``Generator``, or the ``RandomState`` itself when it is one."""
    if isinstance(rng, np.random.RandomState):
        return rng
    return as_generator(rng)


def as_generator(rng) -> np.random.Generator:
    """Turn ``rng`` (None, an int seed, a Generator or a RandomState) into a ``Generator``.

    A Generator is returned as it is; a RandomState is wrapped, sharing its stream (see the
    module's docstring).
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, np.random.RandomState):
        return np.random.Generator(rng._bit_generator)
    if rng is None:
        return np.random.default_rng()
    if is_int(rng) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise InputError(
        "rng must be None, a non-negative int seed, a numpy.random.Generator or a "
        f"numpy.random.RandomState, got {rng!r}"
    )
