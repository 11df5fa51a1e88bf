"""Finite-difference evidence that every backward pass is right, and tests of gradcheck itself.

Three independent checks, all in float64 with tight tolerances:

* ``chainrule.gradcheck`` on every row of ``cases.MODULES`` (parameters and dL/dX);
* this file's own central differences of dL/dX (``cases.central_difference``), which share no
  code with gradcheck, on every single module, and on random shapes through hypothesis;
* every loss's ``backward`` against central differences of its value.

Then gradcheck is itself tested: it must say "not ok" for a wrong backward, leave the model
as it was, work on a user's module that does not subclass ``chainrule.Module``, and key its
errors by parameter path.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import chainrule as cr
from cases import (
    LOSS_IDS,
    LOSSES,
    MODULE_IDS,
    MODULES,
    REDUCTIONS,
    SINGLE_MODULES,
    UserModule,
    central_difference,
    frozen_rngs,
    mlp,
)
from chainrule.errors import InputError
from chainrule.gradcheck import GradcheckReport

TIGHT = 1e-7  # float64 central differences with eps = 1e-6 land near 1e-10 here


def _targets(module_case, n, seed=1):
    return np.random.default_rng(seed).normal(size=(n, module_case.n_out))


# -- gradcheck on every row of the table ------------------------------------------------------


@pytest.mark.parametrize("case", MODULES, ids=MODULE_IDS)
def test_gradcheck_passes_on_every_module(case):
    model = case.make(np.float64)
    X = case.inputs(n=5)
    report = cr.gradcheck(model, cr.SquareLoss(), X, _targets(case, 5))
    assert report.ok, str(report)
    assert 0 <= report.max_rel_error < TIGHT, str(report)
    assert set(report.errors) == {path for path, _ in _named(model)}


@pytest.mark.parametrize("case", MODULES, ids=MODULE_IDS)
def test_gradcheck_passes_on_float32_models(case):
    # gradcheck differentiates a float64 copy, so a float32 model is checked just as tightly.
    model = case.make(np.float32)
    report = cr.gradcheck(model, cr.SquareLoss(), case.inputs(n=4), _targets(case, 4))
    assert report.max_rel_error < TIGHT, str(report)


def _named(model):
    from chainrule.module import named_parameters
    return named_parameters(model)


# -- our own central differences of dL/dX, independent of gradcheck -----------------------------


@pytest.mark.parametrize("case", SINGLE_MODULES, ids=[c.id for c in SINGLE_MODULES])
def test_backward_matches_central_differences_of_input(case):
    """L = Σ C ∘ module(X) for a fixed random C, so dL/dA_out = C and dL/dX = backward(C)."""
    module = case.make(np.float64)
    X = case.inputs(n=5)
    C = np.random.default_rng(2).normal(size=(5, case.n_out))
    rewind = frozen_rngs(module)  # the same dropout mask for every forward

    def L() -> float:
        rewind()
        return float(np.sum(C * module(X)))

    L()
    analytic = module.backward(C)
    numeric = central_difference(L, X)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("case", SINGLE_MODULES, ids=[c.id for c in SINGLE_MODULES])
def test_parameter_gradients_match_central_differences(case):
    module = case.make(np.float64)
    X = case.inputs(n=5)
    C = np.random.default_rng(3).normal(size=(5, case.n_out))
    rewind = frozen_rngs(module)

    def L() -> float:
        rewind()
        return float(np.sum(C * module(X)))

    L()
    module.backward(C)
    for p in module.parameters():
        np.testing.assert_allclose(p.grad, central_difference(L, p.data), rtol=1e-7, atol=1e-9,
                                   err_msg=f"{case.id}: dL/d{p.name}")


# Random shapes: any batch (≥ 2 rows for BatchNorm in training) and any width.
_ELEMENTWISE = [cr.ReLU, cr.Sigmoid, cr.Tanh, cr.Identity, cr.Softmax, cr.Step,
                lambda: cr.LeakyReLU(0.3)]


@given(n=st.integers(1, 4), m=st.integers(1, 5), k=st.integers(1, 4),
       init=st.sampled_from(["gaussian", "xavier", "he"]),
       offsets=st.sampled_from(["zeros", "random"]), seed=st.integers(0, 2**16))
def test_linear_any_shape(n, m, k, init, offsets, seed):
    layer = cr.Linear(m, k, init=init, offsets=offsets, rng=seed, dtype=np.float64)
    r = np.random.default_rng(seed)
    X, C = r.normal(size=(n, m)), r.normal(size=(n, k))

    def L():
        return float(np.sum(C * layer(X)))

    L()
    dLdX = layer.backward(C)
    assert dLdX.shape == (n, m) and layer.W.grad.shape == (m, k)
    np.testing.assert_allclose(dLdX, central_difference(L, X), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(layer.W.grad, central_difference(L, layer.W.data),
                               rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(layer.W0.grad, central_difference(L, layer.W0.data),
                               rtol=1e-7, atol=1e-9)


@given(which=st.integers(0, len(_ELEMENTWISE) - 1), n=st.integers(1, 4), k=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_activations_any_shape(which, n, k, seed):
    f = _ELEMENTWISE[which]()
    r = np.random.default_rng(seed)
    Z, C = r.normal(size=(n, k)) * 3, r.normal(size=(n, k))
    Z[np.abs(Z) < 1e-3] = 0.5  # keep ReLU/Step/LeakyReLU away from their kink

    def L():
        return float(np.sum(C * f(Z)))

    L()
    np.testing.assert_allclose(f.backward(C), central_difference(L, Z), rtol=1e-6, atol=1e-9)


@given(n=st.integers(2, 5), k=st.integers(1, 4), training=st.booleans(),
       eps_inside=st.sampled_from(["variance", "std"]), seed=st.integers(0, 2**16))
def test_batchnorm_any_shape(n, k, training, eps_inside, seed):
    bn = cr.BatchNorm(k, eps_inside=eps_inside, dtype=np.float64)
    r = np.random.default_rng(seed)
    bn.G.data[...] = r.uniform(0.5, 2, (1, k))
    bn.B.data[...] = r.normal(size=(1, k))
    bn.running_mean[...] = r.normal(size=(1, k))
    if not training:
        bn.eval()
    Z, C = r.normal(size=(n, k)) * 2 + 1, r.normal(size=(n, k))
    assume(Z.var(axis=0).min() > 1e-2)  # near-constant features: finite differences blow up

    def L():
        return float(np.sum(C * bn(Z)))

    L()
    dLdZ = bn.backward(C)
    # eps = 1e-6 on rows whose variance can be small: allow a little more than elsewhere.
    np.testing.assert_allclose(dLdZ, central_difference(L, Z), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bn.G.grad, central_difference(L, bn.G.data), rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(bn.B.grad, central_difference(L, bn.B.data), rtol=1e-6,
                               atol=1e-8)


# -- losses: backward against central differences of the value ---------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", LOSSES, ids=LOSS_IDS)
def test_loss_backward_matches_central_differences(case, reduction):
    loss = case.make(reduction)
    A, Y = case.data(n=6)
    loss(A, Y)
    analytic = loss.backward()

    def L():
        return loss(A, Y)

    np.testing.assert_allclose(analytic, central_difference(L, A), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", LOSSES, ids=LOSS_IDS)
def test_gradcheck_on_every_loss(case, reduction):
    # A model that is the identity puts the loss's dL/dA in gradcheck's input_error.
    A, Y = case.data(n=5)
    report = cr.gradcheck(cr.Identity(), case.make(reduction), A, Y)
    assert report.errors == {}
    assert report.input_error < TIGHT, str(report)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", LOSSES, ids=LOSS_IDS)
def test_gradcheck_on_networks_for_every_loss(case, reduction):
    # A network ending in the loss's own activation: backward_from takes the fused path.
    model = mlp((3, 4, case.k), act=cr.Tanh, out=case.activation or cr.Identity,
                dtype=np.float64)
    X = np.random.default_rng(0).normal(size=(5, 3))
    _, Y = case.data(n=5)
    report = cr.gradcheck(model, case.make(reduction), X, Y)
    assert report.max_rel_error < TIGHT, str(report)


# -- Sequential.backward_from: the fused gradient equals the chain rule ---------------------------

_FUSED = [c for c in LOSSES if c.activation is not None]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", _FUSED, ids=[c.id for c in _FUSED])
def test_fused_backward_equals_unfused_chain_rule(case, reduction):
    model = mlp((3, 5, case.k), out=case.activation, dtype=np.float64)
    X = np.random.default_rng(4).normal(size=(6, 3))
    _, Y = case.data(n=6)
    loss = case.make(reduction)
    loss(model(X), Y)

    calls = []
    last = model.modules[-1]
    unfused_backward = last.backward
    last.backward = lambda dLdA: calls.append(1) or unfused_backward(dLdA)
    dLdX_fused = model.backward_from(loss)
    assert calls == [], "backward_from should skip the activation's own backward"
    fused = [p.grad.copy() for p in model.parameters()]

    dLdX = model.backward(loss.backward())  # the plain chain rule: dL/dA, then f'(Z), ...
    assert calls == [1]
    np.testing.assert_allclose(dLdX_fused, dLdX, rtol=1e-10, atol=1e-13)
    for g_fused, p in zip(fused, model.parameters(), strict=True):
        np.testing.assert_allclose(g_fused, p.grad, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", _FUSED, ids=[c.id for c in _FUSED])
def test_fused_gradient_is_output_minus_target(case, reduction):
    # The notes' Concept 19: dL/dZᴸ = (Aᴸ − Y)/n. The network is the activation alone, so
    # backward_from returns dL/dZᴸ itself.
    model = cr.Sequential(case.activation())
    Z = np.random.default_rng(5).normal(size=(4, case.k)) * 3
    _, Y = case.data(n=4)
    loss = case.make(reduction)
    A = model(Z)
    loss(A, Y)
    Y = np.eye(case.k)[Y] if case.id == "nllm-labels" else np.reshape(Y, A.shape)
    scale = 1 / 4 if reduction == "mean" else 1.0
    np.testing.assert_allclose(model.backward_from(loss), (A - Y) * scale, rtol=1e-12)


def test_fused_backward_stays_exact_where_the_sigmoid_saturates():
    # At z = 40 the sigmoid is 1 in float64; NLL's own derivative sees only the clipped a, but
    # the fused (a − y)/n is exact: for y = 0 it is 1/n.
    model = cr.Sequential(cr.Sigmoid())
    loss = cr.NLL()
    loss(model(np.array([[40.0], [-40.0]])), np.array([0, 1]))
    np.testing.assert_allclose(model.backward_from(loss), [[0.5], [-0.5]], rtol=1e-12)


def test_backward_from_without_a_fused_pair_is_the_plain_chain_rule():
    model = mlp((3, 2), dtype=np.float64)
    loss = cr.SquareLoss()
    X = np.random.default_rng(0).normal(size=(4, 3))
    loss(model(X), np.zeros((4, 2)))
    np.testing.assert_array_equal(model.backward_from(loss), model.backward(loss.backward()))


@pytest.mark.parametrize("how", ["copy", "other-model", "stale"])
def test_backward_from_rejects_a_loss_computed_on_another_array(how):
    model = mlp((3, 2), dtype=np.float64)
    X, y = np.random.default_rng(0).normal(size=(4, 3)), np.array([0, 1, 1, 0])
    loss = cr.NLLM()
    if how == "copy":
        loss(model(X).copy(), y)
    elif how == "other-model":
        other = mlp((3, 2), dtype=np.float64)
        loss(other(X), y)
    else:  # the loss saw an earlier output; the model has run forward again since
        loss(model(X), y)
        model(X[:2])
    with pytest.raises(InputError, match="another array"):
        model.backward_from(loss)


def test_backward_from_before_any_forward_raises():
    with pytest.raises(InputError):
        cr.Sequential(cr.Linear(2, 2, rng=0)).backward_from(cr.SquareLoss())


# -- gradcheck itself ------------------------------------------------------------------------------


class _ReLUPassThrough(cr.ReLU):
    """A wrong ReLU: backward forgets f′(z) and returns dLdA unchanged."""

    def backward(self, dLdA):
        return dLdA


class _WrongLinear(cr.Linear):
    """A wrong Linear: its backward is Linear's, then ``spoil()`` damages the stored gradients
    (dLdA_prev stays right)."""

    def backward(self, dLdZ):
        dLdA_prev = super().backward(dLdZ)
        self.spoil()
        return dLdA_prev


class _LinearTransposedGrad(_WrongLinear):
    """dLdW = (dLdZᵀ A_prev)ᵀ is right, this stores dLdZᵀ A_prev (square W)."""

    def spoil(self):
        self.W.grad[...] = self.W.grad.T.copy()


class _LinearScaledGrad(_WrongLinear):
    """dLdW twice too large (dLdW0 right)."""

    def spoil(self):
        self.W.grad *= 2


class _LinearNaNGrad(_WrongLinear):
    def spoil(self):
        self.W.grad[0, 0] = np.nan


class _LinearWrongShapeGrad(_WrongLinear):
    """Stores dLdW0 as a column (n, 1): it would broadcast against the (1, n) truth."""

    def spoil(self):
        self.W0.grad = self.W0.grad.T.copy()


def _net(first, middle=None):
    return cr.Sequential(first, middle or cr.ReLU(),
                         cr.Linear(3, 2, rng=1, dtype=np.float64), cr.Identity())


_X = np.random.default_rng(9).normal(size=(4, 3))
_Y = np.random.default_rng(10).normal(size=(4, 2))


def test_gradcheck_says_not_ok_for_relu_without_its_derivative():
    model = _net(cr.Linear(3, 3, rng=0, dtype=np.float64), _ReLUPassThrough())
    report = cr.gradcheck(model, cr.SquareLoss(), _X, _Y)
    assert not report.ok
    assert report.errors["modules.0.W"] > 1e-3 and report.input_error > 1e-3
    assert report.errors["modules.2.W"] < TIGHT  # layers after the bug are still right
    assert "not ok" in str(report)


@pytest.mark.parametrize("bad", [_LinearTransposedGrad, _LinearScaledGrad, _LinearNaNGrad,
                                 _LinearWrongShapeGrad])
def test_gradcheck_says_not_ok_for_a_wrong_linear(bad):
    model = _net(bad(3, 3, rng=0, dtype=np.float64))
    report = cr.gradcheck(model, cr.SquareLoss(), _X, _Y)
    assert not report.ok, str(report)
    assert np.isfinite(report.max_rel_error) and 1e-3 < report.max_rel_error <= 1.0
    wrong = "modules.0.W0" if bad is _LinearWrongShapeGrad else "modules.0.W"
    assert report.errors[wrong] > 1e-3
    assert report.errors["modules.2.W"] < TIGHT and report.input_error < TIGHT


def test_gradcheck_reports_a_nan_gradient_as_the_worst_error():
    # Regression: max() silently skipped a NaN error, so a NaN gradient passed as ok.
    report = cr.gradcheck(_net(_LinearNaNGrad(3, 3, rng=0, dtype=np.float64)),
                          cr.SquareLoss(), _X, _Y)
    assert report.errors["modules.0.W"] == 1.0 and report.max_rel_error == 1.0


def test_gradcheck_errors_are_keyed_by_parameter_path():
    report = cr.gradcheck(MODULES[MODULE_IDS.index("seq-regularized-train")].make(),
                          cr.SquareLoss(), _X[:, :2].repeat(2, axis=1), _Y)
    assert list(report.errors) == ["modules.0.W", "modules.0.W0", "modules.1.G", "modules.1.B",
                                   "modules.4.W", "modules.4.W0"]
    nested = MODULES[MODULE_IDS.index("seq-nested")].make()
    report = cr.gradcheck(nested, cr.SquareLoss(), _X[:, :2].repeat(2, axis=1), _Y)
    assert list(report.errors) == ["modules.0.modules.0.W", "modules.0.modules.0.W0",
                                   "modules.1.W", "modules.1.W0"]
    report = cr.gradcheck(cr.Linear(3, 2, rng=0), cr.SquareLoss(), _X, _Y)
    assert list(report.errors) == ["W", "W0"]


def _snapshot(model):
    """Everything gradcheck must leave alone: weights, gradients, modes, running statistics,
    the state of each random generator, and dtypes."""
    return copy.deepcopy({
        "params": [(p.data, p.grad) for p in model.parameters()],
        "modes": [getattr(m, "training", None) for m in [model, *model.modules]],
        "running": [(m.running_mean, m.running_var) for m in model.modules
                    if isinstance(m, cr.BatchNorm)],
        "rng": [m.rng.bit_generator.state for m in model.modules if isinstance(m, cr.Dropout)],
    })


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
def test_gradcheck_leaves_the_model_unchanged(dtype, mode):
    model = MODULES[MODULE_IDS.index("seq-regularized-train")].make(dtype)
    X = np.random.default_rng(0).normal(size=(5, 4)).astype(dtype)
    Y = np.random.default_rng(1).normal(size=(5, 2))
    loss = cr.SquareLoss()
    loss(model(X), Y)  # give the model real gradients, caches and running statistics
    model.backward_from(loss)
    if mode == "eval":
        model.eval()
    elif mode == "mixed":
        model.modules[1].eval()  # BatchNorm in eval, the rest training
    before = _snapshot(model)
    cached_output, cached_loss_value = model.A, (loss.A, loss.Y)

    cr.gradcheck(model, loss, X, Y)

    after = _snapshot(model)
    for (W, g), (W2, g2), p in zip(before["params"], after["params"], model.parameters(),
                                   strict=True):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(g, g2)
        assert p.data.dtype == dtype and p.grad.dtype == dtype
    assert before["modes"] == after["modes"]
    for (m, v), (m2, v2) in zip(before["running"], after["running"], strict=True):
        np.testing.assert_array_equal(m, m2)
        np.testing.assert_array_equal(v, v2)
    assert before["rng"] == after["rng"]
    # The model's and the loss's caches are untouched: backward_from still works on them.
    assert model.A is cached_output and (loss.A, loss.Y) == cached_loss_value
    model.backward_from(loss)


class UserAffine(UserModule):
    """A user's own layer with no chainrule base class: Z = A W + W0, only duck typing."""

    def __init__(self, m, n, seed=0, wrong=False):
        r = np.random.default_rng(seed)
        self.W = cr.Parameter(r.normal(size=(m, n)), "W")
        self.W0 = cr.Parameter(r.normal(size=(1, n)), "W0")
        self.wrong = wrong

    def forward(self, A):
        self.A = A
        return A @ self.W.data + self.W0.data

    def backward(self, dLdZ):
        self.W.grad = self.A.T @ dLdZ * (3.0 if self.wrong else 1.0)
        self.W0.grad = dLdZ.sum(axis=0, keepdims=True)
        return dLdZ @ self.W.data.T


