"""``fit``: gradient descent on a ``Sequential``, with the notes' regularizers and diagnostics.

One optimizer step (notes' section 6.6)::

    A = model.forward(X_batch)              forward pass, caches for backward
    L = loss(A, Y_batch)
    model.backward_from(loss)               every Parameter's .grad = dL/dW
    optimizer.step(params)                  W ← W − η · (update from .grad)

``batch_size=1`` is stochastic gradient descent, ``batch_size=None`` batch gradient descent
(the whole training set each step), anything else mini-batch gradient descent.
"""

from __future__ import annotations

import math
import numbers
import signal
import threading
import time
from contextlib import contextmanager

import numpy as np

from . import progress as _progress
from ._checks import check_float
from ._rng import as_generator
from ._validate import all_finite, as_float_matrix, check_same_length
from .errors import DivergenceError, InputError
from .flat import flat_view, views_like
from .losses import NLL, NLLM, Loss
from .module import named_parameters, submodules
from .optimizers import Optimizer


class EarlyStopping:
    """Stop when the validation loss stops decreasing (notes' Definition 30).

    An epoch improves when ``val_loss < best − min_delta``. Training stops after ``patience``
    consecutive epochs without improvement, so with the best epoch at (0-based) index k it
    runs k + 1 + patience epochs. With ``restore_best`` the model ends with the weights of
    its best epoch. ``fit`` needs validation data to use it.
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0, restore_best: bool = True):
        if not isinstance(patience, numbers.Integral) or isinstance(patience, bool) \
                or patience < 0:
            raise InputError(f"EarlyStopping expected patience ≥ 0 (an int), got {patience!r}")
        self.patience = int(patience)
        self.min_delta = check_float("EarlyStopping", "min_delta", min_delta, 0.0, np.inf)
        self.restore_best = bool(restore_best)
        self.reset()

    def reset(self) -> None:
        self.best = math.inf
        self.best_epoch = None
        self.wait = 0
        self.best_weights = None

    def update(self, epoch: int, val_loss: float, params: list) -> bool:
        """Record epoch ``epoch``'s validation loss; return True when training should stop."""
        if val_loss < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = val_loss, epoch, 0
            if self.restore_best:
                self.best_weights = [p.data.copy() for p in params]
            return False
        self.wait += 1
        return self.wait >= self.patience

    def restore(self, params: list) -> None:
        if self.restore_best and self.best_weights is not None:
            for p, W in zip(params, self.best_weights):
                p.data[...] = W

    def __repr__(self) -> str:
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
                f"restore_best={self.restore_best})")


class History:
    """What ``fit`` measured, epoch by epoch.

    Attributes
    ----------
    history : dict[str, list[float]]
        ``"loss"`` (mean training loss over the epoch's batches), ``"val_loss"`` (after the
        epoch's updates, eval mode), ``"accuracy"``/``"val_accuracy"`` for NLL and NLLM, and
        ``"time"`` (wall seconds per epoch).
    grad_norms : dict[str, list[float]]
        Per parameter path (``"modules.0.W"``), the L2 norm of its gradient averaged over
        each epoch's steps: vanishing gradients show up as first layers orders of magnitude
        below the last (notes' section 6.7.3), exploding ones as growing norms.
    best_epoch : int or None
        0-based epoch of the lowest validation loss (training loss without validation).
    stopped_early, interrupted : bool
    """

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.grad_norms: dict[str, list[float]] = {}
        self.best_epoch: int | None = None
        self.stopped_early = False
        self.interrupted = False

    @property
    def epochs(self) -> int:
        return len(self.history.get("loss", []))

    def _append(self, figures: dict) -> None:
        for key, value in figures.items():
            self.history.setdefault(key, []).append(value)
        monitor = self.history.get("val_loss") or self.history["loss"]
        self.best_epoch = int(np.argmin(monitor))

    def plot(self, path=None):
        """Loss and accuracy curves (best epoch marked) and per-layer gradient norms on a log
        scale; saved to ``path`` when given. Needs matplotlib (the "plot" extra)."""
        from .plotting import plot_history
        return plot_history(self, path)

    def to_dict(self) -> dict:
        return {"history": self.history, "grad_norms": self.grad_norms,
                "best_epoch": self.best_epoch, "stopped_early": self.stopped_early,
                "interrupted": self.interrupted}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        h = cls()
        h.history = {k: [float(v) for v in vs] for k, vs in d["history"].items()}
        h.grad_norms = {k: [float(v) for v in vs] for k, vs in d["grad_norms"].items()}
        h.best_epoch = d["best_epoch"]
        h.stopped_early = bool(d["stopped_early"])
        h.interrupted = bool(d["interrupted"])
        return h

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v and k != "time"}
        return (f"History(epochs={self.epochs}, best_epoch={self.best_epoch}, "
                f"stopped_early={self.stopped_early}, interrupted={self.interrupted}, last={last})")


