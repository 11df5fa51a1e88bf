"""Checkpoints of a running ``fit``: everything needed to stop after any epoch and go on.

A checkpoint is one safetensors file (see :mod:`chainrule.serialization`) holding the model,
the optimizer with its state, and under the ``meta`` key: the state of ``fit``'s random
generator and of every ``Dropout``'s, early stopping's state (its best weights as tensors
``best.0``, ``best.1``, ...) and the History so far (whose length is the number of epochs
done). ``cr.resume`` (in :mod:`chainrule.training`) reads one and replays the remaining
epochs exactly: the same weights and History as a run never stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .callbacks import EarlyStopping
from .errors import InputError, ModelFileError
from .history import History
from .layers.dropout import Dropout
from .module import submodules
from .serialization import load_checkpoint, save_checkpoint

# Bit generators a checkpoint may name: a fixed table, never a name looked up at run time.
_BIT_GENERATORS = {cls.__name__: cls for cls in (
    np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.SFC64, np.random.MT19937)}


def _dropouts(model) -> list[Dropout]:
    return [m for m in submodules(model) if isinstance(m, Dropout)]


def write_checkpoint(path, model, optimizer, rng: np.random.Generator,
                     early_stopping: EarlyStopping | None, history: History) -> None:
    """Atomically write everything ``resume`` needs after ``history.epochs`` epochs."""
    es, tensors = None, {}
    if early_stopping is not None:
        es = early_stopping.state_dict()
        for i, W in enumerate(es.pop("best_weights") or []):
            tensors[f"best.{i}"] = W
    meta = {"checkpoint": {
        "epochs_done": history.epochs,
        "finished": history.stopped_early,  # only early stopping ends a run for good
        "rng": rng.bit_generator.state,
        "dropout_rngs": [d.rng.bit_generator.state for d in _dropouts(model)],
        "early_stopping": es,
        "lr_is_callable": callable(getattr(optimizer, "lr", None)),
        "history": history.state_dict(),
    }}
    save_checkpoint(path, model, optimizer, meta, tensors)


@dataclass
class Checkpoint:
    """What :func:`read_checkpoint` found: all that ``fit`` needs to go on."""

    model: object
    optimizer: object
    rng: np.random.Generator
    early_stopping: EarlyStopping | None
    history: History


def read_checkpoint(path, given_optimizer=None) -> Checkpoint:
    """Read a file of :func:`write_checkpoint`, with each ``Dropout``'s generator restored.

    A schedule (callable ``lr``) is not stored: it is taken from ``given_optimizer``.
    """
    model, optimizer, meta, tensors = load_checkpoint(path)
    ck = meta.get("checkpoint") if isinstance(meta, dict) else None
    try:
        history = History()
        history.load_state_dict(ck["history"])
        if len(history.history.get("loss", [])) != int(ck["epochs_done"]):
            raise ValueError("the History does not have one entry per epoch done")
        history.stopped_early = history.stopped_early or bool(ck["finished"])
        dropout_states = list(ck["dropout_rngs"])
        es_state = ck["early_stopping"]
        lr_is_callable = bool(ck["lr_is_callable"])
        early_stopping = None
        if es_state is not None:
            n_best = sum(1 for k in tensors if k.startswith("best."))
            early_stopping = EarlyStopping()
            early_stopping.load_state_dict(
                {**es_state, "best_weights": [tensors[f"best.{i}"] for i in range(n_best)]
                 or None})
    except (TypeError, KeyError, ValueError) as e:
        raise ModelFileError(f"{path}: not a chainrule training checkpoint ({e!r})") from None
    if optimizer is None:
        raise ModelFileError(f"{path}: checkpoint has no optimizer")
    if lr_is_callable:
        if given_optimizer is None or not callable(getattr(given_optimizer, "lr", None)):
            raise InputError(
                "resume expected optimizer= with the step-size schedule (callable lr) of the "
                "original run: a callable lr is not stored in the checkpoint"
            )
        optimizer.lr = given_optimizer.lr
    dropouts = _dropouts(model)
    if len(dropouts) != len(dropout_states):
        raise ModelFileError(f"{path}: checkpoint has {len(dropout_states)} dropout generator "
                             f"states for {len(dropouts)} Dropout modules")
    for d, state in zip(dropouts, dropout_states):
        d.rng = _generator(state, path)
    return Checkpoint(model, optimizer, _generator(ck["rng"], path), early_stopping, history)


def _generator(state, path) -> np.random.Generator:
    if not isinstance(state, dict) or state.get("bit_generator") not in _BIT_GENERATORS:
        raise ModelFileError(f"{path}: checkpoint has no valid random generator state")
    bit_generator = _BIT_GENERATORS[state["bit_generator"]]()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError) as e:
        raise ModelFileError(f"{path}: checkpoint random generator state is invalid: {e}") from None
    return np.random.Generator(bit_generator)
