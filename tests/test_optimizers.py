"""Optimizers: hand-worked first steps, descent on a quadratic and on Rosenbrock, weight
decay, in-place updates, argument checks and state export/restore."""

from __future__ import annotations

import json
import math
import tracemalloc

import numpy as np
import pytest

from cases import mlp, weights
from chainrule.errors import ChainruleError, InputError
from chainrule.optimizers import (
    OPTIMIZERS,
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Momentum,
    Optimizer,
    RMSprop,
)
from chainrule.parameter import Parameter

NAMES = list(OPTIMIZERS)

# Defaults and state names from API.md section 4 (state names are ours, PyTorch-like).
DEFAULTS = {
    "SGD": {"lr": 0.01},
    "Momentum": {"lr": 0.01, "beta": 0.9},
    "Adagrad": {"lr": 0.01, "eps": 1e-10},
    "RMSprop": {"lr": 0.01, "rho": 0.99, "eps": 1e-8},
    "Adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6},
    "Adam": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
}
STATE_NAMES = {
    "SGD": set(), "Momentum": {"velocity"}, "Adagrad": {"sum_sq"}, "RMSprop": {"square_avg"},
    "Adadelta": {"square_avg", "acc_delta"}, "Adam": {"exp_avg", "exp_avg_sq"},
}


def scalar(value=1.0, dtype=np.float64, name="W"):
    return Parameter(np.array([[value]], dtype=dtype), name)


def stepped_once(opt):
    """``opt`` after one step on a scalar W = 1 with gradient 1."""
    p = scalar()
    p.grad[...] = 1.0
    opt.step([p])
    return opt


# --------------------------------------------------------------------------------------
# First three steps on f(w) = w²/2 (so g = w), starting from w = 1, worked by hand.
# --------------------------------------------------------------------------------------

