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

A note on names: chapter 6 of the notes names Adadelta in 6.7.2 but defers its formula to an
appendix; what course appendices may call "Adadelta" (a decaying average of g² that scales
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
  parameter is stepped, and is updated in place. It is kept per parameter object
  (``opt.state[p]``), or per :class:`~chainrule.buffer.ParameterBuffer` when ``fit`` steps a
  model's flat buffer (one array per state name then, split by parameter on export).
- Each ``_update`` below is the row of the table in plain NumPy, and it is what runs unless
  :mod:`chainrule.kernels` has a compiled kernel for the class (Adam's), which gives the
  same bits.
- ``state_dict()`` / ``load_state_dict(d)`` export and restore hyper-parameters, ``t`` and
  the per-parameter state as plain numbers and arrays (no pickle).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np

from . import kernels
from ._validate import as_number, check_loaded_state, check_state_dict
from .buffer import ParameterBuffer
from .errors import InputError
from .parameter import Parameter

LearningRate = float | Callable[[int], float]

_DECAY_RATES = ("beta", "beta1", "beta2", "rho")  # each in [0, 1)


def _check_hyper(owner: str, name: str, value) -> float:
    """``value`` as a float, checked against the range of hyper-parameter ``name``."""
    value = as_number(value)
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
    """Base class: owns ``t``, the step-size schedule, weight decay, argument checks and state.

    A subclass names its extra hyper-parameters in ``_hyper`` and its per-parameter state
    arrays in ``_state_names``, and implements ``_update(W, g, state, eta)``: its row of the
    table above, changing ``W`` and the arrays of ``state`` in place.

    Attributes
    ----------
    lr : float or callable
        As given to the constructor.
    weight_decay : float
        λ of ``J = J_loss + λ‖W‖²``.
    t : int
        Number of steps taken (0 before the first).
    state : dict
        Per parameter (or per ``ParameterBuffer``) a dict of state arrays, e.g.
        ``{"exp_avg": m, "exp_avg_sq": v}``.
    """

    _hyper: tuple[str, ...] = ()
    _state_names: tuple[str, ...] = ()
    # Does the update work weight by weight, so that it may run once over a model's whole
    # ParameterBuffer? chainrule's optimizers do. A subclass elsewhere that writes its own
    # step or _update may need each parameter's own array (its shape, its norm): it is
    # stepped one parameter at a time unless it sets elementwise = True itself.
    elementwise = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = "step" in cls.__dict__ or "_update" in cls.__dict__
        if own and "elementwise" not in cls.__dict__ and cls.__module__ != __name__:
            cls.elementwise = False

    def __init__(self, lr: LearningRate, weight_decay: float = 0.0, **hyper: float):
        owner = type(self).__name__
        self.lr = lr if callable(lr) else _check_hyper(owner, "lr", lr)
        for name, value in hyper.items():
            setattr(self, name, _check_hyper(owner, name, value))
        self.weight_decay = _check_hyper(owner, "weight_decay", weight_decay)
        self.t = 0
        self.state: dict[Parameter | ParameterBuffer, dict[str, np.ndarray]] = {}
        self._loaded: list[dict[str, np.ndarray]] | None = None  # see load_state_dict

    # -- the step ----------------------------------------------------------------------

    def step(self, params: Sequence[Parameter] | ParameterBuffer) -> None:
        """Take step ``t + 1``: update each parameter's ``.data`` in place from its ``.grad``.

        ``params`` is a list of parameters, or a model's ``ParameterBuffer`` (then one
        update runs over its flat arrays: the same numbers, faster).
        """
        arrays = self._arrays(params)
        eta = self._next_step_size()
        for W, g, decay, state in arrays:
            self._apply(W, g, decay, state, eta, out=W)

    def _step_into(self, buffer: ParameterBuffer, out: np.ndarray) -> bool | None:
        """:meth:`step` over ``buffer`` with the new weights written to ``out`` and
        ``buffer.data`` left as it was (``ParameterBuffer.propose``); see :meth:`_apply`."""
        [(W, g, decay, state)] = self._arrays(buffer)
        eta = self._next_step_size()
        return self._apply(W, g, decay, state, eta, out)

    def _apply(self, W, g, decay, state, eta: float, out: np.ndarray) -> bool | None:
        """One update from weights ``W`` to ``out`` (``W`` itself or another array), by a
        compiled kernel when :mod:`chainrule.kernels` has one, else by ``_update``. Returns
        whether the new weights are all finite when the kernel tells, else None."""
        if self.weight_decay:  # J = J_loss + λ‖W‖²: g ← g + 2λW, for weights W only
            g = g + (2 * self.weight_decay) * (decay * W)
        kernel = kernels.find(self, "_update", W, g, writes=(out, *state.values()))
        if kernel is not None:
            return kernel(self, W, g, state, eta, out)
        if out is not W:
            np.copyto(out, W)
        self._update(out, g, state, eta)
        return None

    def _update(self, W: np.ndarray, g: np.ndarray, state: dict, eta: float) -> None:
        raise NotImplementedError

    def _next_step_size(self) -> float:
        """η of step ``t + 1``; then ``t`` counts the step."""
        t = self.t + 1
        eta = self._scheduled(t) if callable(self.lr) else self.lr
        self.t = t
        return eta

    def _scheduled(self, t: int) -> float:
        """``lr(t)`` of a step-size schedule, checked."""
        eta = self.lr(t)
        value = as_number(eta)
        if not (isinstance(value, numbers.Real) and not isinstance(value, bool)
                and math.isfinite(value) and value >= 0):
            raise InputError(f"{type(self).__name__} expected the schedule lr={self.lr!r} to "
                             f"give a finite step size >= 0, got lr({t}) = {eta!r}")
        return float(value)

    def _arrays(self, params) -> list[tuple]:
        """``(W, g, decay, state)`` per parameter, or once for a whole ``ParameterBuffer``;
        ``decay`` is 1 where weight decay applies and 0 elsewhere."""
        if self._loaded is not None:
            self._attach(params)
        if isinstance(params, ParameterBuffer):
            if self.elementwise:
                return [(params.data, params.grad, params.decay, self._state_of(params))]
            params = params.params
        return [(p.data, p.grad, float(p.decayed), self._state_of(p)) for p in params]

    # -- per-parameter state -----------------------------------------------------------

    def _state_of(self, key: Parameter | ParameterBuffer) -> dict[str, np.ndarray]:
        """The state arrays of a parameter, or the flat ones of a buffer, made on first use."""
        if key not in self.state:
            self.state = self._rekeyed(key)
        return self.state[key]

    def _rekeyed(self, key) -> dict:
        """``self.state`` with an entry for ``key`` (zeros) that takes over, in its place, the
        state its parameters had under other entries: each parameter has one state, whether
        it was stepped alone or in a buffer."""
        state = {name: np.zeros_like(key.data) for name in self._state_names}
        new, rekeyed = dict(_per_parameter(key, state)), {}
        for k, s in self.state.items():
            pairs = _per_parameter(k, s)
            if not any(p in new for p, _ in pairs):
                rekeyed[k] = s
                continue
            for p, old in pairs:
                if p in new:
                    rekeyed.setdefault(key, state)
                    for name in old:
                        new[p][name][...] = old[name]
                else:
                    rekeyed[p] = {name: a.copy() for name, a in old.items()}
        rekeyed.setdefault(key, state)
        return rekeyed

    # -- export and restore ------------------------------------------------------------

    def hyperparameters(self) -> dict[str, float | None]:
        """``{"lr": η or None (for a schedule), <the optimizer's own>..., "weight_decay": λ}``."""
        hyper = {"lr": None if callable(self.lr) else self.lr}
        hyper.update({name: getattr(self, name) for name in self._hyper})
        hyper["weight_decay"] = self.weight_decay
        return hyper

    def state_dict(self, params: Sequence[Parameter] | None = None) -> dict:
        """Hyper-parameters, ``t`` and per-parameter state as plain numbers and array copies.

        ``"state"`` has one dict per parameter, mapping state names (e.g. ``"exp_avg"``) to
        arrays (empty dicts for SGD, which has no state): in the order the parameters were
        first stepped, or, with ``params`` (a model's parameters), in their order, with an
        empty dict for a parameter never stepped. A callable ``lr`` is stored as ``None``.
        """
        if self._loaded is not None:
            state = [{k: a.copy() for k, a in s.items()} for s in self._loaded]
        else:
            pairs = [pair for key in self.state for pair in _per_parameter(key, self.state[key])]
            if params is not None:
                found = dict(pairs)
                pairs = [(p, found.get(p, {})) for p in params]
            state = [{k: a.copy() for k, a in s.items()} for _, s in pairs]
        return {"hyper": self.hyperparameters(), "t": self.t, "state": state}

    def load_state_dict(self, d: dict) -> None:
        """Restore what :meth:`state_dict` exported.

        Hyper-parameters and ``t`` are restored at once (``lr`` only when ``d`` holds a
        number: a schedule is not stored, so the current ``lr`` is kept). The per-parameter
        state is attached, in order, to the parameters of the next :meth:`step` call, whose
        shapes must match.
        """
        hyper, t, loaded = check_state_dict(f"{type(self).__name__}.load_state_dict", d,
                                            list(self.hyperparameters()), self._state_names)
        values = {name: _check_hyper(type(self).__name__, name, value)
                  for name, value in hyper.items() if value is not None or name != "lr"}
        for name, value in values.items():
            setattr(self, name, value)
        self.t, self.state, self._loaded = t, {}, loaded or None

    def _attach(self, params) -> None:
        """Give the loaded per-parameter state to ``params``, position by position."""
        plist = params.params if isinstance(params, ParameterBuffer) else list(params)
        check_loaded_state(f"{type(self).__name__}.step", self._loaded, plist)
        for p, s in zip(plist, self._loaded):
            if s:
                self.state[p] = {name: a.astype(p.data.dtype) for name, a in s.items()}
        self._loaded = None

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
        W -= eta * g


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
        V = state["velocity"]
        V[...] = self.beta * V + eta * g
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
        G = state["sum_sq"]
        G += g * g
        W -= eta * g / (np.sqrt(G) + self.eps)


class RMSprop(Optimizer):
    """RMSprop: ``G ← ρG + (1−ρ) g²;  W ← W − η g / (√G + eps)``.

    ``G`` (state ``"square_avg"``) is a decaying average of squared gradients. This is the
    rule some course appendices call "Adadelta"; chainrule's :class:`Adadelta` is Zeiler's.
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
        G = state["square_avg"]
        G[...] = self.rho * G + (1 - self.rho) * (g * g)
        W -= eta * g / (np.sqrt(G) + self.eps)


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012, as in PyTorch)::

        E_g ← ρE_g + (1−ρ) g²
        Δ   = √(E_Δ + eps) / √(E_g + eps) · g
        E_Δ ← ρE_Δ + (1−ρ) Δ²
        W   ← W − η Δ

    ``E_g`` and ``E_Δ`` (states ``"square_avg"`` and ``"acc_delta"``) are decaying averages
    of squared gradients and squared updates; their ratio gives Δ the units of W, so η = 1
    works. Not to be confused with the "Adadelta" of some course appendices, which is
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

    def __init__(self, lr: LearningRate = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0):
        super().__init__(lr, weight_decay, rho=rho, eps=eps)

    def _update(self, W, g, state, eta):
        E_g, E_delta = state["square_avg"], state["acc_delta"]
        E_g[...] = self.rho * E_g + (1 - self.rho) * (g * g)
        delta = np.sqrt(E_delta + self.eps) / np.sqrt(E_g + self.eps) * g
        E_delta[...] = self.rho * E_delta + (1 - self.rho) * (delta * delta)
        W -= eta * delta


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
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m[...] = self.beta1 * m + (1 - self.beta1) * g
        v[...] = self.beta2 * v + (1 - self.beta2) * (g * g)
        k, eps_hat = self._folded(eta)
        W -= k * m / (np.sqrt(v) + eps_hat)

    def _folded(self, eta: float) -> tuple[float, float]:
        """``(k, ε̂)`` with ``η m̂ / (√v̂ + eps) = k m / (√v + ε̂)``: the bias corrections
        m̂ = m/(1−β₁ᵗ) and v̂ = v/(1−β₂ᵗ) are numbers, so they are folded into
        k = η √(1−β₂ᵗ) / (1−β₁ᵗ) and ε̂ = eps √(1−β₂ᵗ), which saves two divisions per weight
        (PyTorch arranges it the same way)."""
        bias1, bias2 = 1 - self.beta1**self.t, 1 - self.beta2**self.t
        return eta * math.sqrt(bias2) / bias1, self.eps * math.sqrt(bias2)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "SGD": SGD, "Momentum": Momentum, "Adagrad": Adagrad, "RMSprop": RMSprop,
    "Adadelta": Adadelta, "Adam": Adam,
}


def _per_parameter(key, state: dict) -> list[tuple[Parameter, dict[str, np.ndarray]]]:
    """``(parameter, its state arrays)`` for a key of ``Optimizer.state``: a parameter, or a
    buffer whose flat state arrays are split into views, one per parameter."""
    if isinstance(key, Parameter):
        return [(key, state)]
    views = {name: key.views(a) for name, a in state.items()}
    return [(p, {name: views[name][i] for name in state}) for i, p in enumerate(key.params)]
