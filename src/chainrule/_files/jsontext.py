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

    The text is ``json.dumps(obj, separators=(",", ":"))``, but a long list of numbers is
    encoded through :data:`_GROWING`: a History checkpointed after every epoch costs the
    epoch's new numbers, not all of them again.
    """
    parts: list[str] = []
    try:
        _encode(obj, what, parts)
    except (TypeError, ValueError, RecursionError) as e:
        raise InputError(f"{what} must be JSON-serialisable: {e}") from None
    return "".join(parts)  # the long texts are copied once, here


def _encode(obj, what: str, parts: list[str]) -> None:
    """Append the JSON text of ``obj`` to ``parts``, in pieces."""
    if type(obj) is dict:
        for k in obj:
            if not isinstance(k, str):
                raise InputError(f"{what} expected string keys, got key {k!r}")
        parts.append("{")
        for i, (k, v) in enumerate(obj.items()):
            parts.append(f",{_plain(k)}:" if i else f"{_plain(k)}:")
            _encode(v, what, parts)
        parts.append("}")
        return
    if type(obj) is list and len(obj) >= _GROWING.min_length:
        text = _GROWING.text(obj)
        if text is not None:
            parts += ("[", text, "]")
            return
    _check_keys(obj, what)
    parts.append(_plain(obj))


def _plain(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), default=_number)


_CONTAINERS = (dict, list, tuple)


class _ListTexts:
    """JSON text of long lists of numbers that grow at their end between writes (a History's
    lists, written to a checkpoint after every epoch): each number is encoded once.

    Keyed by the list itself (held, so that its ``id`` is not reused) for the lists seen most
    recently, up to ``max_items`` numbers in all; a list changed anywhere but at its end (its
    first numbers no longer those encoded) is encoded afresh.
    """

    min_length = 256
    max_items = 1_000_000  # about 30 MB of copies and text at most

    def __init__(self):
        self._entries: dict[int, tuple[list, list, str]] = {}  # id -> (list, items, text)
        self._items = 0

    def text(self, values: list) -> str | None:
        """``json.dumps(values)`` (compact) without its brackets, or None for a list that is
        not all numbers."""
        entry = self._entries.pop(id(values), None)
        items, text = [], ""
        if entry is not None:
            self._items -= len(entry[1])
            if entry[0] is values and len(entry[1]) <= len(values) and _same(
                    values[:len(entry[1])], entry[1]):
                items, text = entry[1], entry[2]
        new = values[len(items):]
        if new:
            if any(issubclass(t, _CONTAINERS) for t in set(map(type, new))):
                return None
            piece = _plain(new)[1:-1]
            text = f"{text},{piece}" if text else piece
            items.extend(new)
        self._entries[id(values)] = (values, items, text)
        self._items += len(items)
        while self._items > self.max_items and self._entries:  # the oldest first
            _, old_items, _ = self._entries.pop(next(iter(self._entries)))
            self._items -= len(old_items)
        return text


def _same(a: list, b: list) -> bool:
    try:
        return bool(a == b)  # identical objects (a NaN among them) compare equal
    except (TypeError, ValueError):  # an array put in the list
        return False


_GROWING = _ListTexts()


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
