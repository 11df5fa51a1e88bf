"""The flat weight buffer: same numbers as parameter-by-parameter updates, state included."""

import copy

import numpy as np
import pytest

import chainrule as cr
from chainrule.flat import flat_view, flatten
from chainrule.optimizers import OPTIMIZERS


def net(rng=0):
    rng = np.random.default_rng(rng)
    return cr.Sequential(cr.Linear(5, 7, rng=rng), cr.BatchNorm(7), cr.Tanh(),
                         cr.Linear(7, 3, rng=rng), cr.Softmax())


def test_sequential_lays_its_parameters_out_flat():
    model = net()
    data, grad = flat_view(model.parameters())
    assert data.size == sum(p.data.size for p in model.parameters())
    model.modules[0].W.data[0, 0] = 42.0  # the views write through
    assert data[0] == 42.0


def test_rebinding_a_parameter_falls_back_and_copies_are_not_flat():
    model = net()
    assert flat_view(copy.deepcopy(model).parameters()) is None
    model.modules[3].W.data = model.modules[3].W.data.copy()
    assert flat_view(model.parameters()) is None


def test_shared_weights_and_mixed_dtypes_are_left_alone():
    layer = cr.Linear(3, 3, rng=0)
    before = layer.W.data
    cr.Sequential(layer, cr.ReLU(), layer)
    assert layer.W.data is before
    params = [cr.Parameter(np.zeros(2, np.float32), "W"), cr.Parameter(np.zeros(2), "W0")]
    flatten(params)
    assert flat_view(params) is None


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_flat_and_per_parameter_updates_are_bit_identical(name, weight_decay):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 5)), rng.integers(0, 3, 16)
    flat, loose = net(), copy.deepcopy(net())  # the deep copy is not flat
    assert flat_view(flat.parameters()) and not flat_view(loose.parameters())
    opts = [OPTIMIZERS[name](weight_decay=weight_decay) for _ in range(2)]
    for model, opt in zip((flat, loose), opts):
        for _ in range(5):
            loss = cr.NLLM()
            loss(model(X), y)
            model.backward_from(loss)
            opt.step(model.parameters())
    for a, b in zip(flat.parameters(), loose.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    sa, sb = opts[0].state_dict(), opts[1].state_dict()
    assert sa["t"] == sb["t"] and sa["hyper"] == sb["hyper"]
    for da, db in zip(sa["state"], sb["state"]):
        assert da.keys() == db.keys()
        for k in da:
            np.testing.assert_array_equal(da[k], db[k])


def test_state_carries_over_when_a_model_becomes_flat():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 5)), rng.integers(0, 3, 8)
    a, b = copy.deepcopy(net()), copy.deepcopy(net())
    opt_a, opt_b = cr.Adam(), cr.Adam()
    for step in range(4):
        if step == 2:
            flatten(a.parameters())  # a's optimizer switches to the flat path mid-run
            assert flat_view(a.parameters())
        for model, opt in ((a, opt_a), (b, opt_b)):
            loss = cr.NLLM()
            loss(model(X), y)
            model.backward_from(loss)
            opt.step(model.parameters())
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
