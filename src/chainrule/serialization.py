"""Model files: a ``Sequential`` (and optionally its optimizer) as one ``.safetensors`` file.

Never pickle: a file holds only arrays and JSON text, and ``load`` rebuilds modules from a
fixed registry of chainrule's own classes, so opening a file can never run code. The format
is described in :mod:`chainrule._files.model_file` (and ``docs/files.md``); writes are atomic
(temporary file in the same folder, fsync, ``os.replace``: :func:`atomic_write_bytes`, which the
command line and the reports use too, and which removes the temporary files that killed
writers of the same path left behind). Checkpoints of a running ``fit`` are model files with
more in them (:func:`save_checkpoint`, :func:`load_checkpoint`).
"""

from __future__ import annotations

import os

from ._files import model_file
from ._files.checkpoint_file import load_checkpoint, save_checkpoint
from ._files.integrity import atomic_write_bytes, fspath
from .errors import ModelFileError
from .layers import Sequential

__all__ = ["atomic_write_bytes", "load", "load_checkpoint", "load_optimizer", "save",
           "save_checkpoint"]


def save(model: Sequential, path: str | os.PathLike, *, optimizer=None) -> None:
    """Write ``model`` (and ``optimizer``, if given) to one ``.safetensors`` file, atomically.

    The file stores every module by class name with its settings (``Linear`` m, n, init and
    dtype; ``BatchNorm`` eps, momentum and dtype; ``Dropout`` p; ``LeakyReLU`` alpha), every
    parameter and ``BatchNorm``'s running statistics, so :func:`load` gives back a model whose
    predictions are bit-identical. With ``optimizer``, also its class, hyper-parameters, step
    count ``t`` and per-parameter state (a callable ``lr`` is not stored), for
    :func:`load_optimizer`. An existing file is replaced only once the new one is complete.

    Only chainrule's own modules can be saved (``Linear``, the activations, ``Dropout``,
    ``BatchNorm`` and nested ``Sequential``): a user-defined module (or a subclass) raises
    :class:`~chainrule.ChainruleError` naming its class. A ``Dropout``'s random generator is
    not stored (a loaded model's masks are freshly random).

    Example
    -------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import chainrule as cr
    >>> model = cr.Sequential(cr.Linear(4, 8, rng=0), cr.LeakyReLU(0.2), cr.Linear(8, 1, rng=1))
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> cr.save(model, path, optimizer=cr.Adam(lr=0.01))
    >>> X = np.ones((3, 4), np.float32)
    >>> bool(np.array_equal(cr.load(path).predict(X), model.predict(X)))
    True
    >>> cr.load_optimizer(path).lr
    0.01
    """
    atomic_write_bytes(path, model_file.encode(model, optimizer))


def load(path: str | os.PathLike) -> Sequential:
    """Read a model written by :func:`save` (or :func:`save_checkpoint`) as a ``Sequential``.

    Modules are rebuilt only from chainrule's own classes; every tensor's presence, shape and
    dtype is checked against the modules built from the architecture, and a SHA-256 digest of
    the whole content against the one stored, so a truncated, corrupted or hostile file raises
    :class:`~chainrule.ModelFileError` (naming the file and the problem) and executes nothing.
    Only a regular file is read (a FIFO or a device is refused unread), no more of it than its
    header declares, and within bounds on the header (16 MiB, 2,000,000 JSON values) and the
    architecture (10,000 modules); settings that would make predictions NaN or inf (a
    ``BatchNorm`` eps of 0, a ``LeakyReLU`` alpha beyond the model's dtype) are refused too.
    The file format and every check are described in ``docs/files.md``. The loaded model is
    in training mode, like a new one. A missing file raises the usual ``FileNotFoundError``.

    Example
    -------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import chainrule as cr
    >>> model = cr.Sequential(cr.Linear(3, 5, rng=0, dtype=np.float64), cr.BatchNorm(5,
    ...                       dtype=np.float64), cr.ReLU(), cr.Linear(5, 2, rng=1,
    ...                       dtype=np.float64), cr.Softmax())
    >>> X = np.arange(12.0).reshape(4, 3)
    >>> _ = model(X)  # a training forward moves BatchNorm's running statistics
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> cr.save(model, path)
    >>> copy = cr.load(path)
    >>> [type(m).__name__ for m in copy.modules]
    ['Linear', 'BatchNorm', 'ReLU', 'Linear', 'Softmax']
    >>> bool(np.array_equal(copy.predict(X), model.predict(X)))
    True
    """
    return model_file.decode(path).model


def load_optimizer(path: str | os.PathLike):
    """The optimizer stored by ``save(model, path, optimizer=...)``, with its state restored.

    Its class comes from ``chainrule.optimizers.OPTIMIZERS`` only; hyper-parameters are
    checked against that class's constructor. A callable ``lr`` was not stored: the result
    has the class default, so set it again. A file without an optimizer raises
    :class:`~chainrule.ModelFileError`.
    """
    optimizer = model_file.decode(path, build_optimizer=True).optimizer
    if optimizer is None:
        raise ModelFileError(f"{fspath(path)}: the file stores no optimizer")
    return optimizer