# -- helpers -------------------------------------------------------------------------------

def accuracy(loss, A: np.ndarray, Y: np.ndarray) -> float | None:
    """Fraction of correct predictions for the classification losses, else None.

    NLLM: argmax of each row against the label; NLL: ``A ≥ 0.5`` against the 0/1 label.
    ``Y`` is in the form returned by ``loss.check_targets``.
    """
    if isinstance(loss, (NLL, NLLM)):
        return _n_correct(loss, A, Y) / len(A)
    return None


def _n_correct(loss, A: np.ndarray, Y: np.ndarray) -> int:
    """How many rows of a batch ``accuracy`` counts as correct."""
    if isinstance(loss, NLLM):
        labels = Y if Y.ndim == 1 else Y.argmax(axis=1)
        return int(np.count_nonzero(A.argmax(axis=1) == labels))
    return int(np.count_nonzero((A >= 0.5) == (Y >= 0.5)))


def _check_loss(loss) -> None:
    if not isinstance(loss, Loss):
        raise InputError(
            "fit expected a chainrule loss (SquareLoss(), AbsoluteLoss(), NLL(), NLLM()), "
            f"got {type(loss).__name__}"
        )


def _prepare(model, loss, X, Y, owner: str):
    """Validate X and Y once; return them in the model's dtype and the loss's target form."""
    dtype = getattr(model, "dtype", None)
    X = as_float_matrix(X, "X", owner, dtype)
    Y = np.asarray(Y)
    if Y.ndim == 0:
        raise InputError(f"{owner} expected Y with one row per sample, got a scalar")
    check_same_length(X, Y, owner)
    k = _predict(model, X[:2]).shape[1]  # also checks X's feature count against the model
    return X, loss.check_targets(Y, (len(X), k), X.dtype)


def _predict(model, X: np.ndarray) -> np.ndarray:
    if hasattr(model, "predict"):
        return model.predict(X)
    was = getattr(model, "training", True)
    model.eval()
    try:
        return model.forward(X)
    finally:
        model.train() if was else model.eval()


def evaluate(model, loss, X: np.ndarray, Y: np.ndarray) -> dict:
    """``{"loss": ..., "accuracy": ...}`` of ``model`` on prepared ``X``, ``Y`` in eval mode."""
    A = _predict(model, X)
    out = {"loss": loss.forward(A, Y)}
    acc = accuracy(loss, A, Y)
    if acc is not None:
        out["accuracy"] = acc
    return out


def _check_options(epochs, batch_size, validation_split, input_noise, clip_grad_norm,
                   early_stopping, has_validation):
    if not isinstance(epochs, numbers.Integral) or isinstance(epochs, bool) or epochs < 0:
        raise InputError(f"fit expected epochs ≥ 0 (an int), got {epochs!r}")
    if batch_size is not None and (not isinstance(batch_size, numbers.Integral)
                                   or isinstance(batch_size, bool) or batch_size <= 0):
        raise InputError(f"fit expected batch_size ≥ 1 or None, got {batch_size!r}")
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


@contextmanager
def _deferred_interrupt():
    """Turn Ctrl-C into a flag that the loop reads after each complete step.

    Yields a one-element list whose item becomes True on SIGINT. Outside the main thread
    signals cannot be caught; there ``KeyboardInterrupt`` is handled by the caller.
    """
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag[0] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class _GradNorms:
    """Per-parameter L2 norms of the gradients, as a float64 array.

    One BLAS dot product per parameter, in the parameters' dtype; a float32 sum of squares
    that overflows is recomputed in float64, so only a truly non-finite gradient gives a
    non-finite norm.
    """

    def __init__(self, params: list):
        self.params = params

    def __call__(self) -> np.ndarray:
        sums = np.array([np.vdot(p.grad, p.grad) for p in self.params], dtype=np.float64)
        if not math.isfinite(np.add.reduce(sums)):
            for i, p in enumerate(self.params):
                if not math.isfinite(sums[i]):
                    g = p.grad.astype(np.float64)
                    sums[i] = np.vdot(g, g)
        return np.sqrt(sums)


