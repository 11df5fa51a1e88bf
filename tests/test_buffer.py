"""The parameter store (chainrule.buffer): flat memory behind a model's parameters, the same
numbers as parameter-by-parameter updates, and fit's propose/commit step."""

import copy
import pickle

import numpy as np
import pytest

import chainrule as cr
from cases import UserModule, blobs, mlp, weights
from chainrule.buffer import ParameterBuffer, Parameters, store_for
from chainrule.optimizers import OPTIMIZERS


def net():
    """Linear(5, 7), BatchNorm(7), Tanh, Linear(7, 3), Softmax: W, W0, G and B in one buffer."""
    return mlp((5, 7, 3), act=cr.Tanh, batch_norm=True, init="gaussian")


def backprop(model, seed=0):
    rng = np.random.default_rng(seed)
    loss = cr.NLLM()
    loss(model(rng.normal(size=(16, 5))), rng.integers(0, 3, 16))
    model.backward_from(loss)


def test_a_sequential_keeps_its_parameters_in_one_buffer():
    model = net()
    buffer = model.parameter_buffer
    assert buffer.paths == [path for path, _ in model.named_parameters()]
    assert buffer.data.size == sum(p.data.size for p in model.parameters())
    model.modules[0].W.data[0, 0] = 42.0  # the views write through, both ways
    assert buffer.data[0] == 42.0
    buffer.grad[:] = 1.0
    assert all((p.grad == 1).all() for p in model.parameters())
    # weight decay applies to W only: the mask is 1 on both W's stretches and 0 elsewhere
    for p, mask in zip(buffer.params, buffer.views(buffer.decay)):
        assert (mask == (1.0 if p.name == "W" else 0.0)).all()


def test_shared_mixed_or_no_parameters_get_no_buffer_and_are_left_alone():
    layer = cr.Linear(3, 3, rng=0)
    before = layer.W.data
    assert cr.Sequential(layer, cr.ReLU(), layer).parameter_buffer is None
    assert layer.W.data is before
    assert cr.Sequential(cr.ReLU()).parameter_buffer is None
    mixed = cr.Sequential(cr.Linear(2, 2, rng=0), cr.Linear(2, 2, rng=0, dtype=np.float64))
    assert mixed.parameter_buffer is None
    assert isinstance(store_for(mixed, cr.Adam()), Parameters)


def test_rebound_arrays_and_copies_are_gathered_back():
    model = net()
    buffer = model.parameter_buffer
    model.modules[3].W.data = np.full((7, 3), 2.0, np.float32)  # rebound by hand
    assert model.parameter_buffer is buffer  # the same store, with the new values in it
    assert model.modules[3].W.data.base is buffer.data and (model.modules[3].W.data == 2).all()
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        store = twin.parameter_buffer
        assert store.intact() and store is not buffer
        for p, q in zip(twin.parameters(), model.parameters(), strict=True):
            assert p.data.base is store.data and p.grad.base is store.grad
            np.testing.assert_array_equal(p.data, q.data)
    model.modules.append(cr.Linear(3, 2, rng=0))  # a changed model gets a new buffer
    assert model.parameter_buffer is not buffer
    assert len(model.parameter_buffer.params) == len(model.parameters())


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_a_buffer_step_equals_stepping_each_parameter(name, weight_decay):
    flat, loose = net(), net()
    opts = [OPTIMIZERS[name](weight_decay=weight_decay) for _ in range(2)]
    for step in range(5):
        backprop(flat, step), backprop(loose, step)
        opts[0].step(flat.parameter_buffer)
        opts[1].step(loose.parameters())
    for a, b in zip(flat.parameters(), loose.parameters(), strict=True):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-6, atol=1e-7)
    sa, sb = opts[0].state_dict(), opts[1].state_dict()
    assert sa["t"] == sb["t"] and sa["hyper"] == sb["hyper"]
    for da, db in zip(sa["state"], sb["state"], strict=True):
        assert da.keys() == db.keys()
        for k in da:
            assert da[k].shape == db[k].shape
            np.testing.assert_allclose(da[k], db[k], rtol=1e-6, atol=1e-7)