class UserCube(UserModule):
    """A user's own activation, f(z) = z³, f′(z) = 3z², with no parameters."""

    def forward(self, Z):
        self.Z = Z
        return Z**3

    def backward(self, dLdA):
        return dLdA * 3 * self.Z**2


def test_gradcheck_works_on_a_users_module_alone():
    assert not isinstance(UserAffine(3, 2), cr.Module)
    report = cr.gradcheck(UserAffine(3, 2), cr.SquareLoss(), _X, _Y)
    assert report.ok and list(report.errors) == ["W", "W0"], str(report)
    report = cr.gradcheck(UserAffine(3, 2, wrong=True), cr.SquareLoss(), _X, _Y)
    assert not report.ok and report.errors["W"] > 0.1 and report.errors["W0"] < TIGHT


def test_gradcheck_works_on_users_modules_inside_sequential():
    assert not isinstance(UserCube(), cr.Module)
    model = cr.Sequential(UserAffine(3, 4), UserCube(), cr.Linear(4, 2, rng=0), cr.Tanh())
    report = cr.gradcheck(model, cr.SquareLoss(), _X, _Y)
    assert report.ok, str(report)
    assert list(report.errors) == ["modules.0.W", "modules.0.W0", "modules.2.W", "modules.2.W0"]


def test_gradcheck_casts_a_users_float32_parameters_kept_in_a_list():
    # Parameters reachable only through parameters() (not as attributes) are cast too:
    # in float32, eps = 1e-6 central differences would be noise.
    class ListLayer(UserAffine):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            for p in (self.W, self.W0):
                p.data, p.grad = p.data.astype(np.float32), p.grad.astype(np.float32)
            self.params = [self.W, self.W0]
            del self.W, self.W0

        def forward(self, A):
            self.A = A
            W, W0 = self.params
            return A @ W.data + W0.data

        def backward(self, dLdZ):
            W, W0 = self.params
            W.grad = self.A.T @ dLdZ
            W0.grad = dLdZ.sum(axis=0, keepdims=True)
            return dLdZ @ W.data.T

        def parameters(self):
            return self.params

    report = cr.gradcheck(ListLayer(3, 2), cr.SquareLoss(), _X, _Y)
    assert report.max_rel_error < TIGHT, str(report)


