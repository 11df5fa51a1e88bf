"""Checkpoint files: a model file that also holds a training loop's ``meta`` and extra tensors.

``meta`` is stored as JSON under the metadata key ``meta`` (its presence is what makes a file
a checkpoint) and each extra tensor as ``extra.<name>``; :mod:`chainrule.checkpoint` decides
what goes in them.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputError, ModelFileError
from . import model_file
from .container import as_tensor
from .integrity import atomic_write_bytes, fspath
from .jsontext import dumps


def save_checkpoint(path: str | os.PathLike, model, optimizer, meta: dict,
                    tensors: dict[str, np.ndarray]) -> None:
    """Write a training checkpoint atomically: model, optimizer, ``meta`` and extra tensors.

    ``meta`` is any JSON-serialisable dict with string keys (Python ints of any size, such as
    a PCG64 state, round-trip exactly; numpy scalars are stored as Python numbers; tuples come
    back as lists; inf and NaN are kept). ``tensors`` maps names to arrays (stored as
    ``extra.<name>``). ``optimizer`` may be None.
    """
    if not isinstance(meta, dict):
        raise InputError(f"save_checkpoint expected meta as a dict, got {type(meta).__name__}")
    if not isinstance(tensors, dict):
        raise InputError(
            f"save_checkpoint expected tensors as a dict of arrays, got {type(tensors).__name__}"
        )
    extra = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise InputError(f"save_checkpoint expected tensor names as strings, got {name!r}")
        extra[f"extra.{name}"] = as_tensor(value, f"tensors[{name!r}]")
    data = model_file.encode(model, optimizer, meta=dumps(meta, "save_checkpoint meta"),
                             extra=extra)
    atomic_write_bytes(path, data)


def load_checkpoint(path: str | os.PathLike):
    """Read a file written by :func:`save_checkpoint`.

    Returns ``(model, optimizer_or_None, meta, tensors)``, with the same checks as
    :func:`chainrule.load`; a plain model file (no ``meta``) raises
    :class:`~chainrule.ModelFileError`.
    """
    contents = model_file.decode(path, build_optimizer=True)
    if contents.meta is None:
        raise ModelFileError(
            f"{fspath(path)}: not a checkpoint (a model file without 'meta' metadata)"
        )
    return contents.model, contents.optimizer, contents.meta, contents.extra
