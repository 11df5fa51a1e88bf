"""JSON text in model files: written compactly with string keys only, parsed strictly."""

from __future__ import annotations

import json

import numpy as np

from ..errors import InputError


def short(value) -> str:
    """``repr(value)``, cut to a length fit for an error message (values may come from a file)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def dumps(obj, what: str) -> str:
    """Compact JSON text of ``obj``; numpy scalars become Python numbers.

    Raises :class:`~chainrule.errors.InputError` naming ``what`` for anything that would not
    come back as written: a non-string key, or a value JSON cannot hold.
    """
    _check_keys(obj, what)
    try:
        return json.dumps(obj, separators=(",", ":"), default=_number)
    except (TypeError, ValueError, RecursionError) as e:
        raise InputError(f"{what} must be JSON-serialisable: {e}") from None


def parse(text: str | bytes, fail, what: str):
    """The value of JSON ``text`` read from a file; any defect (malformed text, a key given
    twice, nesting too deep for the parser) raises ``fail(problem)``."""
    try:
        return json.loads(text, object_pairs_hook=_unique)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise fail(f"malformed JSON in {what} ({e})") from None


def _number(x):
    if isinstance(x, np.generic) and x.dtype.kind in "biuf":
        return x.item()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def _check_keys(obj, what: str) -> None:
    # json.dumps would silently turn int keys into strings: refuse instead.
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise InputError(f"{what} expected string keys, got key {k!r}")
            _check_keys(v, what)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _check_keys(v, what)


def _unique(pairs) -> dict:
    # A key given twice would let two readers of one file see different values.
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {short(k)}")
        d[k] = v
    return d