def test_gradcheck_with_fortran_ordered_arrays():
    # Regression: nudging entries through reshape(-1) silently did nothing on non-contiguous
    # arrays, so an F-ordered X or W was reported as a wrong gradient.
    model = cr.Sequential(cr.Linear(3, 2, rng=0, dtype=np.float64), cr.Tanh())
    model[0].W.data = np.asfortranarray(model[0].W.data)
    report = cr.gradcheck(model, cr.SquareLoss(), np.asfortranarray(_X), _Y)
    assert report.max_rel_error < TIGHT, str(report)


def test_gradcheck_with_dropout_replays_the_same_mask():
    model = cr.Sequential(cr.Linear(3, 8, rng=0), cr.Dropout(0.5, rng=1), cr.Linear(8, 2, rng=2))
    report = cr.gradcheck(model, cr.SquareLoss(), _X, _Y)
    assert report.max_rel_error < TIGHT, str(report)


def test_gradcheck_counts_an_exactly_zero_gradient_as_correct():
    # The offset before a BatchNorm has dL/dW0 = 0 exactly: the mean subtracts it away.
    model = cr.Sequential(cr.Linear(3, 4, rng=0, dtype=np.float64), cr.BatchNorm(4),
                          cr.Linear(4, 2, rng=1, dtype=np.float64))
    report = cr.gradcheck(model, cr.SquareLoss(), _X, _Y)
    # Both sides are round-off (≈ 1e-16 and 1e-10); the 1e-4 floor of the denominator keeps
    # their ratio small instead of 1.
    assert report.errors["modules.0.W0"] < 1e-5 and report.ok, str(report)


