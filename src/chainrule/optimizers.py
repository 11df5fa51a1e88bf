"""Optimizers: rules that turn each parameter's gradient into an update, simplest first.

Every optimizer is built without parameters and updates them in place::

    opt = Adam(lr=1e-3)
    for X_batch, Y_batch in batches:
        loss(model(X_batch), Y_batch)
        model.backward_from(loss)
        opt.step(model.parameters())

The table below (API.md section 4) is what each ``_update`` implements, with g the gradient,
η the step size of step t (t counts from 1) and all operations elementwise:

============ ===================================== ===========================================
optimizer    defaults                              update
============ ===================================== ===========================================
SGD          lr=0.01                               W ← W − η g
Momentum     lr=0.01, beta=0.9                     V ← βV + η g;  W ← W − V
Adagrad      lr=0.01, eps=1e-10                    G ← G + g²;  W ← W − η g / (√G + eps)
RMSprop      lr=0.01, rho=0.99, eps=1e-8           G ← ρG + (1−ρ) g²;  W ← W − η g / (√G + eps)
Adadelta     lr=1.0, rho=0.9, eps=1e-6             E_g ← ρE_g + (1−ρ) g²;
                                                   Δ = √(E_Δ + eps) / √(E_g + eps) · g;
                                                   E_Δ ← ρE_Δ + (1−ρ) Δ²;  W ← W − η Δ
Adam         lr=1e-3, beta1=0.9, beta2=0.999,      m ← β₁m + (1−β₁) g;  v ← β₂v + (1−β₂) g²;
             eps=1e-8                              W ← W − η m̂ / (√v̂ + eps),
                                                   m̂ = m / (1−β₁ᵗ),  v̂ = v / (1−β₂ᵗ)
============ ===================================== ===========================================

A note on names: what the course notes call "Adadelta" (a decaying average of g² that scales
a *fixed* η) is :class:`RMSprop` here. :class:`Adadelta` is Zeiler's (2012) rule, as in
PyTorch, which also keeps a decaying average of the squared *updates* so that the step has
the units of W and η = 1 is a sensible default.

Shared by all (the :class:`Optimizer` base class):

- ``lr`` is a float η or a step-size schedule, a callable ``t -> η(t)`` (see
  :mod:`chainrule.schedules`).
- ``weight_decay=λ`` is the notes' ``J = J_loss + λ‖W‖²``: before the update,
  ``g ← g + 2λW`` for parameters named ``"W"`` only (offsets ``W0`` and batch-norm ``G``,
  ``B`` are not decayed). ``p.grad`` itself is never modified.
- State is created lazily, as zeros of the parameter's shape and dtype, the first time a
  parameter is stepped, and is updated in place: a step allocates no new arrays.
- ``state_dict()`` / ``load_state_dict(d)`` export and restore hyper-parameters, ``t`` and
  the per-parameter state as plain numbers and arrays (no pickle).
"""

from __future__ import annotations

import math
import numbers
import weakref
from collections.abc import Callable, Sequence

import numpy as np

from ._validate import all_finite
from .errors import InputError
from .flat import flat_view
from .parameter import Parameter

try:  # Adam's update in one compiled pass (_fused.c), built with the package when it can be
    from . import _fused
except ImportError:  # no C compiler at install time: NumPy computes the same numbers
    _fused = None
_FUSED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

LearningRate = float | Callable[[int], float]

_DECAY_RATES = ("beta", "beta1", "beta2", "rho")  # each in [0, 1)


