"""Step-size schedules: callables ``t -> η(t)`` to pass as an optimizer's ``lr``.

``t`` is the optimizer's step count, starting at 1. Each schedule is a small object with a
readable ``repr``; any function of ``t`` works as well::

    opt = SGD(lr=InverseTime(0.1, k=0.01))
    opt = SGD(lr=lambda t: 0.1 / t)

The convergence theorem for stochastic gradient descent (chapter 3 of the notes, which 6.7.2
refers to) asks for step sizes with ``Σ_t η(t) = ∞`` and ``Σ_t η(t)² < ∞``;
:class:`InverseTime` (with k > 0) is such a schedule, while :class:`ExponentialDecay` and
:class:`StepDecay` shrink so fast that ``Σ η`` is finite.
"""

from __future__ import annotations

import math

from ._validate import check_float, check_positive_int, is_int
from .errors import InputError


class Schedule:
    """Base class: checks ``t`` and gives a ``repr`` naming the schedule's settings."""

    _fields: tuple[str, ...] = ()

    def __call__(self, t: int) -> float:
        if not (is_int(t) and t >= 1):
            raise InputError(f"{self!r} expected a step t that is an int >= 1, got {t!r}")
        return self._eta(int(t))

    def _eta(self, t: int) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """``η(t) = η0``: the same step size every step (what a float ``lr`` does)."""

    _fields = ("eta0",)

    def __init__(self, eta0: float):
        self.eta0 = check_float("Constant", "eta0", eta0, 0, math.inf)

    def _eta(self, t):
        return self.eta0


class StepDecay(Schedule):
    """``η(t) = η0 · γ^⌊(t − 1) / step_size⌋``: multiply by γ every ``step_size`` steps.

    Steps 1 … step_size use η0, the next ``step_size`` steps η0·γ, and so on.

    Parameters
    ----------
    eta0 : float >= 0
    step_size : int >= 1
    gamma : float in [0, 1], default 0.1
    """

    _fields = ("eta0", "step_size", "gamma")

    def __init__(self, eta0: float, step_size: int, gamma: float = 0.1):
        self.eta0 = check_float("StepDecay", "eta0", eta0, 0, math.inf)
        self.step_size = check_positive_int("StepDecay", "step_size", step_size)
        self.gamma = check_float("StepDecay", "gamma", gamma, 0, 1)

    def _eta(self, t):
        return self.eta0 * self.gamma ** ((t - 1) // self.step_size)


class ExponentialDecay(Schedule):
    """``η(t) = η0 · γ^(t − 1)``: multiply by γ every step, so η(1) = η0.

    Parameters
    ----------
    eta0 : float >= 0
    gamma : float in [0, 1]
    """

    _fields = ("eta0", "gamma")

    def __init__(self, eta0: float, gamma: float):
        self.eta0 = check_float("ExponentialDecay", "eta0", eta0, 0, math.inf)
        self.gamma = check_float("ExponentialDecay", "gamma", gamma, 0, 1)

    def _eta(self, t):
        return self.eta0 * self.gamma ** (t - 1)


class InverseTime(Schedule):
    """``η(t) = η0 / (1 + k t)``: decays like 1/t.

    With k > 0, ``Σ_t η(t) = ∞`` (the harmonic series) and ``Σ_t η(t)² < ∞``, the
    conditions of the convergence theorem for stochastic gradient descent (the notes' chapter
    3, cited in 6.7.2).
    Note η(1) = η0 / (1 + k), not η0.

    Parameters
    ----------
    eta0 : float >= 0
    k : float >= 0
    """

    _fields = ("eta0", "k")

    def __init__(self, eta0: float, k: float):
        self.eta0 = check_float("InverseTime", "eta0", eta0, 0, math.inf)
        self.k = check_float("InverseTime", "k", k, 0, math.inf)

    def _eta(self, t):
        return self.eta0 / (1.0 + self.k * t)


class Cosine(Schedule):
    """``η(t) = η_min + (η0 − η_min) · (1 + cos(π (t − 1) / T)) / 2`` for t ≤ T + 1, then η_min.

    Half a cosine from η0 at t = 1 down to η_min at t = T + 1, where it stays (PyTorch's
    ``CosineAnnealingLR(T_max=T)`` at epoch t − 1, without the restart).

    Parameters
    ----------
    eta0 : float >= 0
    T : int >= 1
        Number of steps of the decay.
    eta_min : float in [0, eta0], default 0.0
    """

    _fields = ("eta0", "T", "eta_min")

    def __init__(self, eta0: float, T: int, eta_min: float = 0.0):
        self.eta0 = check_float("Cosine", "eta0", eta0, 0, math.inf)
        self.T = check_positive_int("Cosine", "T", T)
        self.eta_min = check_float("Cosine", "eta_min", eta_min, 0, self.eta0)

    def _eta(self, t):
        if t > self.T:
            return self.eta_min
        cos = math.cos(math.pi * (t - 1) / self.T)
        return self.eta_min + (self.eta0 - self.eta_min) * (1 + cos) / 2
