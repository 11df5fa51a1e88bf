"""``fit``: gradient descent on a ``Sequential``, with the notes' regularizers and diagnostics.

One optimizer step (notes' section 6.6)::

    A = model.forward(X_batch)              forward pass, caches for backward
    L = loss(A, Y_batch)
    model.backward_from(loss)               every Parameter's .grad = dL/dW
    optimizer.step(params)                  W ← W − η · (update from .grad)

``batch_size=1`` is stochastic gradient descent, ``batch_size=None`` batch gradient descent
(the whole training set each step), anything else mini-batch gradient descent.

A ``Sequential`` trains through its :class:`~chainrule.buffer.ParameterBuffer`: each step
writes the new weights into the buffer's second array and points every ``Parameter.data``
there only when they are all finite, so that a diverging step is undone without a copy.
Read weights through the parameters (``layer.W.data``) during fit, e.g. in a callback; when
fit returns or raises, the weights are back in the arrays they were in before it.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager

import numpy as np

from . import progress as _progress
from ._rng import as_generator
from ._validate import as_float_matrix, check_finite, check_float, check_int
from .arrays import (
    Dataset,
    Rows,
    as_sparse_matrix,
    check_sample_weight,
    kind,
    n_rows,
    normalised_weights,
)
from .buffer import store_for
from .callbacks import EarlyStopping
from .checkpoint import read_checkpoint, write_checkpoint
from .errors import DivergenceError, InputError
from .history import History
from .layers.batchnorm import BatchNorm
from .losses import NLL, NLLM, Loss
from .module import submodules
from .optimizers import Adam

__all__ = ["EarlyStopping", "History", "evaluate", "fit", "resume"]

SAMPLINGS = ("epochs", "replacement")


def fit(model, loss, X, Y, *, optimizer=None, epochs: int = 10, batch_size: int | None = 32,
        shuffle: bool = True, sampling: str = "epochs", sample_weight=None,
        validation_data=None, validation_split: float = 0.0,
        early_stopping: EarlyStopping | None = None, input_noise: float = 0.0,
        clip_grad_norm: float | None = None, rng=None, progress=None, callbacks=(),
        checkpoint=None, _history: History | None = None) -> History:
    """Train ``model`` on ``(X, Y)`` by gradient descent on ``loss``; return a :class:`History`.

    Parameters
    ----------
    model : Sequential
    loss : SquareLoss, AbsoluteLoss, NLL or NLLM
    X : array (n_samples, n_features); Y : targets as the loss accepts them
        Either may be a ``scipy.sparse`` matrix (X only; each batch is made dense) or any
        array-like with ``.shape`` and row slicing (``numpy.memmap``, ``h5py.Dataset``,
        ``zarr.Array``, a Dask array): then only each window's rows are read, and shuffling
        is by blocks and windows (see :mod:`chainrule.arrays` for exactly what randomness
        that gives).
    optimizer : optimizer, default ``Adam()``
    epochs : int, default 10
    batch_size : int or None, default 32
        1: SGD; None: batch gradient descent; larger than the data: the whole data.
        The last mini-batch of an epoch may be smaller; in a model with ``BatchNorm``, a
        last batch of one row (which it cannot normalise) joins the batch before it.
    shuffle : bool, default True
        Reshuffle the training rows every epoch (through ``rng``).
    sampling : {"epochs", "replacement"}, default "epochs"
        "epochs": every epoch visits each row once. "replacement": every batch's rows are
        drawn independently and uniformly with replacement (the notes' "get random data
        point i", 6.6.2); an epoch is then ``ceil(n / batch_size)`` steps of ``batch_size``
        rows each, and ``shuffle`` has no effect.
    sample_weight : array (n_samples,), optional
        Per-row weights of the loss, finite and ≥ 0 (beyond the notes). They are divided
        once by their mean w̄ over the training rows (in float64), and a batch of K rows has
        the loss Σᵢ wᵢ Lᵢ / (K · w̄) under ``reduction="mean"`` (see
        :mod:`chainrule.losses`): its expectation over the batches is the weighted mean
        Σᵢ wᵢ Lᵢ / Σᵢ wᵢ over all training rows, which for integer weights is the loss of
        the data with row i repeated wᵢ times (a batch's own Σᵢ wᵢ would bias it). Uniform
        weights of any size train exactly as no weights; weights whose ratio to their
        mean does not fit in the model's dtype are refused. The History's loss and
        accuracy, and the validation loss, are weighted means Σᵢ wᵢ Lᵢ / Σᵢ wᵢ over all
        their rows; a ``validation_split`` takes its rows' weights along.
    validation_data : (X_val, Y_val) or (X_val, Y_val, sample_weight_val), optional
    validation_split : float in [0, 1), default 0
        Hold out this fraction of the rows (the last ones, before shuffling) for validation.
    early_stopping : EarlyStopping, optional
    input_noise : float, default 0
        σ of fresh N(0, σ²) noise added to each training batch's inputs (the notes'
        perturbation); never to validation or prediction.
    clip_grad_norm : float, optional
        Rescale the gradients so their global L2 norm is at most this.
    rng : None, int or numpy.random.Generator
        Shuffling and input noise (Dropout has its own ``rng``).
    progress : None, bool
        A bar per epoch; None: only when stderr is a terminal.
    callbacks : objects with ``on_epoch_end(epoch, logs) -> bool | None`` (True stops)
        and/or ``on_step_end(step, logs)``.
    checkpoint : path, optional
        After every epoch, atomically write all that ``resume`` needs to go on.

    Raises
    ------
    DivergenceError
        When a loss, gradient or updated weight is not finite; the message names the
        epoch, step (both 0-based) and layer, and the model keeps its last finite weights.
    """
    _check_loss(loss)
    has_validation = validation_data is not None or validation_split > 0
    _check_options(epochs, batch_size, validation_split, input_noise, clip_grad_norm,
                   early_stopping, has_validation)
    if sampling not in SAMPLINGS:
        raise InputError(f"fit expected sampling in {SAMPLINGS}, got {sampling!r}")
    (X, Y, w), validation = _training_data(model, loss, X, Y, sample_weight, validation_data,
                                           validation_split)
    data = Dataset(X, Y, w, shuffle=shuffle, sampling=sampling)
    optimizer = _check_optimizer(optimizer)
    if hasattr(callbacks, "on_epoch_end") or hasattr(callbacks, "on_step_end"):
        callbacks = [callbacks]  # one callback given on its own
    if _history is None and early_stopping is not None:
        early_stopping.reset()
    run = _Run(model, loss, optimizer, as_generator(rng), early_stopping, list(callbacks),
               checkpoint, _history or History(),
               _batches(data.n, batch_size, model, sampling), _progress.wanted(progress))
    return run.epochs(data, validation, epochs, input_noise, clip_grad_norm)


class _Run:
    """One call of ``fit``: the loop over epochs and steps, and what happens after each."""

    def __init__(self, model, loss, optimizer, rng, early_stopping, callbacks, checkpoint,
                 history, batches: list[tuple[int, int]], bar: bool):
        self.model, self.loss, self.optimizer, self.rng = model, loss, optimizer, rng
        self.early_stopping, self.callbacks = early_stopping, callbacks
        self.checkpoint, self.history = checkpoint, history
        self.batches, self.bar = batches, bar  # (start, end) of each batch; show a bar?
        self.store = store_for(model, optimizer)

    def epochs(self, data, validation, epochs, input_noise, clip_grad_norm):
        history, store, rng = self.history, self.store, self.rng
        take_step = _Step(self.model, self.loss, self.optimizer, store, clip_grad_norm)
        step_callbacks = [cb for cb in self.callbacks if hasattr(cb, "on_step_end")]
        first = epochs if history.stopped_early else history.epochs  # resumed: go on
        # Overflow on the way to a non-finite loss is reported once, as a DivergenceError.
        with _deferred_interrupt() as interrupted, np.errstate(all="ignore"), store.stepping():
            for epoch in range(first, epochs):
                t0 = time.perf_counter()
                self.model.train()
                tally = _Tally(self.loss, len(store.paths))
                bar = _progress.EpochBar(epoch, epochs, len(self.batches)) if self.bar else None
                batches = _interruptible(data.epoch(rng, self.batches), interrupted)
                for step, (Xb, Yb, wb) in enumerate(batches):
                    try:
                        if input_noise:  # the notes' perturbation, fresh for every batch
                            Xb = Xb + rng.normal(0.0, input_noise, Xb.shape).astype(Xb.dtype)
                        value, A, norms = take_step(Xb, Yb, epoch, step, wb)
                    except KeyboardInterrupt:  # raised, not signalled: the step was undone
                        interrupted[0] = True
                        break
                    try:
                        tally.add(value, A, Yb, norms, wb)
                        if bar is not None:
                            bar.update(1, {"loss": tally.mean_loss})
                        for cb in step_callbacks:
                            cb.on_step_end(step, {"loss": value, "epoch": epoch})
                    except KeyboardInterrupt:  # from a callback: the step itself is complete
                        interrupted[0] = True
                    if interrupted[0]:
                        break
                figures = self._end_epoch(epoch, tally, validation, t0, bar, interrupted)
                if figures is None or tally.steps < len(self.batches):
                    break  # interrupted within the epoch
                if self._after_epoch(epoch, figures, interrupted) or interrupted[0]:
                    break
        history.interrupted = bool(interrupted[0])
        if self.early_stopping is not None:
            self.early_stopping.restore(store.params)
            if self.early_stopping.best_epoch is not None:
                history.best_epoch = self.early_stopping.best_epoch
        self.model.train()
        return history

    def _end_epoch(self, epoch, tally, validation, t0, bar, interrupted) -> dict | None:
        """Record the epoch's figures in the History (None when it took no step, or when its
        validation was interrupted twice)."""
        if tally.steps == 0:
            if bar is not None:
                _run_through(interrupted, bar.close, {}, again=False)
            return None
        figures = tally.figures()
        if validation is not None:
            done, val = _run_through(interrupted, evaluate, self.model, self.loss, *validation)
            if not done:
                return None
            figures.update({f"val_{k}": v for k, v in val.items()})
        figures["time"] = time.perf_counter() - t0
        self.history.append(figures, dict(zip(self.store.paths, tally.mean_norms())))
        if bar is not None:
            _run_through(interrupted, bar.close, {k: v for k, v in figures.items()
                                                  if k != "time"}, again=False)
        return figures

    def _after_epoch(self, epoch: int, figures: dict, interrupted) -> bool:
        """Early stopping, the callbacks and the checkpoint; should training stop?

        Each is run to its end though a ``KeyboardInterrupt`` be raised inside it, as a
        Ctrl-C signal would let it run (:func:`_run_through`): the epoch's checkpoint is
        written all the same.
        """
        es, stop = self.early_stopping, False
        if es is not None:
            before = es.state_dict()  # early stopping's update, undone if interrupted midway

            def update():
                es.load_state_dict(before)
                return es.update(epoch, figures["val_loss"], self.store.params)

            if _run_through(interrupted, update)[1]:
                self.history.stopped_early = stop = True
        for cb in self.callbacks:
            if hasattr(cb, "on_epoch_end"):  # a callback is not run twice
                stop = bool(_run_through(interrupted, cb.on_epoch_end, epoch, dict(figures),
                                         again=False)[1]) or stop
        if self.checkpoint is not None:
            _run_through(interrupted, write_checkpoint, self.checkpoint, self.model,
                         self.optimizer, self.rng, es, self.history)
        return stop


def resume(path, loss, X, Y, **fit_kwargs):
    """Load a checkpoint written by ``fit(..., checkpoint=path)`` and run the remaining epochs.

    ``fit_kwargs`` are those of the original call (``epochs`` is the total, as before). The
    saved optimizer, random generator and early-stopping states take precedence over the
    ``optimizer``, ``rng`` and ``early_stopping`` given again; a callable ``lr`` is not stored,
    so pass the same optimizer (or one with the same ``lr``) again in that case.

    Returns ``(model, history)``.
    """
    saved = read_checkpoint(path, given_optimizer=fit_kwargs.pop("optimizer", None))
    fit_kwargs.pop("rng", None)
    fit_kwargs.pop("early_stopping", None)
    history = fit(saved.model, loss, X, Y, optimizer=saved.optimizer, rng=saved.rng,
                  early_stopping=saved.early_stopping, _history=saved.history, **fit_kwargs)
    return saved.model, history


class _Step:
    """One optimizer step, with the guarantees ``fit`` makes about it.

    forward → loss → backward → (clip) → update, where a non-finite loss or gradient stops
    before the update and non-finite new weights are never made current, both with a
    ``DivergenceError`` naming the epoch, step and layer. However the step ends early, the
    BatchNorm running statistics that its forward pass moved are put back.
    """

    def __init__(self, model, loss, optimizer, store, clip_grad_norm):
        self.model, self.loss, self.optimizer, self.store = model, loss, optimizer, store
        self.clip_grad_norm = clip_grad_norm
        self.statistics = [a for bn in _batchnorms(model) for a in (bn.running_mean,
                                                                      bn.running_var)]
        self.saved = [np.empty_like(a) for a in self.statistics]
        if hasattr(model, "backward_from"):  # dL/dX is not needed: skip computing it
            self.backward = lambda loss: model.backward_from(loss, input_grad=False)
        else:
            self.backward = lambda loss: model.backward(loss.backward())

    def __call__(self, Xb, Yb, epoch: int, step: int, wb=None):
        """Take the step on batch ``(Xb, Yb)`` (row weights ``wb`` or None); return
        ``(loss value, A, gradient norms)``."""
        for saved, a in zip(self.saved, self.statistics):
            np.copyto(saved, a)
        try:
            A = self.model.forward(Xb)
            value = self.loss.forward(A, Yb, wb)
            self.backward(self.loss)
            self.store.sync()  # arrays a backward (or a callback) rebound since the last step
            norms = self.store.grad_norms()
            # a Python sum of the few norms: cheaper than NumPy's on every step
            if not (math.isfinite(value) and math.isfinite(sum(norms.tolist()))):
                bad = [path for path, v in zip(self.store.paths, norms) if not math.isfinite(v)]
                culprit = bad[0] if bad else (self.store.paths or ["output"])[-1]
                raise self._diverged(epoch, step, "the gradient" if bad else "the loss", culprit)
            if self.clip_grad_norm is not None:
                total = math.sqrt(float(np.dot(norms, norms)))
                if total > self.clip_grad_norm:
                    self.store.scale_grads(self.clip_grad_norm / total)
            bad = self.store.propose(self.optimizer)
            if bad is not None:
                raise self._diverged(epoch, step, "the updated weight", bad)
        except BaseException:  # divergence or an interrupt: as if the step never began
            for saved, a in zip(self.saved, self.statistics):
                np.copyto(a, saved)
            raise
        self.store.commit()
        return value, A, norms

    def _diverged(self, epoch, step, what, culprit) -> DivergenceError:
        layer = culprit.split(".")[1] if culprit.startswith("modules.") else culprit
        modules = getattr(self.model, "modules", None)
        module = f", {modules[int(layer)]!r}" if modules and layer.isdigit() else ""
        return DivergenceError(
            f"training diverged at epoch {epoch}, step {step}, layer {layer} ({culprit}"
            f"{module}): {what} is not finite. The model keeps the weights from before this "
            "step; try a smaller learning rate, clip_grad_norm, or scaled inputs."
        )


class _Tally:
    """An epoch's running sums: loss, correct predictions, rows (or weights) and gradient
    norms."""

    def __init__(self, loss, n_params: int):
        self.loss, self.per_row = loss, loss.reduction == "mean"
        self.classifies = isinstance(loss, (NLL, NLLM))
        self.loss_sum, self.correct, self.steps, self.seen = 0.0, 0, 0, 0
        self.norm_sum = np.zeros(n_params)

    def add(self, value: float, A: np.ndarray, Yb: np.ndarray, norms: np.ndarray,
            wb: np.ndarray | None = None) -> None:
        n = len(A) if wb is None else float(wb.sum())  # rows, or the batch's total weight
        # under reduction="mean" a batch's loss is Σᵢ wᵢ Lᵢ / K (wᵢ = 1 without weights):
        # the epoch's loss is Σ wᵢ Lᵢ / Σ wᵢ over its rows
        self.loss_sum += value * len(A) if self.per_row else value
        if self.classifies:
            self.correct += _n_correct(self.loss, A, Yb, wb)
        self.steps, self.seen = self.steps + 1, self.seen + n
        self.norm_sum += norms

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / self.seen if self.per_row else self.loss_sum

    def figures(self) -> dict:
        figures = {"loss": self.mean_loss}
        if self.classifies:
            figures["accuracy"] = self.correct / self.seen
        return figures

    def mean_norms(self) -> list[float]:
        return [float(total / self.steps) for total in self.norm_sum]


# -- checks and data: validated once, at the boundary -----------------------------------

def accuracy(loss, A: np.ndarray, Y: np.ndarray, sample_weight=None) -> float | None:
    """Fraction of correct predictions for the classification losses, else None.

    NLLM: argmax of each row against the label; NLL: ``A ≥ 0.5`` against the 0/1 label, and
    for several labels per row (multilabel) a row is correct when all its labels are (subset
    accuracy, as scikit-learn's ``score``). With ``sample_weight``, the weighted fraction.
    ``Y`` is in the form returned by ``loss.check_targets``.
    """
    if isinstance(loss, (NLL, NLLM)):
        total = len(A) if sample_weight is None else float(np.sum(sample_weight))
        return _n_correct(loss, A, Y, sample_weight) / total
    return None


def _n_correct(loss, A: np.ndarray, Y: np.ndarray, w=None) -> float:
    """How many rows of a batch ``accuracy`` counts as correct (their weight, with ``w``)."""
    if isinstance(loss, NLLM):
        labels = Y if Y.ndim == 1 else Y.argmax(axis=1)
        right = A.argmax(axis=1) == labels
    else:
        right = ((A >= 0.5) == (Y >= 0.5)).all(axis=1)
    return int(np.count_nonzero(right)) if w is None else float(np.dot(w, right))


def _check_loss(loss) -> None:
    if not isinstance(loss, Loss):
        raise InputError(
            "fit expected a chainrule loss (SquareLoss(), AbsoluteLoss(), NLL(), NLLM()), "
            f"got {type(loss).__name__}"
        )


def _prepare(model, loss, X, Y, owner: str):
    """Validate X and Y once; return them in the model's dtype and the loss's target form.

    Arrays in memory come back as arrays, a sparse X as CSR, any other array-like as a
    :class:`~chainrule.arrays.Rows` that converts each window it reads, after one pass
    over it here, a window at a time, to check its values.
    """
    dtype = getattr(model, "dtype", None)
    X = _inputs(X, owner, dtype)
    if kind(Y) == "rows":
        Y = Y if isinstance(Y, Rows) else Rows(Y, name="Y", owner=owner)
    else:
        Y = np.asarray(Y)
        if Y.ndim == 0:
            raise InputError(f"{owner} expected Y with one row per sample, got a scalar")
    n = n_rows(X)
    if n != n_rows(Y):
        raise InputError(f"{owner} expected X and Y with the same number of samples, "
                         f"got {n} samples in X and {n_rows(Y)} in Y")
    first = X[0:2] if isinstance(X, Rows) else X[:2].toarray() if kind(X) == "sparse" else X[:2]
    k = _predict(model, first).shape[1]  # also checks X's feature count against the model
    if isinstance(Y, Rows):
        Y = Y.with_convert(lambda Yw: loss.check_targets(Yw, (len(Yw), k), X.dtype))
        Y.check(lambda Yw, a, b: None)  # check_targets, on every window
        return X, Y
    return X, loss.check_targets(Y, (n, k), X.dtype)


def _inputs(X, owner: str, dtype):
    """``X`` checked: a float array, a CSR matrix or a :class:`Rows` (see ``_prepare``)."""
    if kind(X) == "sparse":
        return as_sparse_matrix(X, "X", owner, dtype)
    if kind(X) == "memory":
        return as_float_matrix(X, "X", owner, dtype)
    X = X if isinstance(X, Rows) else Rows(X, name="X", owner=owner)
    if X.ndim != 2 or 0 in X.shape:
        raise InputError(f"{owner} expected X as a non-empty 2-D array (n_samples, "
                         f"n_features), got {X!r} of shape {X.shape}")
    target = np.dtype(dtype) if dtype is not None else (
        X.dtype if X.dtype.kind == "f" else np.dtype(np.float32))
    X = X.with_convert(lambda A: A.astype(target, copy=False), target)
    X.check(lambda A, a, b: check_finite(A, f"X (rows {a}..{b - 1})", owner))
    return X


def _predict(model, X: np.ndarray) -> np.ndarray:
    if hasattr(model, "predict"):
        return model.predict(X)
    was = getattr(model, "training", True)
    model.eval()
    try:
        return model.forward(X)
    finally:
        model.train() if was else model.eval()


def evaluate(model, loss, X, Y, sample_weight=None) -> dict:
    """``{"loss": ..., "accuracy": ...}`` of ``model`` on prepared ``X``, ``Y`` in eval mode.

    With ``sample_weight`` (checked, float64 (n,)) both are weighted means,
    Σᵢ wᵢ Lᵢ / Σᵢ wᵢ. Sparse data, and data read through a :class:`~chainrule.arrays.Rows`,
    are predicted a window at a time.
    """
    sample_weight = normalised_weights(sample_weight, None, "evaluate", "rows")
    if kind(X) == "memory" and kind(Y) == "memory":
        A = _predict(model, X)
        out = {"loss": loss.forward(A, Y, sample_weight)}
        acc = accuracy(loss, A, Y, sample_weight)
        if acc is not None:
            out["accuracy"] = acc
        return out
    tally = _Tally(loss, 0)
    for Xc, Yc, wc in Dataset(X, Y, sample_weight).chunks():
        A = _predict(model, Xc)
        tally.add(loss.forward(A, Yc, wc), A, Yc, np.zeros(0), wc)
    return tally.figures()


def _check_options(epochs, batch_size, validation_split, input_noise, clip_grad_norm,
                   early_stopping, has_validation):
    check_int("fit", "epochs", epochs, 0)
    check_int("fit", "batch_size", batch_size, 1, or_none=True)
    check_float("fit", "validation_split", validation_split, 0.0, 1.0, hi_open=True)
    check_float("fit", "input_noise", input_noise, 0.0, np.inf)
    if clip_grad_norm is not None:
        check_float("fit", "clip_grad_norm", clip_grad_norm, 0.0, np.inf)
        if clip_grad_norm == 0:
            raise InputError("fit expected clip_grad_norm > 0 or None, got 0")
    if early_stopping is not None:
        if not isinstance(early_stopping, EarlyStopping):
            raise InputError(
                f"fit expected early_stopping=EarlyStopping(...) or None, got {early_stopping!r}"
            )
        if not has_validation:
            raise InputError(
                "fit with early_stopping expected validation_data=(X_val, Y_val) or "
                "validation_split > 0, got neither"
            )


def _training_data(model, loss, X, Y, sample_weight, validation_data, validation_split):
    """``((X, Y, w), (X_val, Y_val, w_val) or None)``, checked and in the model's dtype;
    ``w`` and ``w_val`` are float64 row weights or None."""
    X, Y = _prepare(model, loss, X, Y, "fit")
    n = n_rows(X)
    w = None if sample_weight is None else check_sample_weight(sample_weight, n, "fit")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise InputError("fit expected validation_data=(X_val, Y_val) or (X_val, Y_val, "
                             f"sample_weight_val), got {type(validation_data).__name__}"
                             + (f" of length {len(validation_data)}"
                                if isinstance(validation_data, (tuple, list)) else ""))
        owner = "fit (validation_data)"
        X_val, Y_val = _prepare(model, loss, *validation_data[:2], owner)
        w_val = validation_data[2] if len(validation_data) == 3 else None
        if w_val is not None:
            w_val = check_sample_weight(w_val, n_rows(X_val), owner)
        return (X, Y, normalised_weights(w, X.dtype, "fit")), (X_val, Y_val, w_val)
    if validation_split > 0:
        n_val = int(round(n * validation_split))
        if n_val < 1 or n_val >= n:
            raise InputError(
                f"fit expected validation_split to leave at least one row for training and "
                f"for validation, got {validation_split} of {n} rows"
            )
        train, val = (0, n - n_val), (n - n_val, n)
        (X, Y, w), validation = ([_part(A, *train) for A in (X, Y, w)],
                                 [_part(A, *val) for A in (X, Y, w)])
        if validation[2] is not None:
            normalised_weights(validation[2], None, "fit", "validation rows")  # not all 0
        return (X, Y, normalised_weights(w, X.dtype, "fit")), validation
    return (X, Y, normalised_weights(w, X.dtype, "fit")), None


def _part(A, start: int, stop: int):
    """Rows ``start:stop`` of an array, a CSR matrix or a Rows (None stays None)."""
    if A is None:
        return None
    return A.part(start, stop) if isinstance(A, Rows) else A[start:stop]


def _check_optimizer(optimizer):
    if optimizer is None:
        return Adam()
    if isinstance(optimizer, type) or not callable(getattr(optimizer, "step", None)):
        raise InputError(f"fit expected an optimizer instance such as cr.Adam(lr=1e-3), "
                         f"got {optimizer!r}")
    return optimizer


def _run_through(interrupted: list[bool], work, *args, again: bool = True):
    """``(done, work(*args))``, with a ``KeyboardInterrupt`` raised inside ``work`` (by a
    callback, a custom loss, or another signal handler) treated as a Ctrl-C signal: recorded
    in ``interrupted``, and ``work``, which can safely be run again, run once more to its end
    (``again=False``: not, for a callback). ``(False, None)`` when it did not complete."""
    for _ in range(2 if again else 1):
        try:
            return True, work(*args)
        except KeyboardInterrupt:
            interrupted[0] = True
    return False, None


def _interruptible(batches, interrupted: list[bool]):
    """The epoch's batches, ending (with ``interrupted`` set) where reading the next one
    raises ``KeyboardInterrupt``, e.g. inside a dataset library's own code."""
    try:
        yield from batches
    except KeyboardInterrupt:
        interrupted[0] = True


@contextmanager
def _deferred_interrupt():
    """Turn Ctrl-C into a flag that the loop reads after each complete step.

    Yields a one-element list whose item becomes True on SIGINT. A ``KeyboardInterrupt``
    raised rather than signalled (outside the main thread, where signals cannot be caught,
    or by a callback, a custom module or another signal handler) is handled where it can
    arise in the loop; one that still reaches here ends the block with the flag set, so that
    ``fit`` returns the History so far like after a Ctrl-C.
    """
    flag = [False]
    main = threading.current_thread() is threading.main_thread()
    if main:
        def handler(signum, frame):
            flag[0] = True

        previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    except KeyboardInterrupt:
        flag[0] = True
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def _batchnorms(model) -> list[BatchNorm]:
    return [m for m in submodules(model) if isinstance(m, BatchNorm)]


def _batches(n: int, batch_size: int | None, model, sampling: str = "epochs"
             ) -> list[tuple[int, int]]:
    """``(start, end)`` of each batch of an epoch over n rows (with ``"replacement"``:
    ``ceil(n / batch_size)`` batches of ``batch_size`` rows, only their sizes matter)."""
    bs = n if batch_size is None else min(int(batch_size), n)
    if sampling == "replacement":
        return [(0, bs)] * -(-n // bs)
    batches = [(start, min(start + bs, n)) for start in range(0, n, bs)]
    if len(batches) > 1 and n % bs == 1 and _batchnorms(model):
        # BatchNorm cannot train on a batch of one row: that row joins the batch before it.
        batches[-2:] = [(batches[-2][0], n)]
    return batches