def _as_number(value):
    """A 0-d array (as a checkpoint may hold) as its Python number; anything else unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def _check_hyper(owner: str, name: str, value) -> float:
    """``value`` as a float, checked against the range of hyper-parameter ``name``."""
    value = _as_number(value)
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    finite = real and math.isfinite(value)
    if name in _DECAY_RATES:
        ok, expected = finite and 0 <= value < 1, "in [0, 1)"
    elif name == "eps":
        ok, expected = finite and value > 0, "a finite number > 0"
    elif name == "lr":
        ok, expected = finite and value >= 0, "a finite number >= 0 or a callable t -> η(t)"
    else:  # weight_decay
        ok, expected = finite and value >= 0, "a finite number >= 0"
    if not ok:
        raise InputError(f"{owner} expected {name} {expected}, got {value!r}")
    return float(value)


class Optimizer:
    """Base class: owns ``t``, the step-size schedule, weight decay and argument checks.

    A subclass names its extra hyper-parameters in ``_hyper``, its per-parameter state
    arrays in ``_state_names`` and the number of scratch buffers its update needs in
    ``_n_scratch``, and implements ``_update(W, g, state, eta)``, which changes ``W`` in
    place. ``state`` maps each state name to its array and ``"scratch0"``, ``"scratch1"``,
    ... to buffers of ``W``'s shape whose contents need not survive the call.

    Attributes
    ----------
    lr : float or callable
        As given to the constructor.
    weight_decay : float
        λ of ``J = J_loss + λ‖W‖²``.
    t : int
        Number of steps taken (0 before the first).
    """

    _hyper: tuple[str, ...] = ()
    _state_names: tuple[str, ...] = ()
    _n_scratch = 1

    def __init__(self, lr: LearningRate, weight_decay: float = 0.0, **hyper: float):
        owner = type(self).__name__
        self.lr = lr if callable(lr) else _check_hyper(owner, "lr", lr)
        for name, value in hyper.items():
            setattr(self, name, _check_hyper(owner, name, value))
        self.weight_decay = _check_hyper(owner, "weight_decay", weight_decay)
        self.t = 0
        self._state: dict[int, dict[str, np.ndarray]] = {}  # id(param) -> its state
        self._params: list[Parameter] = []  # in order of first appearance
        self._pending: list[dict[str, np.ndarray]] | None = None  # from load_state_dict
        self._flat = None  # a _FlatCache: the flat layout of the last step

    # -- the step ----------------------------------------------------------------------

    def step(self, params: Sequence[Parameter], *, into: np.ndarray | None = None):
        """Take step ``t + 1``: update each parameter's ``.data`` in place from its ``.grad``.

        ``into`` is for ``fit``, which must be able to undo a step whose weights overflow:
        when ``params`` share the flat buffer of :mod:`chainrule.flat`, the new weights are
        written to ``into`` (an array of that buffer's shape and dtype) instead, the
        parameters keep the weights from before the step, and ``step`` returns whether the
        new ones are all finite. ``fit`` then points the parameters at ``into``: a step
        that can be undone without copying the weights, and that writes no memory the
        matrix products of the step have just read.
        """
        t = self.t + 1  # committed only once nothing can fail
        eta = self._check_schedule_value(self.lr(t), t) if callable(self.lr) else self.lr
        if self._pending is not None:
            self._attach(params)
        flat = self._flat_state(params)
        if into is not None and (flat is None or into.shape != flat[0].shape
                                 or into.dtype != flat[0].dtype):
            raise InputError(f"{type(self).__name__}.step expected into only for parameters "
                             "in one flat buffer (chainrule.flat), as an array of its shape "
                             "and dtype")
        self.t = t
        if flat is not None:  # one update over the model's contiguous weight buffer
            W, g, state, decayed_slices = flat
            if self.weight_decay:
                g = self._decayed_flat(W, g, state, decayed_slices)
            if into is not None:
                return self._update_into(W, g, state, eta, into)
            self._update(W, g, state, eta)
            return None
        two_lambda = 2.0 * self.weight_decay
        for p in params:
            state = self._state.get(id(p))
            if state is None:
                state = self._new_state(p)
            g = p.grad
            if two_lambda and p.name == "W":
                # g + 2λW into a buffer of our own: p.grad must stay the loss's gradient.
                decayed = state.get("decayed_grad")
                if decayed is None:
                    decayed = state["decayed_grad"] = np.empty_like(p.data)
                np.multiply(p.data, two_lambda, out=decayed)
                decayed += g
                g = decayed
            self._update(p.data, g, state, eta)

    def _decayed_flat(self, W, g, state, slices) -> np.ndarray:
        """``g + 2λW`` on the ``"W"`` parameters' stretches of the flat buffers."""
        decayed = state.get("decayed_grad")
        if decayed is None:
            decayed = state["decayed_grad"] = np.empty_like(W)
        np.copyto(decayed, g)
        scratch = state["scratch0"]
        for sl in slices:
            np.multiply(W[sl], 2.0 * self.weight_decay, out=scratch[sl])
            decayed[sl] += scratch[sl]
        return decayed

    def _flat_state(self, params: Sequence[Parameter]):
        """``(W, g, state, decay_slices)`` over the flat buffers behind ``params``, or None.

        When ``params`` are views into one buffer (see :mod:`chainrule.flat`), the state is
        kept as flat arrays too, and each parameter's state is a view into them, so
        ``state_dict`` and the per-parameter path see the same numbers. The weights may
        move to another buffer between steps (``fit`` alternates two, see ``step``); the
        state stays, and the last two weight buffers are recognised without a new check.
        """
        cache = self._flat
        same = cache is not None and len(params) == len(cache.params) and all(
            p is q and p.grad is g for p, q, g in zip(params, cache.params, cache.grads))
        if same:
            for views, W in cache.layouts:
                if all(p.data is view() for p, view in zip(params, views)):
                    return (W(), *cache.rest)
        found = flat_view(list(params))
        if same and found is not None and found[1] is cache.rest[0]:  # same grads: W moved
            cache.layouts = [_layout(params, found[0]), *cache.layouts[:1]]
            return (found[0], *cache.rest)
        self._flat = None
        if found is None:
            return None
        W, g = found
        state = {name: np.zeros_like(W) for name in self._state_names}
        for i in range(self._n_scratch):
            state[f"scratch{i}"] = np.empty_like(W)
        start, slices = 0, []
        for p in params:
            sl = slice(start, start + p.data.size)
            old = self._state.get(id(p))
            views = {name: state[name][sl].reshape(p.data.shape) for name in state}
            if old is not None:  # steps taken before: carry their state over
                for name in self._state_names:
                    views[name][...] = old[name]
            else:
                self._params.append(p)
            self._state[id(p)] = views
            if p.name == "W":
                slices.append(sl)
            start += p.data.size
        self._flat = _FlatCache(params, W, (g, state, slices))
        return (W, g, state, slices)

    def _update(self, W: np.ndarray, g: np.ndarray, state: dict, eta: float) -> None:
        raise NotImplementedError

    def _update_into(self, W, g, state, eta, out: np.ndarray) -> bool:
        """``_update`` with the new weights in ``out`` and ``W`` left as it was; are they all
        finite?"""
        np.copyto(out, W)
        self._update(out, g, state, eta)
        return all_finite(out)

    def _check_schedule_value(self, eta, t: int) -> float:
        value = _as_number(eta)
        real = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not (real and math.isfinite(value) and value >= 0):
            raise InputError(
                f"{type(self).__name__} expected the schedule lr={self.lr!r} to give a "
                f"finite step size >= 0, got lr({t}) = {eta!r}"
            )
        return float(value)

    def _new_state(self, p: Parameter) -> dict[str, np.ndarray]:
        state = {name: np.zeros_like(p.data) for name in self._state_names}
        for i in range(self._n_scratch):
            state[f"scratch{i}"] = np.empty_like(p.data)
        self._state[id(p)] = state
        self._params.append(p)  # also keeps p alive, so its id is not reused
        return state

    # -- export and restore ------------------------------------------------------------

    def hyperparameters(self) -> dict[str, float | None]:
        """``{"lr": η or None (for a schedule), <the optimizer's own>..., "weight_decay": λ}``."""
        hyper = {"lr": None if callable(self.lr) else self.lr}
        hyper.update({name: getattr(self, name) for name in self._hyper})
        hyper["weight_decay"] = self.weight_decay
        return hyper

    def state_dict(self) -> dict:
        """Hyper-parameters, ``t`` and per-parameter state as plain numbers and array copies.

        ``"state"`` has one dict per parameter, in the order the parameters were first given
        to :meth:`step`, mapping state names (e.g. ``"exp_avg"``) to arrays; it is empty for
        an optimizer without state (SGD). A callable ``lr`` is stored as ``None``.
        """
        if self._pending is not None:
            state = [{k: a.copy() for k, a in s.items()} for s in self._pending]
        else:
            state = [
                {name: self._state[id(p)][name].copy() for name in self._state_names}
                for p in self._params
            ]
        return {"hyper": self.hyperparameters(), "t": self.t, "state": state}

    def load_state_dict(self, d: dict) -> None:
        """Restore what :meth:`state_dict` exported.

        Hyper-parameters and ``t`` are restored at once (``lr`` only when ``d`` holds a
        number: a schedule is not stored, so the current ``lr`` is kept). The per-parameter
        state is attached, in order, to the parameters of the next :meth:`step` call, whose
        shapes must match.
        """
        owner = f"{type(self).__name__}.load_state_dict"
        if not isinstance(d, dict) or set(d) != {"hyper", "t", "state"}:
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise InputError(f"{owner} expected a dict with keys ['hyper', 'state', 't'], "
                             f"got {got}")
        hyper, t, state = d["hyper"], _as_number(d["t"]), d["state"]
        expected = list(self.hyperparameters())
        if not isinstance(hyper, dict) or sorted(hyper) != sorted(expected):
            got = sorted(hyper) if isinstance(hyper, dict) else type(hyper).__name__
            raise InputError(f"{owner} expected hyper-parameters {sorted(expected)}, got {got}")
        if not isinstance(t, numbers.Integral) or isinstance(t, bool) or t < 0:
            raise InputError(f"{owner} expected t to be an int >= 0, got {t!r}")
        if not isinstance(state, list | tuple):
            raise InputError(f"{owner} expected state as a list of dicts, got "
                             f"{type(state).__name__}")
        pending = [self._check_param_state(owner, i, s) for i, s in enumerate(state)]
        values = {name: _check_hyper(owner, name, hyper[name])
                  for name in expected if hyper[name] is not None or name != "lr"}
        for name, value in values.items():
            setattr(self, name, value)
        self.t = int(t)
        self._state, self._params, self._flat = {}, [], None
        self._pending = pending or None

    def _check_param_state(self, owner: str, i: int, s) -> dict[str, np.ndarray]:
        names = sorted(self._state_names)
        if not isinstance(s, dict) or (s and sorted(s) != names):
            got = sorted(s) if isinstance(s, dict) else type(s).__name__
            raise InputError(f"{owner} expected state[{i}] with keys {names} (or empty), "
                             f"got {got}")
        checked = {}
        for name, a in s.items():
            try:
                a = np.array(a)  # a copy: later changes to d do not reach us
            except (TypeError, ValueError):
                a = np.array(None)
            if a.dtype.kind != "f" or not np.isfinite(a).all():
                raise InputError(f"{owner} expected state[{i}][{name!r}] as a finite float "
                                 f"array, got array of dtype {a.dtype} and shape {a.shape}")
            checked[name] = a
        return checked

    def _attach(self, params: Sequence[Parameter]) -> None:
        """Give the loaded per-parameter state to ``params``, position by position."""
        pending, self._pending = self._pending, None
        owner = f"{type(self).__name__}.step"
        if len(pending) != len(params):
            self._pending = pending
            raise InputError(f"{owner} expected {len(pending)} parameters to match the loaded "
                             f"state, got {len(params)}")
        for i, (p, s) in enumerate(zip(params, pending, strict=True)):
            for name, a in s.items():
                if a.shape != p.data.shape:
                    self._pending, self._state, self._params = pending, {}, []
                    raise InputError(
                        f"{owner} expected loaded state[{i}][{name!r}] to have the shape of "
                        f"parameter {i} ({p!r}), got array of shape {a.shape}"
                    )
            state = self._new_state(p)
            for name, a in s.items():
                state[name][...] = a

    def __getstate__(self) -> dict:
        # State is keyed by id(param), which a copy changes: store it in parameter order.
        d = self.__dict__.copy()
        d["_state"] = [self._state[id(p)] for p in self._params]
        d["_flat"] = None
        return d

    def __setstate__(self, d: dict) -> None:
        states = d["_state"]
        self.__dict__.update(d)
        self._state = {id(p): s for p, s in zip(self._params, states, strict=True)}

    def __repr__(self) -> str:
        lr = self.lr if callable(self.lr) else f"{self.lr:g}"
        rest = "".join(f", {k}={v:g}" for k, v in list(self.hyperparameters().items())[1:])
        return f"{type(self).__name__}(lr={lr}{rest})"


class SGD(Optimizer):
    """Stochastic gradient descent: ``W ← W − η g``.

    Parameters
    ----------
    lr : float or callable t -> η(t), default 0.01
    weight_decay : float, default 0.0
        λ: ``g ← g + 2λW`` for parameters named ``"W"``.

    Example
    -------
    >>> from chainrule.parameter import Parameter
    >>> p = Parameter(np.array([1.0]), "W"); p.grad[:] = 2.0
    >>> SGD(lr=0.1).step([p]); p.data
    array([0.8])
    """

    def __init__(self, lr: LearningRate = 0.01, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)

    def _update(self, W, g, state, eta):
        step = np.multiply(g, eta, out=state["scratch0"])  # η g
        W -= step


class Momentum(Optimizer):
    """Gradient descent with momentum: ``V ← βV + η g;  W ← W − V``.

    ``V`` (state ``"velocity"``) starts at 0. For a constant η this equals PyTorch's
    ``SGD(momentum=β)``, whose buffer is ``V / η``; with a schedule the two differ, since
    here each gradient is scaled by the η of its own step.

    Parameters
    ----------
    lr : float or callable t -> η(t), default 0.01
    beta : float in [0, 1), default 0.9
    weight_decay : float, default 0.0
    """

    _hyper = ("beta",)
    _state_names = ("velocity",)

    def __init__(self, lr: LearningRate = 0.01, beta: float = 0.9, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay, beta=beta)

    def _update(self, W, g, state, eta):
        V, s = state["velocity"], state["scratch0"]
        V *= self.beta
        V += np.multiply(g, eta, out=s)  # V ← βV + η g
        W -= V


class Adagrad(Optimizer):
    """Adagrad: ``G ← G + g²;  W ← W − η g / (√G + eps)``.

    ``G`` (state ``"sum_sq"``) is the running sum of squared gradients, so each weight's
    step shrinks as its gradients accumulate.

    Parameters
    ----------
    lr : float or callable t -> η(t), default 0.01
    eps : float > 0, default 1e-10
    weight_decay : float, default 0.0
    """

    _hyper = ("eps",)
    _state_names = ("sum_sq",)

    def __init__(self, lr: LearningRate = 0.01, eps: float = 1e-10, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay, eps=eps)

    def _update(self, W, g, state, eta):
        G, s = state["sum_sq"], state["scratch0"]
        G += np.multiply(g, g, out=s)  # G ← G + g²
        _descend_scaled(W, g, G, eta, self.eps, s)


class RMSprop(Optimizer):
    """RMSprop: ``G ← ρG + (1−ρ) g²;  W ← W − η g / (√G + eps)``.

    ``G`` (state ``"square_avg"``) is a decaying average of squared gradients. This is the
    rule the course notes call "Adadelta"; chainrule's :class:`Adadelta` is Zeiler's.
    Matches PyTorch's ``RMSprop(alpha=ρ)``.

    Parameters
    ----------
    lr : float or callable t -> η(t), default 0.01
    rho : float in [0, 1), default 0.99
    eps : float > 0, default 1e-8
    weight_decay : float, default 0.0
    """

    _hyper = ("rho", "eps")
    _state_names = ("square_avg",)

    def __init__(self, lr: LearningRate = 0.01, rho: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(lr, weight_decay, rho=rho, eps=eps)

    def _update(self, W, g, state, eta):
        G, s = state["square_avg"], state["scratch0"]
        _decay_average(G, self.rho, np.multiply(g, g, out=s), s)  # G ← ρG + (1−ρ) g²
        _descend_scaled(W, g, G, eta, self.eps, s)


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012, as in PyTorch)::

        E_g ← ρE_g + (1−ρ) g²
        Δ   = √(E_Δ + eps) / √(E_g + eps) · g
        E_Δ ← ρE_Δ + (1−ρ) Δ²
        W   ← W − η Δ

    ``E_g`` and ``E_Δ`` (states ``"square_avg"`` and ``"acc_delta"``) are decaying averages
    of squared gradients and squared updates; their ratio gives Δ the units of W, so η = 1
    works. Not to be confused with the course notes' "Adadelta", which is
    :class:`RMSprop` here.

    Parameters
    ----------
    lr : float or callable t -> η(t), default 1.0
    rho : float in [0, 1), default 0.9
    eps : float > 0, default 1e-6
    weight_decay : float, default 0.0
    """

    _hyper = ("rho", "eps")
    _state_names = ("square_avg", "acc_delta")
    _n_scratch = 2

    def __init__(self, lr: LearningRate = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0):
        super().__init__(lr, weight_decay, rho=rho, eps=eps)

    def _update(self, W, g, state, eta):
        E_g, E_delta = state["square_avg"], state["acc_delta"]
        delta, s = state["scratch0"], state["scratch1"]
        # E_g ← ρE_g + (1−ρ) g²
        _decay_average(E_g, self.rho, np.multiply(g, g, out=s), s)
        # Δ = √(E_Δ + eps) / √(E_g + eps) · g
        np.sqrt(np.add(E_delta, self.eps, out=delta), out=delta)
        delta /= np.sqrt(np.add(E_g, self.eps, out=s), out=s)
        delta *= g
        # E_Δ ← ρE_Δ + (1−ρ) Δ²
        _decay_average(E_delta, self.rho, np.multiply(delta, delta, out=s), s)
        # W ← W − η Δ
        delta *= eta
        W -= delta


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015)::

        m ← β₁m + (1−β₁) g           v ← β₂v + (1−β₂) g²
        W ← W − η m̂ / (√v̂ + eps),   m̂ = m / (1−β₁ᵗ),  v̂ = v / (1−β₂ᵗ)

    ``m`` and ``v`` (states ``"exp_avg"`` and ``"exp_avg_sq"``) start at 0; dividing by
    ``1−βᵗ`` undoes that start's bias toward 0 in the first steps. Matches PyTorch's ``Adam``
    (``weight_decay`` there is our 2λ; this is L2 regularisation, not AdamW).

    Parameters
    ----------
    lr : float or callable t -> η(t), default 1e-3
    beta1, beta2 : float in [0, 1), default 0.9 and 0.999
    eps : float > 0, default 1e-8
    weight_decay : float, default 0.0
    """

    _hyper = ("beta1", "beta2", "eps")
    _state_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, lr: LearningRate = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay, beta1=beta1, beta2=beta2, eps=eps)

    def _update(self, W, g, state, eta):
        m, v, s = state["exp_avg"], state["exp_avg_sq"], state["scratch0"]
        step_size, eps_hat = self._step_size_and_eps(eta)
        if _fusable(W, g, m, v):  # the lines below in one compiled pass, to the same bits
            _fused.adam(W, g, m, v, self.beta1, self.beta2, eps_hat, step_size,
                        W.dtype == np.float64)
            return
        _decay_average(m, self.beta1, g, s)  # m ← β₁m + (1−β₁) g
        _decay_average(v, self.beta2, np.multiply(g, g, out=s), s)  # v ← β₂v + (1−β₂) g²
        np.sqrt(v, out=s)
        s += eps_hat
        np.divide(m, s, out=s)
        s *= step_size
        W -= s

    def _update_into(self, W, g, state, eta, out):
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if not _fusable(W, g, m, v, out):
            return super()._update_into(W, g, state, eta, out)
        step_size, eps_hat = self._step_size_and_eps(eta)
        # the compiled pass reads W, writes out and checks each new weight on the way
        return _fused.adam(W, g, m, v, self.beta1, self.beta2, eps_hat, step_size,
                           W.dtype == np.float64, out)

    def _step_size_and_eps(self, eta: float) -> tuple[float, float]:
        """η m̂ / (√v̂ + eps) = (η √(1−β₂ᵗ) / (1−β₁ᵗ)) · m / (√v + eps √(1−β₂ᵗ)): the same
        number with one pass over the arrays fewer (PyTorch's arrangement)."""
        bias1 = 1.0 - self.beta1**self.t
        bias2 = 1.0 - self.beta2**self.t
        return eta * math.sqrt(bias2) / bias1, self.eps * math.sqrt(bias2)