def test_state_moves_between_parameters_and_the_buffer():
    a, b = net(), net()
    opt_a, opt_b = cr.Adam(), cr.Adam()
    for step in range(6):
        backprop(a, step), backprop(b, step)
        # a: one by one, then through its buffer, then one by one again
        opt_a.step(a.parameter_buffer if 2 <= step < 4 else a.parameters())
        opt_b.step(b.parameters())
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-6, atol=1e-7)
    assert len(opt_a.state_dict()["state"]) == len(a.parameters())
    assert list(opt_a.state) == a.parameters()  # one entry each, in order, no stale buffer


def test_propose_leaves_the_weights_and_commit_makes_them_current():
    model, twin = net(), net()
    buffer = model.parameter_buffer
    arrays = [p.data for p in model.parameters()]
    opt, twin_opt = cr.Adam(lr=0.1), cr.Adam(lr=0.1)
    with buffer.stepping():
        for step in range(3):
            backprop(model, step), backprop(twin, step)
            before = buffer.data.copy()
            assert buffer.propose(opt) is None
            np.testing.assert_array_equal(buffer.data, before)  # not yet current
            buffer.commit()
            twin_opt.step(twin.parameters())
            for p, q in zip(model.parameters(), twin.parameters(), strict=True):
                np.testing.assert_allclose(p.data, q.data, rtol=1e-6, atol=1e-7)
        assert model.parameters()[0].data is not arrays[0]  # three commits: the other array
    # after the stepping block the weights are back in the arrays they started in
    assert all(p.data is a for p, a in zip(model.parameters(), arrays, strict=True))
    np.testing.assert_array_equal(arrays[0], twin.parameters()[0].data.astype(np.float32))


@pytest.mark.parametrize("store_of", [lambda m: m.parameter_buffer,
                                      lambda m: Parameters(m.named_parameters())],
                         ids=["buffer", "parameters"])
def test_a_diverging_proposal_names_the_parameter_and_changes_nothing(store_of):
    model = net()
    store = store_of(model)
    backprop(model)
    before = weights(model)
    with np.errstate(all="ignore"):
        bad = store.propose(cr.SGD(lr=1e39))  # beyond float32: inf
    assert bad == "modules.0.W"
    for p, b in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.data, b)


def test_buffer_requires_what_it_says():
    assert ParameterBuffer.build([]) is None
    p = cr.Parameter(np.zeros(2, np.int64), "W")
    assert ParameterBuffer.build([("W", p)]) is None


class Tee:
    """An optimizer seen by fit only through ``.step``: fit then steps it one parameter at a
    time, through ``Parameters``, the reference the buffer path must agree with."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def step(self, params):
        self.optimizer.step(params)


class RebindingAffine(UserModule):
    """A user's layer whose backward assigns new gradient arrays instead of filling them."""

    def __init__(self, m, n):
        rng = np.random.default_rng(0)
        self.W = cr.Parameter(rng.normal(size=(m, n)).astype(np.float32), "W")
        self.W0 = cr.Parameter(np.zeros((1, n), np.float32), "W0")

    def forward(self, A):
        self.A = A
        return A @ self.W.data + self.W0.data

    def backward(self, dLdZ):
        self.W.grad = self.A.T @ dLdZ
        self.W0.grad = dLdZ.sum(axis=0, keepdims=True)
        return dLdZ @ self.W.data.T


def test_fit_takes_back_gradients_and_weights_rebound_during_training():
    X, y = blobs(n=40)
    zeros = {}

    class Reset:  # a callback that assigns new weights to the last layer after step 0
        def __init__(self, model):
            self.model = model

        def on_step_end(self, step, logs):
            if step == 0 and logs["epoch"] == 0:
                W = self.model.modules[2].W
                W.data = zeros.setdefault(id(self), np.zeros_like(W.data))

    runs = []
    for optimizer in (cr.Adam(lr=0.01), Tee(cr.Adam(lr=0.01))):
        model = cr.Sequential(RebindingAffine(4, 8), cr.Tanh(), cr.Linear(8, 3, rng=1),
                              cr.Softmax())
        assert model.parameter_buffer is not None
        before = model.modules[0].W.data.copy()
        h = cr.fit(model, cr.NLLM(), X, y, optimizer=optimizer, epochs=3, rng=0,
                   callbacks=[Reset(model)], progress=False)
        assert not np.array_equal(model.modules[0].W.data, before)  # the user's layer trained
        runs.append((model, h))
    (a, ha), (b, hb) = runs
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ha.grad_norms["modules.0.W"], hb.grad_norms["modules.0.W"],
                               rtol=1e-5)


