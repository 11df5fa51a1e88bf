"""Checkpoints of a running ``fit``: everything needed to stop after any epoch and go on.

A checkpoint is one safetensors file (see :mod:`chainrule.serialization`) holding the model,
the optimizer with its state, and under the ``meta`` key ``{"checkpoint": {...}}``, the
training state:

===================  =======================================================================
field                what
===================  =======================================================================
``epochs_done``      epochs completed, an int ≥ 0: the length of every History list
``finished``         whether early stopping ended the run (then ``resume`` runs nothing)
``rng``              the state of ``fit``'s random generator (any of numpy's bit generators)
``dropout_rngs``     the state of each ``Dropout``'s generator, in model order
``early_stopping``   early stopping's settings and progress, or null; its best weights are
                     the tensors ``extra.best.0``, ``extra.best.1``, ... (one per parameter)
``lr_is_callable``   whether the step size was a schedule (not stored: given again)
``history``          the History so far
===================  =======================================================================

A file's digest proves only that it is whole: anyone can recompute it. So reading checks every
field (type, range, length, and the best weights against the model's parameters) before
``fit`` runs; any defect is a :class:`~chainrule.ModelFileError` naming the field.
``cr.resume`` (in :mod:`chainrule.training`) reads one and replays the remaining epochs
exactly: the same weights and History as a run never stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._validate import is_int
from .callbacks import EarlyStopping
from .errors import InputError, ModelFileError
from .history import History
from .layers.dropout import Dropout
from .module import named_parameters, submodules
from .serialization import load_checkpoint, save_checkpoint

# Bit generators a checkpoint may name: a fixed table, never a name looked up at run time.
_BIT_GENERATORS = {cls.__name__: cls for cls in (
    np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.SFC64, np.random.MT19937)}

# Each one's state, as numpy gives it, field by field: an int below a bound, or (bound,
# length) for an array of unsigned ints (stored as a JSON list).
_U32, _U64, _U128 = 2**32, 2**64, 2**128
_SPARE = {"has_uint32": 2, "uinteger": _U32}  # a cached half of a 64-bit draw
_PCG = {"state": {"state": _U128, "inc": _U128}, **_SPARE}
_STATES = {
    "PCG64": _PCG,
    "PCG64DXSM": _PCG,
    "SFC64": {"state": {"state": (_U64, 4)}, **_SPARE},
    "Philox": {"state": {"counter": (_U64, 4), "key": (_U64, 2)}, "buffer": (_U64, 4),
               "buffer_pos": 5, **_SPARE},
    "MT19937": {"state": {"key": (_U32, 624), "pos": 625}},
}
_ARRAY_DTYPES = {_U32: np.uint32, _U64: np.uint64}

_FIELDS = ("epochs_done", "finished", "rng", "dropout_rngs", "early_stopping",
           "lr_is_callable", "history")
_HISTORY_FIELDS = ("history", "grad_norms", "best_epoch", "stopped_early", "interrupted")
_EARLY_STOPPING_FIELDS = ("patience", "min_delta", "restore_best", "best", "best_epoch", "wait")


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
        "rng": _plain(rng.bit_generator.state),
        "dropout_rngs": [_plain(d.rng.bit_generator.state) for d in _dropouts(model)],
        "early_stopping": es,
        "lr_is_callable": callable(getattr(optimizer, "lr", None)),
        "history": history.state_dict(),
    }}
    save_checkpoint(path, model, optimizer, meta, tensors)


def _plain(state: dict) -> dict:
    """A bit generator's state with its arrays (SFC64, Philox, MT19937) as lists, for JSON."""
    return {k: _plain(v) if isinstance(v, dict) else v.tolist() if isinstance(v, np.ndarray)
            else v for k, v in state.items()}


@dataclass
class Checkpoint:
    """What :func:`read_checkpoint` found: all that ``fit`` needs to go on."""

    model: object
    optimizer: object
    rng: np.random.Generator
    early_stopping: EarlyStopping | None
    history: History


