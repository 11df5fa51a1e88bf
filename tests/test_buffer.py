"""The parameter store (chainrule.buffer): flat memory behind a model's parameters, the same
numbers as parameter-by-parameter updates, and fit's propose/commit step."""

import copy
import pickle

import numpy as np
import pytest

import chainrule as cr
from cases import mlp, weights
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