def test_a_parameter_rebound_to_another_shape_is_refused_or_rebuilt():
    model = net()
    X, y = blobs(n=16, d=5)

    class Grow:
        def on_step_end(self, step, logs):
            model.modules[3].W0.data = np.zeros((1, 3))  # float64 in a float32 model

    expected = r"modules\.3\.W0 to keep its shape \(1, 3\) and dtype float32"
    with pytest.raises(cr.ChainruleError, match=expected):
        cr.fit(model, cr.NLLM(), X, y, epochs=1, batch_size=4, callbacks=[Grow()], rng=0,
               progress=False)
    model = net()
    old = model.parameter_buffer
    model.modules[3] = cr.Linear(7, 4, rng=0)  # another shape: a new buffer, not an error
    model.modules[4:] = [cr.Softmax()]
    assert model.parameter_buffer is not old and model.parameter_buffer.shapes[-2] == (7, 4)


def test_fit_calls_a_subclass_step_and_gives_a_subclass_update_each_parameter():
    X, y = blobs(n=16)
    calls, shapes = [], []

    class Counted(cr.SGD):
        def step(self, params):
            calls.append(len(params))
            super().step(params)

    class Normalised(cr.SGD):  # needs each parameter's own array: its shape and its norm
        def _update(self, W, g, state, eta):
            shapes.append(W.shape)
            W -= eta * g / max(np.linalg.norm(g), 1e-12)

    model = mlp()
    cr.fit(model, cr.NLLM(), X, y, optimizer=Counted(), epochs=1, batch_size=8, rng=0,
           progress=False)
    assert calls == [4, 4]
    cr.fit(model, cr.NLLM(), X, y, optimizer=Normalised(lr=0.1), epochs=1, batch_size=16,
           rng=0, progress=False)
    assert shapes == [p.data.shape for p in model.parameters()]
    assert not Normalised.elementwise and cr.Adam.elementwise


def test_grad_norms_recompute_an_overflowing_float32_sum_in_float64():
    model = mlp((3, 4, 2))
    buffer = model.parameter_buffer
    buffer.grad[...] = 0
    W = model.modules[0].W
    W.grad[0, :] = 1e20  # squares overflow float32; the norm itself (2e20) does not
    norms = buffer.grad_norms()
    assert norms.dtype == np.float64
    np.testing.assert_allclose(norms[0], 2e20, rtol=1e-6)
    assert np.all(norms[1:] == 0)


def test_grad_norms_of_a_nan_or_infinite_gradient_are_not_finite_there_only():
    model = mlp((3, 4, 2))
    buffer = model.parameter_buffer
    buffer.grad[...] = 1
    model.modules[2].W.grad[1, 0] = np.nan
    model.modules[0].W0.grad[0, 2] = -np.inf
    norms = buffer.grad_norms()
    assert [np.isfinite(x) for x in norms] == [True, False, False, True]


def test_fit_stops_before_the_update_on_a_non_finite_gradient():
    X, y = blobs(n=40)
    model = mlp((X.shape[1], 6, 3))
    real = model.modules[2].backward_params

    def poisoned(dLdZ):  # a NaN in one layer's gradient, from the first step on
        real(dLdZ)
        model.modules[2].W.grad[0, 0] = np.nan

    model.modules[2].backward_params = poisoned
    before = weights(model)
    with pytest.raises(cr.DivergenceError, match=r"step 0, layer 2 \(modules\.2\.W.*the "
                                                  r"gradient is not finite"):
        cr.fit(model, cr.NLLM(), X, y, epochs=1, rng=0, progress=False)
    for a, b in zip(weights(model), before, strict=True):
        np.testing.assert_array_equal(a, b)