def test_gradcheck_report_properties():
    report = GradcheckReport(errors={"modules.0.W": 2e-4, "modules.0.W0": 1e-9}, input_error=0)
    assert report.max_rel_error == 2e-4 and not report.ok
    assert GradcheckReport().max_rel_error == 0.0 and GradcheckReport().ok
    lines = str(report).splitlines()
    assert lines[0].startswith("modules.0.W") and "NOT OK" in lines[0]
    assert "ok" in lines[1] and "NOT OK" not in lines[1]


@pytest.mark.parametrize("eps", [0, -1e-6, 1.5, float("nan"), "1e-6"])
def test_gradcheck_rejects_a_bad_eps(eps):
    with pytest.raises(InputError, match="eps"):
        cr.gradcheck(cr.Identity(), cr.SquareLoss(), _X, _X, eps=eps)


class RandomStateDropout(cr.Module):
    """A user's inverted dropout drawing from a legacy ``numpy.random.RandomState``, as course
    code written with ``np.random.seed`` does; ``gaussian`` multiplies by 1 + N(0, 0.5²)
    noise instead, drawn with ``randn`` (which caches every other Gaussian)."""

    def __init__(self, p=0.5, gaussian=False, wrap=False):
        self.p, self.gaussian = p, gaussian
        self.rng = np.random.RandomState(0)
        if wrap:  # a Generator on the RandomState's bit generator: both draw one stream
            self.gen = np.random.Generator(self.rng._bit_generator)

    def forward(self, A):
        if self.gaussian:
            noise = 1 + 0.5 * self.rng.randn(*A.shape)
        elif hasattr(self, "gen"):
            noise = (self.gen.random(A.shape) >= self.p) / (1 - self.p)
        else:
            noise = (self.rng.uniform(size=A.shape) >= self.p) / (1 - self.p)
        self.mask = noise.astype(A.dtype)
        return A * self.mask

    def backward(self, dLdA):
        return dLdA * self.mask


