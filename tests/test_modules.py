"""Shapes, dtypes, train/eval behaviour, numerical stability and errors of every module.

Driven by ``cases.MODULES``: a new module is one row there and gets every table test here.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

import chainrule as cr
from cases import ACTIVATIONS, MODULE_IDS, MODULES, SINGLE_MODULES, UserModule
from chainrule.errors import InputError

DTYPES = [np.float32, np.float64]


def _has_params(module) -> bool:
    return len(module.parameters()) > 0


# -- shapes and dtypes ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MODULES, ids=MODULE_IDS)
def test_shapes_and_dtypes(case, dtype):
    module = case.make(dtype)
    X = case.inputs(n=6, dtype=dtype)
    A = module(X)
    assert A.shape == (6, case.n_out) and A.dtype == dtype
    dLdX = module.backward(np.ones_like(A))
    assert dLdX.shape == X.shape and dLdX.dtype == dtype
    for p in module.parameters():
        assert p.data.dtype == dtype and p.grad.dtype == dtype
        assert p.grad.shape == p.data.shape


@pytest.mark.parametrize("case", MODULES, ids=MODULE_IDS)
def test_parameters_never_change_dtype(case):
    # float64 data into a float32 model: the input is cast, the parameters stay float32.
    module = case.make(np.float32)
    X = case.inputs(n=5, dtype=np.float64)
    A = module(X)
    if _has_params(module):
        assert A.dtype == np.float32
    module.backward(np.ones(A.shape, np.float64))
    for p in module.parameters():
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32
    for m in [module, *getattr(module, "modules", [])]:
        if isinstance(m, cr.BatchNorm):
            assert m.running_mean.dtype == m.running_var.dtype == np.float32


@pytest.mark.parametrize("case", [c for c in SINGLE_MODULES
                                  if not _has_params(c.make())], ids=lambda c: c.id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_modules_without_parameters_compute_in_the_input_dtype(case, dtype):
    module = case.make()
    X = case.inputs(dtype=dtype)
    assert module(X).dtype == dtype
    assert module.backward(np.ones_like(X)).dtype == dtype


@pytest.mark.parametrize("case", SINGLE_MODULES, ids=lambda c: c.id)
def test_integer_input_is_promoted_to_float(case):
    # Integer inputs would give integer outputs and truncated derivatives: they become float.
    module = case.make(np.float32)
    X = np.arange(-6, 6).reshape(3, case.n_in)
    A = module(X)
    assert A.dtype == np.float32
    assert module.backward(np.ones(A.shape, A.dtype)).dtype == np.float32


@pytest.mark.parametrize("case", MODULES, ids=MODULE_IDS)
def test_backward_overwrites_gradients(case):
    # Two backward passes of the same batch give the same .grad, not twice it.
    module = case.make(np.float64)
    X = case.inputs()
    A = module(X)
    C = np.random.default_rng(0).normal(size=A.shape)
    module.backward(C)
    first = [p.grad.copy() for p in module.parameters()]
    module.backward(C)
    for g, p in zip(first, module.parameters(), strict=True):
        np.testing.assert_array_equal(g, p.grad)


@pytest.mark.parametrize("case", MODULES, ids=MODULE_IDS)
def test_forward_does_not_modify_its_input(case):
    module = case.make(np.float64)
    X = case.inputs()
    X_before = X.copy()
    A = module(X)
    C = np.ones_like(A)
    module.backward(C)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(C, 1.0)


@pytest.mark.parametrize("case", MODULES, ids=MODULE_IDS)
def test_same_seed_same_results(case):
    a, b = case.make(np.float32), case.make(np.float32)
    X = case.inputs(dtype=np.float32)
    np.testing.assert_array_equal(a(X), b(X))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)


def test_parameter_names_and_order():
    assert [p.name for p in cr.Linear(3, 2).parameters()] == ["W", "W0"]
    assert [p.name for p in cr.BatchNorm(3).parameters()] == ["G", "B"]
    assert cr.Linear(3, 2).W.data.shape == (3, 2) and cr.Linear(3, 2).W0.data.shape == (1, 2)
    bn = cr.BatchNorm(3)
    np.testing.assert_array_equal(bn.G.data, np.ones((1, 3)))
    np.testing.assert_array_equal(bn.B.data, np.zeros((1, 3)))
    np.testing.assert_array_equal(bn.running_mean, np.zeros((1, 3)))
    np.testing.assert_array_equal(bn.running_var, np.ones((1, 3)))
    for cls in ACTIVATIONS.values():
        assert cls().parameters() == []
    assert cr.Dropout(0.5).parameters() == []
    p = cr.Linear(3, 2).W
    assert np.all(p.grad == 0) and p.grad.shape == p.data.shape


def test_new_models_are_float32_by_default():
    assert cr.Linear(3, 2).W.data.dtype == np.float32
    assert cr.BatchNorm(3).G.data.dtype == np.float32
    assert cr.Sequential(cr.Linear(3, 2), cr.ReLU()).dtype == np.float32
    assert cr.Sequential(cr.ReLU()).dtype is None


# -- Linear's initialisation -----------------------------------------------------------------------


@pytest.mark.parametrize("init, variance", [("gaussian", lambda m, n: 1 / m),
                                            ("xavier", lambda m, n: 2 / (m + n)),
                                            ("he", lambda m, n: 2 / m)])
def test_linear_init_variance(init, variance):
    m, n = 300, 200
    layer = cr.Linear(m, n, init=init, rng=0, dtype=np.float64)
    W = layer.W.data
    # 60 000 normal draws: the sample variance is within ~1% of the truth (4 sigma ≈ 2.3%).
    assert abs(W.var() / variance(m, n) - 1) < 0.025
    assert abs(W.mean()) < 4 * np.sqrt(variance(m, n) / W.size)
    np.testing.assert_array_equal(layer.W0.data, 0)


def test_linear_rng_seed_and_generator():
    a, b = cr.Linear(5, 4, rng=3), cr.Linear(5, 4, rng=3)
    np.testing.assert_array_equal(a.W.data, b.W.data)
    assert not np.array_equal(a.W.data, cr.Linear(5, 4, rng=4).W.data)
    g = np.random.default_rng(3)
    c = cr.Linear(5, 4, rng=g)
    np.testing.assert_array_equal(a.W.data, c.W.data)
    d = cr.Linear(5, 4, rng=g)  # the generator moved on: different draws
    assert not np.array_equal(c.W.data, d.W.data)


# -- train and eval --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", MODULES, ids=MODULE_IDS)
def test_modules_start_in_training_and_switch(case):
    module = case.build(np.float32)
    assert module.training is True
    assert module.eval() is module and module.training is False
    assert module.train() is module and module.training is True


def test_sequential_train_and_eval_reach_every_module():
    model = MODULES[MODULE_IDS.index("seq-nested")].make()
    model.eval()
    assert not model.training and not model[0].training and not model[0][1].training
    model.train()
    assert model.training and model[0].training and model[0][1].training


def test_dropout_is_the_identity_in_eval():
    drop = cr.Dropout(0.5, rng=0).eval()
    X = np.random.default_rng(0).normal(size=(20, 10)).astype(np.float32)
    np.testing.assert_array_equal(drop(X), X)
    G = np.random.default_rng(1).normal(size=X.shape).astype(np.float32)
    np.testing.assert_array_equal(drop.backward(G), G)


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9])
def test_dropout_in_training_is_inverted_dropout(p):
    drop = cr.Dropout(p, rng=0)
    X = np.ones((200, 100), np.float32)
    A = drop(X)
    assert A.dtype == np.float32
    kept = A != 0
    # Kept units are scaled by 1/(1 − p), dropped ones are 0; about a fraction p is dropped.
    np.testing.assert_allclose(A[kept], 1 / (1 - p), rtol=1e-6)
    assert abs((~kept).mean() - p) < 0.02
    assert abs(A.mean() - 1) < 0.05  # equal to the input in expectation
    G = np.full_like(X, 3.0)
    np.testing.assert_allclose(drop.backward(G), 3.0 * A)  # the same mask, backward


def test_dropout_draws_a_fresh_mask_each_call_and_repeats_with_a_seed():
    X = np.ones((4, 50))
    a, b = cr.Dropout(0.5, rng=7), cr.Dropout(0.5, rng=7)
    first, second = a(X), a(X)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, b(X))
    np.testing.assert_array_equal(second, b(X))


def _bn_data(n=8, k=3, seed=0):
    return np.random.default_rng(seed).normal(loc=[1.0, -2.0, 5.0][:k], scale=[0.5, 2.0, 3.0][:k],
                                              size=(n, k))


def test_batchnorm_training_normalises_each_feature():
    bn = cr.BatchNorm(3, dtype=np.float64, eps=0.0)
    A = bn(_bn_data())
    np.testing.assert_allclose(A.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(A.var(axis=0), 1, rtol=1e-12)  # biased variance, as in forward


def test_batchnorm_running_statistics_use_momentum_and_unbiased_variance():
    bn = cr.BatchNorm(3, dtype=np.float64, momentum=0.1)
    Z1, Z2 = _bn_data(8, seed=1), _bn_data(5, seed=2)
    bn(Z1)
    # running = (1 − momentum)·running + momentum·batch, the variance unbiased (ddof = 1).
    mean1 = 0.9 * 0.0 + 0.1 * Z1.mean(axis=0)
    var1 = 0.9 * 1.0 + 0.1 * Z1.var(axis=0, ddof=1)
    np.testing.assert_allclose(bn.running_mean, [mean1], rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, [var1], rtol=1e-12)
    bn(Z2)
    np.testing.assert_allclose(bn.running_mean, [0.9 * mean1 + 0.1 * Z2.mean(axis=0)],
                               rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, [0.9 * var1 + 0.1 * Z2.var(axis=0, ddof=1)],
                               rtol=1e-12)


def test_batchnorm_momentum_one_keeps_only_the_last_batch():
    bn = cr.BatchNorm(3, dtype=np.float64, momentum=1.0)
    bn(_bn_data(seed=3))
    Z = _bn_data(seed=4)
    bn(Z)
    np.testing.assert_allclose(bn.running_mean, [Z.mean(axis=0)], rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, [Z.var(axis=0, ddof=1)], rtol=1e-12)


def test_batchnorm_eval_uses_running_statistics_and_does_not_update_them():
    bn = MODULES[MODULE_IDS.index("batchnorm-eval")].make(np.float64)
    mean, var = bn.running_mean.copy(), bn.running_var.copy()
    Z = _bn_data(6, k=3).repeat(2, axis=1)[:, :4]
    A = bn(Z)
    np.testing.assert_array_equal(bn.running_mean, mean)
    np.testing.assert_array_equal(bn.running_var, var)
    expected = (Z - mean) / np.sqrt(var + bn.eps) * bn.G.data + bn.B.data
    np.testing.assert_allclose(A, expected, rtol=1e-12)
    # Backward treats the running statistics as constants: dL/dZ = dL/dA · G / sqrt(var + eps).
    G = np.random.default_rng(0).normal(size=A.shape)
    np.testing.assert_allclose(bn.backward(G), G * bn.G.data / np.sqrt(var + bn.eps),
                               rtol=1e-12)
    # One row is fine in eval mode (no batch statistics needed).
    assert bn(Z[:1]).shape == (1, 4)


def test_batchnorm_training_updates_running_statistics_only_in_training():
    bn = cr.BatchNorm(3, dtype=np.float64)
    bn.eval()
    bn(_bn_data())
    np.testing.assert_array_equal(bn.running_mean, 0)
    np.testing.assert_array_equal(bn.running_var, 1)
    bn.train()
    bn(_bn_data())
    assert not np.any(bn.running_mean == 0) and not np.any(bn.running_var == 1)


# -- Sequential -----------------------------------------------------------------------------------


def test_sequential_holds_the_very_modules_given():
    layers = [cr.Linear(3, 4, rng=0), cr.ReLU(), cr.Linear(4, 2, rng=1)]
    model = cr.Sequential(*layers)
    assert all(a is b for a, b in zip(model.modules, layers, strict=True))
    assert len(model) == 3 and model[1] is layers[1]
    assert model.parameters() == [layers[0].W, layers[0].W0, layers[2].W, layers[2].W0]
    assert [path for path, _ in model.named_parameters()] == [
        "modules.0.W", "modules.0.W0", "modules.2.W", "modules.2.W0"]


def test_sequential_is_the_composition_of_its_modules():
    case = MODULES[MODULE_IDS.index("seq-regularized-eval")]
    model = case.make(np.float64)
    X = case.inputs()
    A = X
    for module in model.modules:
        A = module(A)
    np.testing.assert_array_equal(model(X), A)
    C = np.ones_like(A)
    G = C
    for module in reversed(model.modules):
        G = module.backward(G)
    np.testing.assert_array_equal(model.backward(C), G)


def test_sequential_casts_inputs_to_the_model_dtype():
    model = cr.Sequential(cr.Linear(3, 2, rng=0), cr.Sigmoid())
    assert model(np.ones((2, 3), np.float64)).dtype == np.float32
    assert model(np.ones((2, 3), np.int64)).dtype == np.float32
    assert model([[1, 2, 3]]).shape == (1, 2)


def test_sequential_accepts_a_users_duck_typed_module():
    class Double(UserModule):  # the protocol's plumbing, no chainrule base class
        def forward(self, A):
            return 2 * A

        def backward(self, dLdA):
            return 2 * dLdA

    assert not isinstance(Double(), cr.Module)
    model = cr.Sequential(cr.Linear(2, 2, rng=0, dtype=np.float64), Double())
    X = np.ones((3, 2))
    np.testing.assert_allclose(model(X), 2 * model[0](X))
    np.testing.assert_allclose(model.backward(np.ones((3, 2))),
                               model[0].backward(2 * np.ones((3, 2))))


def test_sequential_rejects_an_object_that_is_not_a_module():
    with pytest.raises(InputError, match=r"module 1 \(int\) has no __call__, forward, backward"):
        cr.Sequential(cr.ReLU(), 3)


@pytest.mark.parametrize("batch_size", [None, 1, 2, np.int64(3), 100])
def test_predict_runs_in_eval_mode_and_restores_modes_and_gradients(batch_size):
    case = MODULES[MODULE_IDS.index("seq-regularized-train")]
    model = case.make(np.float32)
    model.modules[3].eval()  # a mixed model: Dropout in eval, the rest training
    X = case.inputs(n=7, dtype=np.float32)
    loss = cr.SquareLoss()
    loss(model(X), np.zeros((7, 2)))
    model.backward_from(loss)
    grads = [p.grad.copy() for p in model.parameters()]
    running = model.modules[1].running_mean.copy()
    reference = copy.deepcopy(model).eval()

    out = model.predict(X, batch_size=batch_size)

    np.testing.assert_allclose(out, reference(X), rtol=1e-6)  # no dropout, running stats
    assert out.dtype == np.float32 and out.shape == (7, 2)
    assert [m.training for m in model.modules] == [True, True, True, False, True, True]
    assert model.training
    for g, p in zip(grads, model.parameters(), strict=True):
        np.testing.assert_array_equal(g, p.grad)
    np.testing.assert_array_equal(model.modules[1].running_mean, running)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "8"])
def test_predict_rejects_a_bad_batch_size(batch_size):
    model = cr.Sequential(cr.Linear(3, 2, rng=0))
    with pytest.raises(InputError, match="batch_size"):
        model.predict(np.ones((4, 3)), batch_size=batch_size)


# -- numerical stability --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["Sigmoid", "Tanh"])
def test_sigmoid_and_tanh_do_not_overflow_at_large_z(name, dtype):
    Z = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]], dtype)
    f = ACTIVATIONS[name]()
    # Underflow to 0 is fine; overflow, 0/0 and division by zero are not.
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        A = f(Z)
        dLdZ = f.backward(np.ones_like(Z))
    low = 0.0 if name == "Sigmoid" else -1.0
    np.testing.assert_array_equal(A[0, [0, -1]], [low, 1.0])
    assert A[0, 2] == (0.5 if name == "Sigmoid" else 0.0)
    assert np.all(np.isfinite(dLdZ)) and dLdZ[0, 0] == dLdZ[0, -1] == 0.0
    assert A.dtype == dtype


INF = np.inf

# f(z) and f′(z) at z = −∞, −1, 0, 1, +∞, as the notes define them (6.31, 6.34, 6.35; leaky
# ReLU with alpha = 0.01): the infinities are the limits of the finite values beside them.
PIECEWISE = {
    "Step": ([0, 0, 1, 1, 1], [0, 0, 0, 0, 0]),
    "ReLU": ([0, 0, 0, 1, INF], [0, 0, 1, 1, 1]),
    "LeakyReLU": ([-INF, -0.01, 0, 1, INF], [0.01, 0.01, 1, 1, 1]),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(PIECEWISE))
def test_piecewise_activations_at_the_infinities(name, dtype):
    # ReLU(−∞) is max(0, −∞) = 0, not a NaN from −∞ · 0; no operation may warn on the way.
    Z = np.array([[-INF, -1.0, 0.0, 1.0, INF]], dtype)
    f = ACTIVATIONS[name]()
    with np.errstate(all="raise"):
        A = f(Z)
        dLdZ = f.backward(np.ones_like(Z))
    A_expected, derivative = PIECEWISE[name]
    np.testing.assert_array_equal(A, np.array([A_expected], dtype))
    np.testing.assert_array_equal(dLdZ, np.array([derivative], dtype))
    assert A.dtype == dLdZ.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_keeps_nan_and_passes_no_gradient_below_zero(dtype):
    # NaN stays NaN (fit then reports it); a finite dLdA below zero becomes exactly 0.
    f = cr.ReLU()
    A = f(np.array([[np.nan, -2.0, 3.0]], dtype))
    assert np.isnan(A[0, 0]) and A[0, 1] == 0 and A[0, 2] == 3
    np.testing.assert_array_equal(f.backward(np.array([[5.0, 7.0, 11.0]], dtype)),
                                  np.array([[0, 0, 11]], dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_keeps_relative_precision_for_very_negative_z(dtype):
    # σ(−30) = e^(−30)/(1 + e^(−30)) ≈ 9.357623e-14; 1 − σ(30) would round to 0.
    A = cr.Sigmoid()(np.array([[-30.0]], dtype))
    np.testing.assert_allclose(A, 9.357622968839299e-14, rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_of_rows_with_huge_values(dtype):
    Z = np.array([[1000.0, 0.0, -1000.0],
                  [1e4, 1e4, 1e4],
                  [-1e4, -1e4, -1e4 + np.log(2.0)],
                  [88.0, 89.0, 90.0]], dtype)  # e^90 overflows float32 without the shift
    f = cr.Softmax()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        A = f(Z)
        f.backward(np.ones_like(Z))
    assert A.dtype == dtype
    np.testing.assert_allclose(A.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(A[0], [1, 0, 0], atol=1e-30)
    np.testing.assert_allclose(A[1], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(A[2], [0.25, 0.25, 0.5], rtol=1e-3)  # 1e4 + log 2 in float32
    e = np.exp([-2.0, -1.0, 0.0])
    np.testing.assert_allclose(A[3], e / e.sum(), rtol=1e-6)


def test_softmax_rows_sum_to_one_and_are_shift_invariant():
    Z = np.random.default_rng(0).normal(size=(5, 4))
    A = cr.Softmax()(Z)
    np.testing.assert_allclose(A.sum(axis=1), 1, rtol=1e-14)
    np.testing.assert_allclose(cr.Softmax()(Z + 123.0), A, rtol=1e-12)


# -- errors: exact messages at the boundary -------------------------------------------------------


def test_linear_wrong_feature_count_message_is_exact():
    layer = cr.Linear(784, 256, rng=0)
    message = "Linear(784, 256) expected input with 784 features, got array of shape (32, 785)"
    with pytest.raises(InputError) as info:
        layer(np.zeros((32, 785), np.float32))
    assert str(info.value) == message
    assert isinstance(info.value, cr.ChainruleError) and isinstance(info.value, ValueError)
    with pytest.raises(InputError) as info:  # the same through a Sequential
        cr.Sequential(layer, cr.ReLU())(np.zeros((32, 785)))
    assert str(info.value) == message


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4), ()])
def test_linear_rejects_inputs_that_are_not_matrices(shape):
    message = re.escape("Linear(3, 2) expected a 2-D array (n_samples, n_features), got array "
                        f"of shape {shape}")
    with pytest.raises(InputError, match=f"^{message}$"):
        cr.Linear(3, 2, rng=0)(np.zeros(shape))


def test_batchnorm_wrong_feature_count_message():
    with pytest.raises(InputError) as info:
        cr.BatchNorm(3)(np.zeros((4, 5)))
    assert str(info.value) == "BatchNorm(3) expected input with 3 features, got array of " \
                              "shape (4, 5)"


def test_batchnorm_rejects_a_one_row_training_batch():
    with pytest.raises(InputError, match=r"BatchNorm\(3\) in training mode needs a batch of at "
                                         r"least 2 rows.*got array of shape \(1, 3\)"):
        cr.BatchNorm(3)(np.zeros((1, 3)))


def test_softmax_rejects_a_vector():
    with pytest.raises(InputError, match=r"Softmax\(\) expected a 2-D array .*shape \(4,\)"):
        cr.Softmax()(np.zeros(4))


# Each bad constructor call: the class named, what was expected, and the value given.
BAD_CONSTRUCTORS = [
    (lambda: cr.Linear(0, 3), r"Linear expected m to be a positive int, got 0"),
    (lambda: cr.Linear(3, -2), r"Linear expected n to be a positive int, got -2"),
    (lambda: cr.Linear(2.5, 3), r"Linear expected m to be a positive int, got 2\.5"),
    (lambda: cr.Linear(True, 3), r"Linear expected m to be a positive int, got True"),
    (lambda: cr.Linear("3", 3), r"Linear expected m to be a positive int, got '3'"),
    (lambda: cr.Linear(3, 2, init="uniform"),
     r"Linear expected init in \['gaussian', 'he', 'xavier'\], got 'uniform'"),
    (lambda: cr.Linear(3, 2, dtype=np.int32), r"Linear expected dtype float32 or float64, got"),
    (lambda: cr.Linear(3, 2, dtype=np.float16), r"Linear expected dtype float32 or float64"),
    (lambda: cr.Linear(3, 2, dtype="banana"),
     r"Linear expected dtype float32 or float64, got 'banana'"),
    (lambda: cr.Linear(3, 2, dtype=None), r"Linear expected dtype float32 or float64, got None"),
    (lambda: cr.Linear(3, 2, rng=-1), r"rng must be None, a non-negative int seed, .*"
                                      r"numpy\.random\.RandomState, got -1"),
    (lambda: cr.Linear(3, 2, offsets="ones"),
     r"Linear expected offsets in \['zeros', 'random'\], got 'ones'"),
    (lambda: cr.Linear(3, 2, rng="seed"), r"rng must be .* got 'seed'"),
    (lambda: cr.Dropout(1.0), r"Dropout expected p in \[0\.0, 1\.0\), got 1\.0"),
    (lambda: cr.Dropout(-0.1), r"Dropout expected p in \[0\.0, 1\.0\), got -0\.1"),
    (lambda: cr.Dropout(float("nan")), r"Dropout expected p in \[0\.0, 1\.0\), got nan"),
    (lambda: cr.Dropout("0.5"), r"Dropout expected p in \[0\.0, 1\.0\), got '0\.5'"),
    (lambda: cr.Dropout(0.5, rng=1.5), r"rng must be .* got 1\.5"),
    (lambda: cr.Dropout(0.5, scaling="test"),
     r"Dropout expected scaling in \['inverted', 'notes'\], got 'test'"),
    (lambda: cr.BatchNorm(0), r"BatchNorm expected n to be a positive int, got 0"),
    (lambda: cr.BatchNorm(3, eps=-1e-5), r"BatchNorm expected eps in \[0\.0, inf\], got -1e-05"),
    (lambda: cr.BatchNorm(3, momentum=1.5),
     r"BatchNorm expected momentum in \[0\.0, 1\.0\], got 1\.5"),
    (lambda: cr.BatchNorm(3, dtype="int64"), r"BatchNorm expected dtype float32 or float64"),
    (lambda: cr.BatchNorm(3, eps_inside="sd"),
     r"BatchNorm expected eps_inside in \['variance', 'std'\], got 'sd'"),
    (lambda: cr.LeakyReLU(-0.1), r"LeakyReLU expected alpha in \[0\.0, inf\], got -0\.1"),
    (lambda: cr.LeakyReLU(float("inf")), r"LeakyReLU expected alpha .* got inf"),
]


@pytest.mark.parametrize("build, message", BAD_CONSTRUCTORS,
                         ids=[m.split(" ")[0] + str(i) for i, (_, m) in
                              enumerate(BAD_CONSTRUCTORS)])
def test_bad_constructor_arguments(build, message):
    with pytest.raises(InputError, match=message) as info:
        build()
    assert isinstance(info.value, cr.ChainruleError) and isinstance(info.value, ValueError)


def test_leaky_relu_alpha_zero_is_relu():
    Z = np.random.default_rng(0).normal(size=(4, 5))
    np.testing.assert_array_equal(cr.LeakyReLU(0)(Z), cr.ReLU()(Z))