HAND_WORKED = [
    # SGD, η = 0.1:  w ← w − 0.1 w
    #   w1 = 1 − 0.1·1 = 0.9;   w2 = 0.9 − 0.09 = 0.81;   w3 = 0.81 − 0.081 = 0.729
    (lambda: SGD(lr=0.1), [0.9, 0.81, 0.729]),
    # Momentum, η = 0.1, β = 0.9:  V ← 0.9 V + 0.1 g;  w ← w − V
    #   V1 = 0.1                       w1 = 1 − 0.1 = 0.9
    #   V2 = 0.09 + 0.1·0.9 = 0.18     w2 = 0.9 − 0.18 = 0.72
    #   V3 = 0.162 + 0.1·0.72 = 0.234  w3 = 0.72 − 0.234 = 0.486
    (lambda: Momentum(lr=0.1, beta=0.9), [0.9, 0.72, 0.486]),
    # Adagrad, η = 0.1, eps = 1e-10 (shifts w1 by 1e-11):  G ← G + g²;  w ← w − 0.1 g/√G
    #   G1 = 1                          w1 = 1 − 0.1·1/1 = 0.9
    #   G2 = 1 + 0.81 = 1.81            w2 = 0.9 − 0.09/1.3453624 = 0.9 − 0.0668965 = 0.8331035
    #   G3 = 1.81 + 0.8331035² = 2.5040615
    #                                   w3 = 0.8331035 − 0.08331035/1.5824227 = 0.7804562
    (lambda: Adagrad(lr=0.1), [0.90000000001, 0.8331035268523168, 0.7804561813655163]),
    # RMSprop, η = 0.01, ρ = 0.99:  G ← 0.99 G + 0.01 g²;  w ← w − 0.01 g/(√G + 1e-8)
    #   G1 = 0.01·1 = 0.01              w1 = 1 − 0.01·1/0.1 = 0.9  (+1e-8 from eps)
    #   G2 = 0.0099 + 0.01·0.81 = 0.018 w2 = 0.9 − 0.009/0.1341641 = 0.9 − 0.0670820 = 0.8329180
    #   G3 = 0.01782 + 0.01·0.8329180² = 0.0247575
    #                                   w3 = 0.8329180 − 0.008329180/0.1573452 = 0.7799823
    (lambda: RMSprop(lr=0.01, rho=0.99), [0.900000009999999, 0.8329179752650592,
                                          0.779982281982354]),
    # Adadelta, η = 1, ρ = 0.9, eps = 1e-6:
    #   E_g ← 0.9 E_g + 0.1 g²;  Δ = √(E_Δ + 1e-6)/√(E_g + 1e-6)·g;  E_Δ ← 0.9 E_Δ + 0.1 Δ²
    #   g = 1:          E_g = 0.1          Δ = 0.001/0.3162293·1 = 0.0031623   E_Δ = 1.0e-6
    #                   w1 = 1 − 0.0031623 = 0.9968377
    #   g = 0.9968377:  E_g = 0.09 + 0.1·0.9936854 = 0.1893685
    #                   Δ = √2.0e-6/√0.1893695·0.9968377 = 0.0032395   E_Δ = 1.9494528e-6
    #                   w2 = 0.9968377 − 0.0032395 = 0.9935982
    #   g = 0.9935982:  E_g = 0.1704317 + 0.1·0.9872375 = 0.2691554
    #                   Δ = √2.9494528e-6/√0.2691564·0.9935982 = 0.0032891
    #                   w3 = 0.9935982 − 0.0032891 = 0.9903091
    (lambda: Adadelta(), [0.9968377381511013, 0.9935981984076517, 0.9903090828008376]),
    # Adam, η = 0.1, β₁ = 0.9, β₂ = 0.999, eps = 1e-8:
    #   t=1, g = 1:    m = 0.1, v = 0.001;  m̂ = 0.1/0.1 = 1, v̂ = 0.001/0.001 = 1
    #                  w1 = 1 − 0.1·1/(1 + 1e-8) = 0.9
    #   t=2, g = 0.9:  m = 0.09 + 0.09 = 0.18,  v = 0.000999 + 0.00081 = 0.001809
    #                  m̂ = 0.18/0.19 = 0.9473684, v̂ = 0.001809/0.001999 = 0.9049525
    #                  w2 = 0.9 − 0.1·0.9473684/0.9512899 = 0.9 − 0.0995878 = 0.8004122
    #   t=3, g = 0.8004122:  m = 0.162 + 0.08004122 = 0.2420412
    #                  v = 0.001807191 + 0.000640660 = 0.002447851
    #                  m̂ = 0.2420412/0.271 = 0.8931410, v̂ = 0.002447851/0.002997001 = 0.8167667
    #                  w3 = 0.8004122 − 0.1·0.8931410/0.9037515 = 0.8004122 − 0.0988260 = 0.7015863
    (lambda: Adam(lr=0.1), [0.9000000009999999, 0.8004122297123379, 0.7015862745044147]),
]


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("make, expected", HAND_WORKED,
                         ids=[type(make()).__name__ for make, _ in HAND_WORKED])
def test_first_three_steps_match_hand_computation(make, expected, dtype, rtol):
    opt, p = make(), scalar(1.0, dtype)
    for t, w in enumerate(expected, start=1):
        p.grad[...] = p.data  # g = w for f(w) = w²/2
        opt.step([p])
        assert opt.t == t
        np.testing.assert_allclose(p.data[0, 0], w, rtol=rtol)
        assert p.data.dtype == dtype and p.grad.dtype == dtype


# --------------------------------------------------------------------------------------
# Descent on a convex quadratic and on the Rosenbrock function.
# --------------------------------------------------------------------------------------

QUAD_A, QUAD_C = np.array([1.0, 3.0, 10.0]), np.array([1.0, -2.0, 0.5])


def quadratic(w):
    """f(w) = ½ Σ aᵢ (wᵢ − cᵢ)², condition number 10, minimum 0 at c."""
    return 0.5 * np.sum(QUAD_A * (w - QUAD_C) ** 2), QUAD_A * (w - QUAD_C)