def _fusable(*arrays: np.ndarray) -> bool:
    """Can ``chainrule._fused`` take these: contiguous arrays of one float32/float64 dtype
    (the first one writable)?"""
    dtype = arrays[0].dtype
    return _fused is not None and dtype in _FUSED_DTYPES and arrays[0].flags.writeable and all(
        a.dtype == dtype and a.flags.c_contiguous for a in arrays)


def _decay_average(avg: np.ndarray, rate: float, x: np.ndarray, s: np.ndarray) -> None:
    """``avg ← rate·avg + (1−rate)·x`` in place, via scratch ``s`` (which may be ``x``)."""
    avg *= rate
    avg += np.multiply(x, 1.0 - rate, out=s)


def _descend_scaled(W, g, G, eta: float, eps: float, s: np.ndarray) -> None:
    """``W ← W − η g / (√G + eps)`` using scratch buffer ``s``."""
    np.sqrt(G, out=s)
    s += eps
    np.divide(g, s, out=s)
    s *= eta
    W -= s


class _FlatCache:
    """What ``Optimizer._flat_state`` found for a list of parameters: the parameters and
    their gradients (compared by identity at each step), the weight buffers they were seen
    in, and ``(g, state, decay_slices)``. Weights are held by weak reference, so that a
    buffer dropped by ``fit`` is freed."""

    __slots__ = ("params", "grads", "layouts", "rest")

    def __init__(self, params, W, rest):
        self.params = list(params)
        self.grads = [p.grad for p in params]
        self.layouts = [_layout(params, W)]
        self.rest = rest


def _layout(params, W) -> tuple[list, weakref.ref]:
    """Weak references to each parameter's weights and to the buffer ``W`` behind them."""
    return [weakref.ref(p.data) for p in params], weakref.ref(W)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "SGD": SGD, "Momentum": Momentum, "Adagrad": Adagrad, "RMSprop": RMSprop,
    "Adadelta": Adadelta, "Adam": Adam,
}