def read_checkpoint(path, given_optimizer=None) -> Checkpoint:
    """Read a file of :func:`write_checkpoint`, every field of its training state checked,
    with each ``Dropout``'s generator restored.

    A schedule (callable ``lr``) is not stored: it is taken from ``given_optimizer``.
    """
    model, optimizer, meta, tensors = load_checkpoint(path)

    def fail(problem: str) -> ModelFileError:
        return ModelFileError(f"{path}: not a valid chainrule training checkpoint: {problem}")

    if set(meta) != {"checkpoint"}:
        raise fail(f"expected metadata 'meta' with exactly the key 'checkpoint', got keys "
                   f"{_short(sorted(meta))}")
    ck = _fields(meta["checkpoint"], _FIELDS, "checkpoint", fail)
    epochs = ck["epochs_done"]
    if not (is_int(epochs) and epochs >= 0):
        raise fail(f"checkpoint.epochs_done expected an int ≥ 0, got {_short(epochs)}")
    for key in ("finished", "lr_is_callable"):
        _bool(ck[key], f"checkpoint.{key}", fail)
    params = named_parameters(model)
    history = _history(ck["history"], epochs, [p for p, _ in params], fail)
    history.stopped_early = history.stopped_early or ck["finished"]
    early_stopping = _early_stopping(ck["early_stopping"], epochs, tensors,
                                     [p for _, p in params], fail)
    dropouts = _dropouts(model)
    states = ck["dropout_rngs"]
    if not isinstance(states, list) or len(states) != len(dropouts):
        raise fail(f"checkpoint.dropout_rngs expected a list of {len(dropouts)} generator "
                   f"states (one per Dropout), got {_describe(states)}")
    generators = [_generator(s, f"checkpoint.dropout_rngs[{i}]", fail)
                  for i, s in enumerate(states)]
    rng = _generator(ck["rng"], "checkpoint.rng", fail)
    if optimizer is None:
        raise ModelFileError(f"{path}: checkpoint has no optimizer")
    if ck["lr_is_callable"]:
        if given_optimizer is None or not callable(getattr(given_optimizer, "lr", None)):
            raise InputError(
                "resume expected optimizer= with the step-size schedule (callable lr) of the "
                "original run: a callable lr is not stored in the checkpoint"
            )
        optimizer.lr = given_optimizer.lr
    for d, generator in zip(dropouts, generators):
        d.rng = generator
    return Checkpoint(model, optimizer, rng, early_stopping, history)


# -- the fields, one check each ---------------------------------------------------------

def _history(d, epochs: int, paths: list[str], fail) -> History:
    """The History, every list of length ``epochs``, its gradient norms by the model's
    parameter paths."""
    d = _fields(d, _HISTORY_FIELDS, "checkpoint.history", fail)
    figures = _lists(d["history"], epochs, "checkpoint.history.history", fail)
    if epochs and "loss" not in figures:
        raise fail(f"checkpoint.history.history expected a 'loss' list of {epochs} numbers, "
                   f"got keys {_short(sorted(figures))}")
    norms = _lists(d["grad_norms"], epochs, "checkpoint.history.grad_norms", fail)
    if epochs and sorted(norms) != sorted(paths):
        raise fail(f"checkpoint.history.grad_norms expected the model's parameter paths "
                   f"{_short(paths)}, got {_short(sorted(norms))}")
    if any(v < 0 for values in norms.values() for v in values):
        raise fail("checkpoint.history.grad_norms expected norms ≥ 0, got a negative one")
    _epoch_or_none(d["best_epoch"], epochs, "checkpoint.history.best_epoch", fail)
    for key in ("stopped_early", "interrupted"):
        _bool(d[key], f"checkpoint.history.{key}", fail)
    history = History()
    history.load_state_dict({**d, "history": figures, "grad_norms": norms})
    return history


def _lists(d, epochs: int, field: str, fail) -> dict[str, list[float]]:
    if not isinstance(d, dict):
        raise fail(f"{field} expected an object of lists, got {_describe(d)}")
    for key, values in d.items():
        if not (isinstance(values, list) and len(values) == epochs
                and all(_is_finite_number(v) for v in values)):
            raise fail(f"{field}[{_short(key)}] expected a list of {epochs} finite numbers "
                       f"(one per epoch done), got {_describe(values)}")
    return d


