"""Checkpoints of a running ``fit`` and ``resume``: stop after any epoch, lose nothing.

A checkpoint is one safetensors file (see :mod:`chainrule.serialization`) holding the model,
the optimizer with its state, and under the ``meta`` key: the number of epochs done, the state
of ``fit``'s random generator and of every ``Dropout``'s, early stopping's state (its best
weights as tensors ``best.0``, ``best.1``, ...) and the History so far. Resuming replays the
remaining epochs exactly: the same weights and History as a run never stopped.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError, ModelFileError
from .layers.dropout import Dropout
from .module import submodules
from .serialization import load_checkpoint, save_checkpoint
from .training import EarlyStopping, History, fit

# Bit generators a checkpoint may name: a fixed table, never a name looked up at run time.
_BIT_GENERATORS = {cls.__name__: cls for cls in (
    np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.SFC64, np.random.MT19937)}
_ES_FIELDS = ("best", "best_epoch", "wait")


def _dropouts(model) -> list[Dropout]:
    return [m for m in submodules(model) if isinstance(m, Dropout)]


def write_checkpoint(path, model, optimizer, epochs_done: int, rng: np.random.Generator,
                     early_stopping: EarlyStopping | None, history: History,
                     finished: bool) -> None:
    """Atomically write everything ``resume`` needs after ``epochs_done`` epochs."""
    es, tensors = None, {}
    if early_stopping is not None:
        es = {name: getattr(early_stopping, name) for name in _ES_FIELDS}
        es.update(patience=early_stopping.patience, min_delta=early_stopping.min_delta,
                  restore_best=early_stopping.restore_best)
        for i, W in enumerate(early_stopping.best_weights or []):
            tensors[f"best.{i}"] = W
    meta = {"checkpoint": {
        "epochs_done": epochs_done,
        "finished": finished,
        "rng": rng.bit_generator.state,
        "dropout_rngs": [d.rng.bit_generator.state for d in _dropouts(model)],
        "early_stopping": es,
        "lr_is_callable": callable(getattr(optimizer, "lr", None)),
        "history": history.to_dict(),
    }}
    save_checkpoint(path, model, optimizer, meta, tensors)


def _generator(state, path) -> np.random.Generator:
    if not isinstance(state, dict) or state.get("bit_generator") not in _BIT_GENERATORS:
        raise ModelFileError(f"{path}: checkpoint has no valid random generator state")
    bit_generator = _BIT_GENERATORS[state["bit_generator"]]()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError) as e:
        raise ModelFileError(f"{path}: checkpoint random generator state is invalid: {e}") from None
    return np.random.Generator(bit_generator)


def resume(path, loss, X, Y, **fit_kwargs):
    """Load a checkpoint written by ``fit(..., checkpoint=path)`` and run the remaining epochs.

    ``fit_kwargs`` are those of the original call (``epochs`` is the total, as before). The
    saved optimizer, random generator and early-stopping states take precedence over the
    ``optimizer``, ``rng`` and ``early_stopping`` given again; a callable ``lr`` is not stored,
    so pass the same optimizer (or one with the same ``lr``) again in that case.

    Returns ``(model, history)``.
    """
    model, optimizer, meta, tensors = load_checkpoint(path)
    ck = meta.get("checkpoint") if isinstance(meta, dict) else None
    try:
        epochs_done = int(ck["epochs_done"])
        history = History.from_dict(ck["history"])
        dropout_states = list(ck["dropout_rngs"])
        es_state = ck["early_stopping"]
        finished = bool(ck["finished"])
        lr_is_callable = bool(ck["lr_is_callable"])
    except (TypeError, KeyError, ValueError) as e:
        raise ModelFileError(f"{path}: not a chainrule training checkpoint ({e!r})") from None
    if optimizer is None:
        raise ModelFileError(f"{path}: checkpoint has no optimizer")
    given = fit_kwargs.pop("optimizer", None)
    if lr_is_callable:
        if given is None or not callable(getattr(given, "lr", None)):
            raise InputError(
                "resume expected optimizer= with the step-size schedule (callable lr) of the "
                "original run: a callable lr is not stored in the checkpoint"
            )
        optimizer.lr = given.lr
    rng = _generator(ck["rng"], path)
    fit_kwargs.pop("rng", None)
    dropouts = _dropouts(model)
    if len(dropouts) != len(dropout_states):
        raise ModelFileError(f"{path}: checkpoint has {len(dropout_states)} dropout generator "
                             f"states for {len(dropouts)} Dropout modules")
    for d, state in zip(dropouts, dropout_states):
        d.rng = _generator(state, path)
    early_stopping = fit_kwargs.pop("early_stopping", None)
    resume_state = {"history": history, "epoch": epochs_done, "finished": finished}
    if es_state is not None:
        early_stopping = EarlyStopping(es_state["patience"], es_state["min_delta"],
                                       es_state["restore_best"])
        n_best = sum(1 for k in tensors if k.startswith("best."))
        best_weights = [tensors[f"best.{i}"] for i in range(n_best)] or None
        resume_state["early_stopping"] = {
            **{name: es_state[name] for name in _ES_FIELDS}, "best_weights": best_weights}
    history = fit(model, loss, X, Y, optimizer=optimizer, rng=rng,
                  early_stopping=early_stopping, _resume_state=resume_state, **fit_kwargs)
    return model, history