def _batchnorms(model) -> list:
    """The BatchNorm modules inside ``model`` (through nested ``.modules``)."""
    from .layers.batchnorm import BatchNorm
    return [m for m in submodules(model) if isinstance(m, BatchNorm)]


class _Step:
    """One optimizer step, with the guarantees ``fit`` makes about it.

    forward → loss → backward → (clip) → optimizer step, where a non-finite loss or
    gradient stops before the update and a non-finite updated weight is undone, both with a
    ``DivergenceError`` naming the epoch, step and layer. ``undo()`` puts back the
    BatchNorm running statistics that the forward pass moved, and the weights when they are
    updated in place (with two weight buffers a failed step never reached them), as they
    were before the step (also for an interrupt in the middle of one).
    """

    def __init__(self, model, loss, optimizer, clip_grad_norm):
        named = named_parameters(model)
        self.paths = [path for path, _ in named]
        self.params = [p for _, p in named]
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.clip_grad_norm = clip_grad_norm
        modules = getattr(model, "modules", None)
        self.layer_of = {path: f", {modules[int(path.split('.')[1])]!r}"
                         for path in self.paths if modules and path.startswith("modules.")}
        if hasattr(model, "backward_from"):  # dL/dX is not needed: skip computing it
            self.backward = lambda loss: model.backward_from(loss, input_grad=False)
        else:
            self.backward = lambda loss: model.backward(loss.backward())
        # With the flat layout of chainrule.flat and a chainrule optimizer, the weights live
        # in two buffers in turn: each step writes the new weights into the one not in use
        # (step(into=...)) and the parameters are pointed at it only if they are all finite.
        # Undoing a step is then not pointing them, and no step writes the weights that its
        # own matrix products (on both BLAS threads) have just read, which is slow.
        flat = flat_view(self.params)
        self.buffers = None
        if flat is not None and isinstance(optimizer, Optimizer):
            spare = np.empty_like(flat[0])
            self.buffers = (flat[0], spare)
            self.views = ([p.data for p in self.params], views_like(self.params, spare))
            self.front = 0  # the buffer the parameters point at
        self.weights = [flat[0]] if flat is not None else [p.data for p in self.params]
        statistics = [a for bn in _batchnorms(model) for a in (bn.running_mean, bn.running_var)]
        self.saved = statistics if self.buffers is not None else self.weights + statistics
        self.backups = [np.empty_like(a) for a in self.saved]
        self.grad_norms = _GradNorms(self.params)

    def __call__(self, Xb, Yb, epoch: int, step: int):
        """Take the step on batch ``(Xb, Yb)``; return ``(loss value, A, gradient norms)``."""
        for old, a in zip(self.backups, self.saved):
            np.copyto(old, a)
        A = self.model.forward(Xb)
        value = self.loss.forward(A, Yb)
        self.backward(self.loss)
        norms = self.grad_norms()
        if not (math.isfinite(value) and math.isfinite(np.add.reduce(norms))):
            bad = [path for path, v in zip(self.paths, norms) if not math.isfinite(v)]
            culprit = bad[0] if bad else (self.paths[-1] if self.paths else "output")
            self.undo()
            raise self._diverged(epoch, step, "the gradient" if bad else "the loss", culprit)
        if self.clip_grad_norm is not None:
            total = math.sqrt(float(np.dot(norms, norms)))
            if total > self.clip_grad_norm:
                scale = self.clip_grad_norm / total
                for p in self.params:
                    p.grad *= scale
        if self.buffers is not None:
            back = 1 - self.front
            finite = self.optimizer.step(self.params, into=self.buffers[back])
            if finite:
                self._point_at(back)
            new = self.views[back]
        else:
            self.optimizer.step(self.params)
            finite = all(all_finite(W) for W in self.weights)
            new = [p.data for p in self.params]
        if not finite:
            culprit = next(path for path, W in zip(self.paths, new) if not np.isfinite(W).all())
            self.undo()
            raise self._diverged(epoch, step, "the updated weight", culprit)
        return value, A, norms

    def undo(self) -> None:
        for old, a in zip(self.backups, self.saved):
            np.copyto(a, old)

    def _point_at(self, i: int) -> None:
        for p, view in zip(self.params, self.views[i]):
            p.data = view
        self.front = i

    def __enter__(self) -> _Step:
        return self

    def __exit__(self, *exc) -> None:
        self.finish()

    def finish(self) -> None:
        """Leave the weights in the model's own buffer (the one they were in before fit), so
        that arrays taken from ``p.data`` before fit see the weights it ends with."""
        if self.buffers is not None and self.front != 0:
            np.copyto(self.buffers[0], self.buffers[1])
            self._point_at(0)

    def _diverged(self, epoch, step, what, culprit) -> DivergenceError:
        layer = culprit.split(".")[1] if culprit.startswith("modules.") else culprit
        return DivergenceError(
            f"training diverged at epoch {epoch}, step {step}, layer {layer} ({culprit}"
            f"{self.layer_of.get(culprit, '')}): {what} is not finite. The model keeps the "
            "weights from before this step; try a smaller learning rate, clip_grad_norm, or "
            "scaled inputs."
        )