def _early_stopping(d, epochs: int, tensors: dict, params: list, fail) -> EarlyStopping | None:
    """Early stopping's state, with its best weights checked against the model's parameters:
    ``best.0``, ``best.1``, ... shaped and typed like parameters 0, 1, ..., and no others."""
    best_weights = None
    if d is None:
        expected = []
    else:
        d = _fields(d, _EARLY_STOPPING_FIELDS, "checkpoint.early_stopping", fail)
        field = "checkpoint.early_stopping"
        if not (is_int(d["patience"]) and d["patience"] >= 0):
            raise fail(f"{field}.patience expected an int ≥ 0, got {_short(d['patience'])}")
        if not (_is_finite_number(d["min_delta"]) and d["min_delta"] >= 0):
            raise fail(f"{field}.min_delta expected a finite number ≥ 0, "
                       f"got {_short(d['min_delta'])}")
        _bool(d["restore_best"], f"{field}.restore_best", fail)
        _epoch_or_none(d["best_epoch"], epochs, f"{field}.best_epoch", fail)
        if d["best_epoch"] is None and d["best"] != math.inf:
            raise fail(f"{field}.best expected inf (no best epoch yet), got {_short(d['best'])}")
        if d["best_epoch"] is not None and not _is_finite_number(d["best"]):
            raise fail(f"{field}.best expected the best epoch's finite validation loss, "
                       f"got {_short(d['best'])}")
        if not (is_int(d["wait"]) and 0 <= d["wait"] <= epochs):
            raise fail(f"{field}.wait expected an int in [0, {epochs}], got {_short(d['wait'])}")
        keeps = d["restore_best"] and d["best_epoch"] is not None
        expected = [f"best.{i}" for i in range(len(params))] if keeps else []
    if sorted(tensors) != sorted(expected):
        raise fail(f"expected best-weight tensors {_short(['extra.' + t for t in expected])}, "
                   f"got {_short(['extra.' + t for t in sorted(tensors)])}")
    if expected:
        best_weights = []
        for name, p in zip(expected, params):
            W = tensors[name]
            if W.shape != p.data.shape or W.dtype != p.data.dtype:
                raise fail(f"tensor 'extra.{name}' expected shape {p.data.shape} and dtype "
                           f"{p.data.dtype} (parameter {p!r}), got shape {W.shape} and dtype "
                           f"{W.dtype}")
            if not np.isfinite(W).all():
                raise fail(f"tensor 'extra.{name}' expected finite values, got NaN or inf")
            best_weights.append(W)
    if d is None:
        return None
    early_stopping = EarlyStopping()
    early_stopping.load_state_dict({**d, "best_weights": best_weights})
    return early_stopping


def _generator(state, field: str, fail) -> np.random.Generator:
    """A Generator in the checked ``state`` of one of :data:`_BIT_GENERATORS`."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if not isinstance(name, str) or name not in _BIT_GENERATORS:
        raise fail(f"{field} expected a random generator state with 'bit_generator' one of "
                   f"{sorted(_BIT_GENERATORS)}, got {_describe(state)}")
    spec = {"bit_generator": None, **_STATES[name]}
    bit_generator = _BIT_GENERATORS[name]()
    bit_generator.state = _state(state, spec, f"{field} ({name})", fail)
    return np.random.Generator(bit_generator)


def _state(d, spec: dict, field: str, fail) -> dict:
    d = _fields(d, tuple(spec), field, fail)
    checked = {}
    for key, bound in spec.items():
        value, where = d[key], f"{field}.{key}"
        if bound is None:  # the bit generator's name, checked by the caller
            checked[key] = value
        elif isinstance(bound, dict):
            checked[key] = _state(value, bound, where, fail)
        elif isinstance(bound, tuple):
            bound, length = bound
            if not (isinstance(value, list) and len(value) == length
                    and all(is_int(v) and 0 <= v < bound for v in value)):
                raise fail(f"{where} expected a list of {length} ints in [0, 2**"
                           f"{bound.bit_length() - 1}), got {_describe(value)}")
            checked[key] = np.array(value, dtype=_ARRAY_DTYPES[bound])
        else:
            if not (is_int(value) and 0 <= value < bound):
                raise fail(f"{where} expected an int in [0, {_bound(bound)}), "
                           f"got {_short(value)}")
            checked[key] = value
    return checked


# -- small checks -------------------------------------------------------------------------

def _fields(d, keys: tuple[str, ...], field: str, fail) -> dict:
    if not isinstance(d, dict) or set(d) != set(keys):
        got = f"keys {_short(sorted(d))}" if isinstance(d, dict) else _describe(d)
        raise fail(f"{field} expected an object with keys {sorted(keys)}, got {got}")
    return d


def _bool(value, field: str, fail) -> None:
    if type(value) is not bool:
        raise fail(f"{field} expected true or false, got {_short(value)}")


def _epoch_or_none(value, epochs: int, field: str, fail) -> None:
    if value is not None and not (is_int(value) and 0 <= value < epochs):
        raise fail(f"{field} expected null or an epoch in [0, {epochs}), got {_short(value)}")


def _is_finite_number(v) -> bool:
    if type(v) is int:
        return abs(v) < 2**1023  # as a float too (math.isfinite(10**400) would overflow)
    return type(v) is float and math.isfinite(v)


def _bound(bound: int) -> str:
    return f"2**{bound.bit_length() - 1}" if bound > 1024 else str(bound)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(value) -> str:
    """What a file gave, in a few words: ``list of 3``, ``dict with keys [...]``, ``'x'``."""
    if isinstance(value, list):
        return f"a list of {len(value)}: {_short(value)}"
    if isinstance(value, dict):
        return f"an object with keys {_short(sorted(value))}"
    return f"{type(value).__name__} {_short(value)}"
