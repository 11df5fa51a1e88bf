"""``Dropout``: the notes' regularizer that zeroes each unit with probability p in training."""

from __future__ import annotations

import math

import numpy as np

from .._rng import as_generator
from .._validate import check_float
from ..errors import InputError
from ..module import Module

SCALINGS = ("inverted", "notes")


class Dropout(Module):
    """Drop each unit with probability ``p`` during training (notes' 6.8.2, Definition 33).

    Training forward, ``A: (n_samples, k) -> (n_samples, k)``, with a fresh mask per call::

        keep = (u ≥ p),  u ~ U[0, 1)        a unit is dropped with probability p
        A_out = A * mask;                   backward: dLdA = dLdA_out * mask

    ``scaling`` says where the factor ``1 − p`` (the probability of keeping a unit) goes:

    ==============  ==========================  ====================
    scaling         training mask               eval
    ==============  ==========================  ====================
    ``"inverted"``  ``keep / (1 − p)``          identity
    ``"notes"``     ``keep``                    ``A_out = (1 − p) A``
    ==============  ==========================  ====================

    The two agree in expectation. ``"notes"`` is Clarification 34's rule: once trained,
    scale by the fraction of units that were active. Clarification 34 says "multiply all the
    weights by p", but with Definition 33's p (the probability of being turned off) the
    active fraction is 1 − p, which is what is used here. Scaling this module's output by
    ``1 − p`` is scaling the next ``Linear``'s weights ``W`` (not its ``W0``) by it.

    ``u ≥ p`` is drawn by ``_keep`` (32 random bits per unit).

    Parameters
    ----------
    p : float in [0, 1)
        Probability that a unit is dropped (the notes' p).
    scaling : {"inverted", "notes"}, default "inverted"
    rng : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of the masks, kept as ``.rng`` (a Generator; for a RandomState, one on the
        RandomState's own stream, whose masks are ``rng.random_sample(shape) >= p``) so
        checkpoints can store its state.
    """

    def __init__(self, p: float, *, scaling: str = "inverted", rng=None):
        self.p = check_float("Dropout", "p", p, 0.0, 1.0, hi_open=True)
        if scaling not in SCALINGS:
            raise InputError(f"Dropout expected scaling in {list(SCALINGS)}, got {scaling!r}")
        self.scaling = scaling
        self.rng = as_generator(rng)
        self.mask = None

    def forward(self, A):
        if A.dtype.kind != "f":  # an integer mask cannot hold 1/(1 − p): promote, as activations do
            A = A.astype(np.float32)
        if self.p == 0.0 or (not self.training and self.scaling == "inverted"):
            self.mask = None
            return A
        if not self.training:  # the notes' test time: every unit, scaled by 1 − p
            self.mask = A.dtype.type(1 - self.p)
            return A * self.mask
        keep = _keep(self.rng, A.shape, self.p)  # u ≥ p
        if self.scaling == "notes":
            self.mask = keep.astype(A.dtype)
        else:
            self.mask = keep * A.dtype.type(1 / (1 - self.p))
        return A * self.mask

    def backward(self, dLdA):
        return dLdA if self.mask is None else dLdA * self.mask

    def config(self):
        return {"p": self.p, "scaling": self.scaling}


def _keep(rng: np.random.Generator, shape: tuple, p: float) -> np.ndarray:
    """``u ≥ p`` for ``u ~ U[0, 1)`` of the given shape: the units that dropout keeps.

    ``u = k / 2³²`` with ``k`` uniform 32-bit integers read straight off the generator's
    64-bit output, two per draw, so ``u ≥ p`` is ``k ≥ ⌈p·2³²⌉``. That is finer than
    float32's 24-bit ``u`` and takes a third less time than
    ``rng.random(shape, dtype=np.float32) >= p``: 2–3% of an epoch on deep-bn, which has a
    Dropout after each of its six hidden layers.

    MT19937 (the bit generator of a legacy ``RandomState``) makes 32 bits per draw, not 64:
    there ``u`` is the RandomState's own uniform, so after ``np.random.seed(s)`` the mask is
    ``np.random.rand(*shape) >= p``, as a course's code would draw it.
    """
    if isinstance(rng.bit_generator, np.random.MT19937):  # a RandomState's stream
        return rng.random(shape) >= p  # the u of RandomState.random_sample, np.random.rand
    size = math.prod(shape)
    k = rng.bit_generator.random_raw((size + 1) // 2).view(np.uint32)[:size]
    return (k >= math.ceil(p * 2**32)).reshape(shape)
