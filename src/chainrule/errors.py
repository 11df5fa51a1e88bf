"""The exceptions chainrule raises.

Every error is a :class:`ChainruleError`. Where the cause is a bad value (a wrong shape, a NaN,
an unknown label, a broken file) the exception is also a :class:`ValueError`, so code written
for NumPy or scikit-learn that catches ``ValueError`` keeps working.
"""

from __future__ import annotations


class ChainruleError(Exception):
    """Base class of every exception raised by chainrule."""


class InputError(ChainruleError, ValueError):
    """A value given to chainrule is not what was expected (shape, dtype, NaN, label, ...)."""


class DivergenceError(ChainruleError):
    """Training produced a non-finite loss, gradient or weight.

    The message has the form ``... at epoch E, step S, layer L ...``; the model is left with
    the last finite weights it had.
    """


class ModelFileError(ChainruleError, ValueError):
    """A model or checkpoint file is truncated, corrupted, hostile or of the wrong format."""


def describe(A) -> str:
    """A short description of what was given, for error messages: ``array of shape (32, 785)``."""
    shape = getattr(A, "shape", None)
    if shape is not None:
        return f"array of shape {tuple(shape)}"
    return f"{type(A).__name__} {A!r}"[:80]