def _batches(n: int, batch_size: int | None, model) -> list[tuple[int, int]]:
    """``(start, end)`` of each batch of an epoch over n rows."""
    bs = n if batch_size is None else min(int(batch_size), n)
    batches = [(start, min(start + bs, n)) for start in range(0, n, bs)]
    if len(batches) > 1 and n % bs == 1 and _batchnorms(model):
        # BatchNorm cannot train on a batch of one row: that row joins the batch before it.
        batches[-2:] = [(batches[-2][0], n)]
    return batches


# -- fit -----------------------------------------------------------------------------------

def fit(model, loss, X, Y, *, optimizer=None, epochs: int = 10, batch_size: int | None = 32,
        shuffle: bool = True, validation_data=None, validation_split: float = 0.0,
        early_stopping: EarlyStopping | None = None, input_noise: float = 0.0,
        clip_grad_norm: float | None = None, rng=None, progress=None, callbacks=(),
        checkpoint=None, _resume_state=None) -> History:
    """Train ``model`` on ``(X, Y)`` by gradient descent on ``loss``; return a :class:`History`.

    Parameters
    ----------
    model : Sequential
    loss : SquareLoss, AbsoluteLoss, NLL or NLLM
    X : array (n_samples, n_features); Y : targets as the loss accepts them
    optimizer : optimizer, default ``Adam()``
    epochs : int, default 10
    batch_size : int or None, default 32
        1: SGD; None: batch gradient descent; larger than the data: the whole data.
        The last mini-batch of an epoch may be smaller; in a model with ``BatchNorm``, a
        last batch of one row (which it cannot normalise) joins the batch before it.
    shuffle : bool, default True
        Reshuffle the training rows every epoch (through ``rng``).
    validation_data : (X_val, Y_val), optional
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

    Notes
    -----
    With chainrule's optimizers, each step writes the new weights into one of two buffers
    in turn and then points every ``Parameter.data`` at them, so that a diverging step is
    undone without a copy. Read weights through the parameters (``layer.W.data``) during
    fit, e.g. in a callback; when fit returns or raises, the weights are back in the arrays
    they were in before it.
    """
    _check_loss(loss)
    has_validation = validation_data is not None or validation_split > 0
    _check_options(epochs, batch_size, validation_split, input_noise, clip_grad_norm,
                   early_stopping, has_validation)
    X, Y = _prepare(model, loss, X, Y, "fit")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise InputError("fit expected validation_data=(X_val, Y_val), got "
                             f"{type(validation_data).__name__}"
                             + (f" of length {len(validation_data)}"
                                if isinstance(validation_data, (tuple, list)) else ""))
        Xv, Yv = _prepare(model, loss, *validation_data, "fit (validation_data)")
    elif validation_split > 0:
        n_val = int(round(len(X) * validation_split))
        if n_val < 1 or n_val >= len(X):
            raise InputError(
                f"fit expected validation_split to leave at least one row for training and "
                f"for validation, got {validation_split} of {len(X)} rows"
            )
        X, Xv, Y, Yv = X[:-n_val], X[-n_val:], Y[:-n_val], Y[-n_val:]
    else:
        Xv = Yv = None
    if optimizer is None:
        from .optimizers import Adam
        optimizer = Adam()
    elif isinstance(optimizer, type) or not callable(getattr(optimizer, "step", None)):
        raise InputError(f"fit expected an optimizer instance such as cr.Adam(lr=1e-3), "
                         f"got {optimizer!r}")
    rng = as_generator(rng)
    if hasattr(callbacks, "on_epoch_end") or hasattr(callbacks, "on_step_end"):
        callbacks = [callbacks]  # one callback given on its own
    callbacks = list(callbacks)

    take_step = _Step(model, loss, optimizer, clip_grad_norm)
    params, paths = take_step.params, take_step.paths
    history = History()
    start_epoch = 0
    if _resume_state is not None:
        history, start_epoch = _resume_state["history"], _resume_state["epoch"]
        if _resume_state["finished"]:  # the run had ended: only the end of fit is left
            start_epoch = epochs
        if early_stopping is not None and _resume_state.get("early_stopping") is not None:
            early_stopping.__dict__.update(_resume_state["early_stopping"])
    elif early_stopping is not None:
        early_stopping.reset()
    for path in paths:
        history.grad_norms.setdefault(path, [])

    n = len(X)
    batches = _batches(n, batch_size, model)
    show = _progress.wanted(progress)
    step_callbacks = [cb for cb in callbacks if hasattr(cb, "on_step_end")]
    classifies = isinstance(loss, (NLL, NLLM))
    per_row = loss.reduction == "mean"  # a batch's loss is its rows' mean: weigh by rows

    # Overflow on the way to a non-finite loss is reported once, as a DivergenceError; and
    # however the loop ends, the weights end in the model's own buffer (_Step.finish).
    with _deferred_interrupt() as interrupted, np.errstate(over="ignore", invalid="ignore",
                                                           divide="ignore"), take_step:
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            model.train()
            order = rng.permutation(n) if shuffle else None
            norm_sum = np.zeros(len(params))
            loss_sum, correct, steps, seen = 0.0, 0, 0, 0
            bar = _progress.EpochBar(epoch, epochs, len(batches)) if show else None
            for step, (start, end) in enumerate(batches):
                if interrupted[0]:  # Ctrl-C between epochs: no further step
                    break
                if order is None:
                    Xb, Yb = X[start:end], Y[start:end]
                else:
                    idx = order[start:end]  # take is faster than fancy indexing X[idx] on rows
                    Xb, Yb = X.take(idx, axis=0), Y.take(idx, axis=0)
                if input_noise:
                    Xb = Xb + rng.normal(0.0, input_noise, Xb.shape).astype(X.dtype)
                try:
                    value, A, norms = take_step(Xb, Yb, epoch, step)
                except KeyboardInterrupt:  # outside the main thread: undo the partial step
                    take_step.undo()
                    interrupted[0] = True
                    break
                norm_sum += norms
                loss_sum += value * (end - start) if per_row else value
                if classifies:
                    correct += _n_correct(loss, A, Yb)
                steps, seen = steps + 1, end
                if bar is not None:
                    bar.update(1, {"loss": loss_sum / seen})
                for cb in step_callbacks:
                    cb.on_step_end(step, {"loss": value, "epoch": epoch})
                if interrupted[0]:
                    break
            if steps == 0:  # interrupted before the epoch's first step completed
                if bar is not None:
                    bar.close({})
                break
            figures = {"loss": loss_sum / seen if per_row else loss_sum}
            if classifies:
                figures["accuracy"] = correct / seen
            if Xv is not None:
                val = evaluate(model, loss, Xv, Yv)
                figures["val_loss"] = val["loss"]
                if "accuracy" in val:
                    figures["val_accuracy"] = val["accuracy"]
            figures["time"] = time.perf_counter() - t0
            history._append(figures)
            for path, total in zip(paths, norm_sum):
                history.grad_norms[path].append(float(total / steps))
            if bar is not None:
                bar.close({k: v for k, v in figures.items() if k != "time"})
            if steps < len(batches):  # interrupted in the middle of the epoch
                break
            stop = False
            if early_stopping is not None and early_stopping.update(
                    epoch, figures["val_loss"], params):
                history.stopped_early = stop = True
            for cb in callbacks:
                if hasattr(cb, "on_epoch_end") and cb.on_epoch_end(epoch, dict(figures)):
                    stop = True
            if checkpoint is not None:
                from .checkpoint import write_checkpoint
                # only early stopping ends a run for good; a callback's stop can be resumed
                write_checkpoint(checkpoint, model, optimizer, epoch + 1, rng, early_stopping,
                                 history, finished=history.stopped_early)
            if stop or interrupted[0]:  # Ctrl-C after the last step ends at the epoch's end
                break
    history.interrupted = bool(interrupted[0])
    if early_stopping is not None:
        early_stopping.restore(params)
        if early_stopping.best_epoch is not None:
            history.best_epoch = early_stopping.best_epoch
    model.train()
    return history