RANDOM_STATE_MODULES = {"uniform": {}, "gaussian": {"gaussian": True}, "wrapped": {"wrap": True}}


@pytest.mark.parametrize("kwargs", RANDOM_STATE_MODULES.values(), ids=RANDOM_STATE_MODULES)
def test_gradcheck_replays_a_users_random_state(kwargs):
    # Regression: only Generators were put back between the forwards of a difference, so a
    # RandomState drew a new mask each time and a right chain rule was reported wrong.
    model = cr.Sequential(cr.Linear(3, 5, rng=0, dtype=np.float64), RandomStateDropout(**kwargs),
                          cr.Linear(5, 2, rng=1, dtype=np.float64))
    report = cr.gradcheck(model, cr.SquareLoss(), _X, _Y)
    assert report.max_rel_error < TIGHT, str(report)


def test_gradcheck_replays_the_generator_of_a_module_held_as_an_attribute():
    # A user's block keeping a library Dropout as an attribute (not in a .modules list).
    class Block(UserModule):
        def __init__(self):
            self.linear = cr.Linear(3, 4, rng=0, dtype=np.float64)
            self.drop = cr.Dropout(0.5, rng=3)

        def forward(self, A):
            return self.drop(self.linear(A))

        def backward(self, dLdA):
            return self.linear.backward(self.drop.backward(dLdA))

        def parameters(self):
            return self.linear.parameters()

    report = cr.gradcheck(Block(), cr.SquareLoss(), _X, _Y[:, :1].repeat(4, axis=1))
    assert report.max_rel_error < TIGHT, str(report)
