"""Step-size schedules t -> η(t): formulas by hand, t counted from 1, argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chainrule.errors import InputError
from chainrule.optimizers import OPTIMIZERS, SGD
from chainrule.parameter import Parameter
from chainrule.schedules import Constant, Cosine, ExponentialDecay, InverseTime, StepDecay

# schedule, {t: η(t)} worked by hand
FORMULAS = [
    (Constant(0.3), {1: 0.3, 2: 0.3, 1000: 0.3}),
    # η0 · γ^⌊(t − 1)/3⌋: t = 1, 2, 3 -> 1;  t = 4..6 -> 0.5;  t = 7 -> 0.25
    (StepDecay(1.0, step_size=3, gamma=0.5), {1: 1.0, 3: 1.0, 4: 0.5, 6: 0.5, 7: 0.25}),
    # η0 · γ^(t − 1): 2, 2·0.9 = 1.8, 2·0.81 = 1.62, 2·0.9⁹ = 0.774840978
    (ExponentialDecay(2.0, gamma=0.9), {1: 2.0, 2: 1.8, 3: 1.62, 10: 0.774840978}),
    # η0 / (1 + k t): 1/(1 + 0.5) = 2/3, 1/(1 + 1) = 0.5, 1/(1 + 5) = 1/6
    (InverseTime(1.0, k=0.5), {1: 2 / 3, 2: 0.5, 10: 1 / 6}),
    # η_min + (η0 − η_min)(1 + cos(π (t − 1)/4))/2 with η0 = 1, η_min = 0.2:
    #   t = 1: 0.2 + 0.8·1 = 1;  t = 3: cos(π/2) = 0 -> 0.2 + 0.4 = 0.6;
    #   t = 5: cos(π) = −1 -> 0.2;  after T + 1 it stays at η_min
    (Cosine(1.0, T=4, eta_min=0.2), {1: 1.0, 3: 0.6, 5: 0.2, 6: 0.2, 100: 0.2}),
    # t = 2: (1 + cos(π/4))/2 = (1 + 0.70710678)/2 = 0.85355339
    (Cosine(1.0, T=4), {2: 0.8535533906}),
]


@pytest.mark.parametrize("schedule, values", FORMULAS, ids=[repr(s) for s, _ in FORMULAS])
def test_formula(schedule, values):
    for t, eta in values.items():
        assert math.isclose(schedule(t), eta, rel_tol=1e-9), t
        assert type(schedule(t)) is float


@pytest.mark.parametrize("schedule", [s for s, _ in FORMULAS], ids=[repr(s) for s, _ in FORMULAS])
def test_optimizer_gives_schedule_t_from_1(schedule):
    # SGD on g = 1: after each step, the parameter has moved by exactly η(t) of that t.
    p = Parameter(np.zeros(1), "W")
    p.grad[...] = 1.0
    opt = SGD(lr=schedule)
    for t in range(1, 8):
        before = p.data[0]
        opt.step([p])
        assert math.isclose(before - p.data[0], schedule(t), rel_tol=1e-12)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_calls_the_schedule_with_1_first(name):
    seen = []

    class Recording(Constant):
        def _eta(self, t):
            seen.append(t)
            return super()._eta(t)

    opt = OPTIMIZERS[name](lr=Recording(0.01))
    opt.step([Parameter(np.ones(2), "W")])
    opt.step([Parameter(np.ones(2), "W")])
    assert seen == [1, 2]


def test_inverse_time_meets_the_convergence_conditions():
    # Σ η = ∞ (grows like log t) while Σ η² stays below η0² Σ 1/(k t)² = η0² π²/(6 k²).
    schedule = InverseTime(1.0, k=0.1)
    eta = np.array([schedule(t) for t in range(1, 100_001)])
    partial = np.cumsum(eta)
    assert partial[-1] - partial[9_999] > 0.9 * 10 * math.log(10)  # ≈ (1/k) ln 10 more
    assert np.sum(eta**2) < math.pi**2 / 6 / 0.1**2


@pytest.mark.parametrize("t", [0, -1, 1.5, True, "1"])
def test_t_must_be_a_positive_int(t):
    with pytest.raises(InputError, match="t that is an int >= 1"):
        InverseTime(0.1, k=1.0)(t)


def test_numpy_int_t_is_accepted():
    assert StepDecay(1.0, 2, 0.5)(np.int64(3)) == 0.5


BAD = [
    (lambda: Constant(-1.0), "eta0"),
    (lambda: Constant(float("nan")), "eta0"),
    (lambda: StepDecay(1.0, step_size=0), "step_size"),
    (lambda: StepDecay(1.0, step_size=2, gamma=1.5), "gamma"),
    (lambda: ExponentialDecay(1.0, gamma=-0.1), "gamma"),
    (lambda: InverseTime(1.0, k=-1.0), "k"),
    (lambda: Cosine(1.0, T=0), "T"),
    (lambda: Cosine(1.0, T=10, eta_min=2.0), "eta_min"),
]


@pytest.mark.parametrize("make, match", BAD)
def test_bad_arguments_raise(make, match):
    with pytest.raises(InputError, match=match):
        make()


def test_repr_names_the_settings():
    assert repr(StepDecay(0.1, 5, 0.5)) == "StepDecay(eta0=0.1, step_size=5, gamma=0.5)"
    assert "InverseTime(eta0=0.1, k=0.01)" in repr(SGD(lr=InverseTime(0.1, k=0.01)))