def rosenbrock(w):
    """f(x, y) = (1 − x)² + 100 (y − x²)², minimum 0 at (1, 1)."""
    x, y = w
    f = (1 - x) ** 2 + 100 * (y - x * x) ** 2
    return f, np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


# name: (hyper-parameters for the quadratic, hyper-parameters for Rosenbrock)
DESCENT = {
    "SGD": ({"lr": 0.1}, {"lr": 1e-3}),
    "Momentum": ({"lr": 0.02}, {"lr": 1e-3}),
    "Adagrad": ({"lr": 0.5}, {"lr": 0.5}),
    "RMSprop": ({"lr": 0.01}, {"lr": 0.01}),
    "Adadelta": ({}, {}),
    "Adam": ({"lr": 0.05}, {"lr": 0.05}),
}


def descend(opt, fun, w0, steps=1000):
    p = Parameter(np.array(w0, dtype=np.float64), "W")
    for _ in range(steps):
        _, p.grad[...] = fun(p.data)
        opt.step([p])
    return fun(w0)[0], fun(p.data)[0]


@pytest.mark.parametrize("name", NAMES)
def test_minimises_convex_quadratic(name):
    f0, f = descend(OPTIMIZERS[name](**DESCENT[name][0]), quadratic, [0.0, 0.0, 0.0])
    assert f < 1e-6 * f0


@pytest.mark.parametrize("name", NAMES)
def test_decreases_rosenbrock(name):
    f0, f = descend(OPTIMIZERS[name](**DESCENT[name][1]), rosenbrock, [-1.5, 2.0])
    assert f < 0.25 * f0


# --------------------------------------------------------------------------------------
# Weight decay: g + 2λW for "W" only, never touching p.grad.
# --------------------------------------------------------------------------------------

def net():
    """Weights ("W"), offsets ("W0") and BatchNorm's G and B: what weight decay must tell apart."""
    return mlp((3, 4, 2), batch_norm=True, out=None, dtype=np.float64)


@pytest.mark.parametrize("name", NAMES)
def test_weight_decay_is_2_lambda_W_on_weights_only(name):
    lam, rng = 0.05, np.random.default_rng(1)
    decayed, reference = net(), net()
    params, ref_params = decayed.parameters(), reference.parameters()
    for p, q in zip(params, ref_params, strict=True):
        p.grad[...] = q.grad[...] = rng.normal(size=p.grad.shape)
    grads_before = [p.grad.copy() for p in params]
    opt, ref_opt = OPTIMIZERS[name](weight_decay=lam), OPTIMIZERS[name]()
    for _ in range(3):
        for q in ref_params:  # the reference gets g + 2λW by hand, on "W" only
            if q.name == "W":
                q.grad[...] = grads_before[ref_params.index(q)] + 2 * lam * q.data
        opt.step(params)
        ref_opt.step(ref_params)
    assert {p.name for p in params} == {"W", "W0", "G", "B"}
    for p, q, g in zip(params, ref_params, grads_before, strict=True):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-13, atol=1e-15)
        np.testing.assert_array_equal(p.grad, g)  # weight decay left p.grad alone


@pytest.mark.parametrize("name", NAMES)
def test_weight_decay_with_zero_gradient_moves_only_W(name):
    model = net()
    params = model.parameters()
    before = weights(model)
    OPTIMIZERS[name](weight_decay=0.1).step(params)
    for p, b in zip(params, before, strict=True):
        if p.name == "W":
            assert np.all((p.data - b) * b < 0)  # moved toward 0 (RMSprop may overshoot)
        else:  # offsets and batch-norm G, B: zero gradient, no decay, no change
            np.testing.assert_array_equal(p.data, b)
        assert not p.grad.any()


# --------------------------------------------------------------------------------------
# t, schedules, zero gradients, in-place updates.
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_callable_lr_sees_t_from_1(name):
    seen = []

    def lr(t):
        seen.append(t)
        return 0.01

    opt, p = OPTIMIZERS[name](lr=lr), scalar()
    assert opt.t == 0 and opt.lr is lr
    for _ in range(3):
        opt.step([p])
    assert seen == [1, 2, 3] and opt.t == 3


def test_callable_lr_is_used_as_eta_of_each_step():
    # SGD with η(t) = 0.1 t on g = 1:  w = 1 − 0.1 − 0.2 − 0.3 = 0.4
    opt, p = SGD(lr=lambda t: 0.1 * t), scalar()
    p.grad[...] = 1.0
    for _ in range(3):
        opt.step([p])
    np.testing.assert_allclose(p.data, 0.4, rtol=1e-14)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.1", None])
def test_schedule_giving_bad_step_size_raises_and_does_not_step(bad):
    opt, p = Adam(lr=lambda t: 0.1 if t == 1 else bad), scalar()
    opt.step([p])
    with pytest.raises(InputError, match=r"lr\(2\)"):
        opt.step([p])
    assert opt.t == 1


def test_zero_gradient_still_updates_with_momentum():
    opt, p = Momentum(lr=0.1, beta=0.5), scalar()
    p.grad[...] = 1.0
    opt.step([p])  # V = 0.1, w = 0.9
    p.grad[...] = 0.0
    opt.step([p])  # V = 0.05, w = 0.85: a zero gradient does not skip the update
    np.testing.assert_allclose(p.data, 0.85, rtol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_updates_in_place_and_frees_its_temporaries(name):
    n = 200_000  # 1.6 MB per float64 array
    p = Parameter(np.ones(n), "W")
    p.grad[...] = np.linspace(-1, 1, n)
    data, grad = p.data, p.grad
    opt = OPTIMIZERS[name](weight_decay=0.01)
    opt.step([p])  # the first step creates the state
    state = dict(opt.state[p])
    tracemalloc.start()
    try:
        opt.step([p])
        now, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the plain NumPy lines make temporaries, but a step keeps none of them
    assert now < 8 * n / 10, f"{name} kept {now} bytes after one step"
    assert p.data is data and p.grad is grad
    assert all(opt.state[p][k] is v for k, v in state.items())


@pytest.mark.parametrize("name", NAMES)
def test_state_is_lazy_and_named(name):
    opt = OPTIMIZERS[name]()
    assert opt.state_dict()["state"] == []
    params = [scalar(), Parameter(np.zeros((2, 3), np.float32), "W0")]
    opt.step(params)
    state = opt.state_dict()["state"]
    assert [set(s) for s in state] == [STATE_NAMES[name]] * 2
    for s, p in zip(state, params, strict=True):
        for a in s.values():
            assert a.shape == p.data.shape and a.dtype == p.data.dtype


# --------------------------------------------------------------------------------------
# Constructors: API.md's defaults and clear errors.
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_registry_and_defaults(name):
    opt = OPTIMIZERS[name]()
    assert isinstance(opt, Optimizer) and type(opt).__name__ == name
    assert opt.hyperparameters() == {**DEFAULTS[name], "weight_decay": 0.0}
    assert opt.t == 0


BAD_ARGS = [
    ("SGD", {"lr": -0.1}, "lr"),
    ("SGD", {"lr": float("nan")}, "lr"),
    ("SGD", {"lr": "fast"}, "lr"),
    ("SGD", {"weight_decay": -1e-4}, "weight_decay"),
    ("SGD", {"weight_decay": float("inf")}, "weight_decay"),
    ("Momentum", {"beta": 1.0}, r"beta in \[0, 1\)"),
    ("Momentum", {"beta": -0.1}, "beta"),
    ("Adagrad", {"eps": 0.0}, "eps"),
    ("RMSprop", {"rho": 1.5}, "rho"),
    ("Adadelta", {"eps": -1e-6}, "eps"),
    ("Adam", {"beta1": 1.0}, "beta1"),
    ("Adam", {"beta2": float("nan")}, "beta2"),
    ("Adam", {"beta1": True}, "beta1"),
]


@pytest.mark.parametrize("name, kwargs, match", BAD_ARGS)
def test_bad_hyperparameters_raise(name, kwargs, match):
    with pytest.raises(ChainruleError, match=match) as info:
        OPTIMIZERS[name](**kwargs)
    assert isinstance(info.value, ValueError)
    assert name in str(info.value) and repr(next(iter(kwargs.values()))) in str(info.value)


# --------------------------------------------------------------------------------------
# state_dict / load_state_dict.
# --------------------------------------------------------------------------------------

NON_DEFAULT = {
    "SGD": {"lr": 0.05}, "Momentum": {"lr": 0.05, "beta": 0.7},
    "Adagrad": {"lr": 0.1, "eps": 1e-8}, "RMSprop": {"lr": 0.01, "rho": 0.9, "eps": 1e-6},
    "Adadelta": {"lr": 0.5, "rho": 0.8, "eps": 1e-5},
    "Adam": {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-7},
}


def run(opt, params, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for p in params:
            p.grad[...] = rng.normal(size=p.grad.shape) + p.data
        opt.step(params)


def twin_params():
    return net().parameters(), net().parameters()


@pytest.mark.parametrize("name", NAMES)
def test_rebuilt_from_state_dict_continues_exactly(name):
    params, copy_params = twin_params()
    opt = OPTIMIZERS[name](**NON_DEFAULT[name], weight_decay=0.01)
    run(opt, params, 4, seed=0)
    d = opt.state_dict()
    json.dumps({k: v for k, v in d.items() if k != "state"})  # plain numbers, no objects
    assert all(isinstance(a, np.ndarray) for s in d["state"] for a in s.values())
    for p, q in zip(params, copy_params, strict=True):
        q.data[...] = p.data
    rebuilt = OPTIMIZERS[name](**{k: v for k, v in d["hyper"].items() if v is not None})
    rebuilt.load_state_dict(d)
    assert rebuilt.t == 4 and rebuilt.state_dict()["t"] == 4
    run(opt, params, 3, seed=1)
    run(rebuilt, copy_params, 3, seed=1)
    for p, q in zip(params, copy_params, strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    for s, r in zip(opt.state_dict()["state"], rebuilt.state_dict()["state"], strict=True):
        assert s.keys() == r.keys()
        for k in s:
            np.testing.assert_array_equal(s[k], r[k])


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_holds_copies(name):
    opt = stepped_once(OPTIMIZERS[name]())
    d = opt.state_dict()
    for a in d["state"][0].values():
        a[...] = 123.0
    d["hyper"]["lr"] = 99.0
    assert opt.state_dict()["state"][0] != {} or name == "SGD"
    for a in opt.state_dict()["state"][0].values():
        assert a[0, 0] != 123.0
    assert opt.lr != 99.0


def test_state_dict_right_after_load_gives_the_loaded_state():
    opt = stepped_once(Adam())
    d = opt.state_dict()
    fresh = Adam()
    fresh.load_state_dict(d)
    again = fresh.state_dict()
    d["state"][0]["exp_avg"] += 1.0  # load took a copy
    again["state"][0]["exp_avg_sq"] += 1.0  # and state_dict gives one
    np.testing.assert_array_equal(fresh.state_dict()["state"][0]["exp_avg"],
                                  opt.state_dict()["state"][0]["exp_avg"])
    assert fresh.state_dict()["state"][0]["exp_avg_sq"][0, 0] < 1.0
    assert again["t"] == 1 and again["hyper"] == d["hyper"]
    np.testing.assert_array_equal(again["state"][0]["exp_avg"],
                                  opt.state_dict()["state"][0]["exp_avg"])


def test_callable_lr_is_stored_as_none_and_kept_on_load():
    def schedule(t):
        return 0.1 / t

    opt = RMSprop(lr=schedule, rho=0.5)
    d = opt.state_dict()
    assert d["hyper"] == {"lr": None, "rho": 0.5, "eps": 1e-8, "weight_decay": 0.0}
    other = RMSprop(lr=lambda t: 1.0)
    keep = other.lr
    other.load_state_dict(d)
    assert other.lr is keep and other.rho == 0.5
    numeric = RMSprop(lr=0.3)
    numeric.load_state_dict(RMSprop(lr=0.2).state_dict())
    assert numeric.lr == 0.2


def test_loaded_hyperparameters_are_checked_and_numbers_from_arrays_accepted():
    d = Momentum(lr=0.1, beta=0.5).state_dict()
    d["hyper"]["beta"] = np.array(0.25)  # a checkpoint may give 0-d arrays
    d["t"] = np.array(3)
    opt = Momentum()
    opt.load_state_dict(d)
    assert opt.beta == 0.25 and opt.t == 3 and type(opt.beta) is float and type(opt.t) is int
    d["hyper"]["beta"] = 1.0
    with pytest.raises(InputError, match="beta"):
        Momentum().load_state_dict(d)


def _good():
    return stepped_once(Adam()).state_dict()


MALFORMED = [
    ("not a dict", lambda d: [1, 2], "expected a dict"),
    ("missing t", lambda d: {"hyper": d["hyper"], "state": d["state"]}, "'t'"),
    ("extra key", lambda d: {**d, "extra": 1}, "extra"),
    ("SGD's hyper", lambda d: {**d, "hyper": SGD().state_dict()["hyper"]}, "beta1"),
    ("hyper not a dict", lambda d: {**d, "hyper": [0.1]}, "hyper-parameters"),
    ("negative t", lambda d: {**d, "t": -1}, "t to be an int"),
    ("float t", lambda d: {**d, "t": 1.5}, "t to be an int"),
    ("state not a list", lambda d: {**d, "state": {"exp_avg": 1}}, "list of dicts"),
    ("state item not a dict", lambda d: {**d, "state": [np.zeros(1)]}, r"state\[0\]"),
    ("wrong state names", lambda d: {**d, "state": [{"velocity": np.zeros((1, 1))}]},
     "exp_avg"),
    ("NaN state", lambda d: {**d, "state": [{"exp_avg": np.full((1, 1), np.nan),
                                             "exp_avg_sq": np.zeros((1, 1))}]}, "finite"),
    ("string state", lambda d: {**d, "state": [{"exp_avg": "0",
                                                "exp_avg_sq": np.zeros((1, 1))}]}, "float"),
    ("ragged state", lambda d: {**d, "state": [{"exp_avg": [[0.0], [0.0, 1.0]],
                                                "exp_avg_sq": np.zeros((1, 1))}]}, "float"),
]


@pytest.mark.parametrize("what, mutate, match", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_state_dict_raises(what, mutate, match):
    opt = stepped_once(Adam(lr=0.5))
    before = opt.state_dict()
    with pytest.raises(InputError, match=match):
        opt.load_state_dict(mutate(_good()))
    after = opt.state_dict()  # a rejected dict leaves the optimizer as it was
    assert after["hyper"] == before["hyper"] and after["t"] == before["t"]
    np.testing.assert_array_equal(after["state"][0]["exp_avg"], before["state"][0]["exp_avg"])


def test_loaded_state_must_fit_the_next_params():
    d = _good()  # state for one (1, 1) parameter
    opt = Adam()
    opt.load_state_dict(d)
    with pytest.raises(InputError, match=r"shape .*\(1, 1\)") as info:
        opt.step([Parameter(np.zeros((2, 2)), "W")])
    assert "(2, 2)" in str(info.value)
    with pytest.raises(InputError, match="expected 1 parameters"):
        opt.step([scalar(), scalar()])
    assert opt.t == 1  # the failed steps did not count
    opt.step([scalar()])  # the right parameters still work after the errors
    assert opt.t == 2


def test_empty_state_entries_start_fresh():
    d = Adam(lr=0.1).state_dict()
    assert d == {"hyper": Adam(lr=0.1).hyperparameters(), "t": 0, "state": []}
    d["state"] = [{}]  # "no state yet" for one parameter
    opt, p = Adam(), scalar()
    opt.load_state_dict(d)
    p.grad[...] = 1.0
    opt.step([p])
    assert math.isclose(p.data[0, 0], 0.9, rel_tol=1e-7)  # a fresh first step
