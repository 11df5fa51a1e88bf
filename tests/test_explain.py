"""``explain``: the chain rule walked layer by layer, on networks whose gradients we know."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import chainrule as cr
from chainrule.errors import InputError
from chainrule.explain import KEYS, explain

F64 = np.float64


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def two_neuron(w1, w01, w2, w02, hidden):
    """x → Linear(1, 1) → hidden → Linear(1, 1) → Identity: the notes' two-neuron network."""
    l1 = cr.Linear(1, 1, dtype=F64)
    l2 = cr.Linear(1, 1, dtype=F64)
    l1.W.data[:] = w1
    l1.W0.data[:] = w01
    l2.W.data[:] = w2
    l2.W0.data[:] = w02
    return cr.Sequential(l1, hidden(), l2, cr.Identity())


# One sample, square loss L = (a² − y)², so every quantity is a number worked out by hand:
#   z¹ = w¹x + w0¹,  a¹ = f(z¹),  z² = w²a¹ + w0²,  a² = z²
#   ∂L/∂a² = 2(a² − y) = ∂L/∂z²          (Identity: f′ = 1)
#   ∂L/∂w² = a¹ ∂L/∂z²,  ∂L/∂w0² = ∂L/∂z²,  ∂L/∂a¹ = ∂L/∂z² w²
#   ∂L/∂z¹ = ∂L/∂a¹ f′(z¹),  ∂L/∂w¹ = x ∂L/∂z¹,  ∂L/∂w0¹ = ∂L/∂z¹,  ∂L/∂x = ∂L/∂z¹ w¹
TWO_NEURON = [
    # (hidden, f, f′, x, y, w1, w01, w2, w02)
    (cr.Sigmoid, sigmoid, lambda z: sigmoid(z) * (1 - sigmoid(z)), 2.0, 1.0, 0.5, -0.25, -1.5,
     0.5),
    (cr.Tanh, np.tanh, lambda z: 1 - np.tanh(z) ** 2, -1.0, 0.5, 0.8, 0.1, 2.0, -0.3),
    (cr.ReLU, lambda z: max(z, 0.0), lambda z: float(z >= 0), 3.0, -1.0, 0.4, 0.2, 1.5, 0.0),
]


@pytest.mark.parametrize("hidden, f, df, x, y, w1, w01, w2, w02", TWO_NEURON,
                         ids=[row[0].__name__ for row in TWO_NEURON])
def test_two_neuron_network_matches_hand_computation(hidden, f, df, x, y, w1, w01, w2, w02):
    z1 = w1 * x + w01
    a1 = f(z1)
    z2 = w2 * a1 + w02
    a2 = z2
    dLdz2 = 2 * (a2 - y)
    dLda1 = dLdz2 * w2
    dLdz1 = dLda1 * df(z1)
    want = {  # last layer first, as explain lists them
        "modules.2": {"A_prev": a1, "Z": z2, "A": a2, "dLdA": dLdz2, "dLdZ": dLdz2,
                      "dLdW": a1 * dLdz2, "dLdW0": dLdz2, "dLdA_prev": dLda1},
        "modules.0": {"A_prev": x, "Z": z1, "A": a1, "dLdA": dLda1, "dLdZ": dLdz1,
                      "dLdW": x * dLdz1, "dLdW0": dLdz1, "dLdA_prev": dLdz1 * w1},
    }
    report = explain(two_neuron(w1, w01, w2, w02, hidden), cr.SquareLoss(), [[x]], [y])
    assert [layer["path"] for layer in report.layers] == list(want)
    assert report.loss == pytest.approx((a2 - y) ** 2, rel=1e-12)
    for layer in report.layers:
        assert set(layer) == {"path", "shapes", "norms", "dAdZ", "flag"}
        assert set(layer["norms"]) == set(KEYS) == set(layer["shapes"])
        assert all(shape == (1, 1) for shape in layer["shapes"].values())
        for key, value in want[layer["path"]].items():
            assert layer["norms"][key] == pytest.approx(abs(value), rel=1e-12, abs=1e-15), key
    hidden_layer = report.layers[1]
    assert hidden_layer["dAdZ"]["mean"] == pytest.approx(df(z1), rel=1e-12)
    assert hidden_layer["dAdZ"]["zero_fraction"] == (df(z1) == 0)
    assert report.layers[0]["dAdZ"] == {"mean": 1.0, "zero_fraction": 0.0}  # Identity


def test_dead_relu_shows_zero_derivative():
    # z¹ = 1·(−2) + 0 < 0: the ReLU is dead, so no gradient reaches W¹. Its output a¹ = 0
    # also makes ∂L/∂W² = a¹ ∂L/∂z² = 0: with no reference norm, nothing is flagged.
    report = explain(two_neuron(1.0, 0.0, 1.0, 0.5, cr.ReLU), cr.SquareLoss(), [[-2.0]], [1.0])
    last, first = report.layers
    assert first["dAdZ"] == {"mean": 0.0, "zero_fraction": 1.0}
    assert first["norms"]["dLdW"] == 0.0 == last["norms"]["dLdW"]
    assert last["norms"]["dLdW0"] == pytest.approx(2 * (0.5 - 1.0) * -1)  # ∂L/∂w0² = 2(a² − y)
    assert first["flag"] is None and last["flag"] is None


def stack(act, init, depth=10, width=16, scale=1.0, seed=0):
    """``depth`` layers of Linear → act, a sigmoid output; weights × ``scale`` after init."""
    modules = []
    for i in range(depth - 1):
        modules += [cr.Linear(width, width, init=init, rng=seed + i, dtype=F64), act()]
    modules += [cr.Linear(width, 1, init=init, rng=seed + 99, dtype=F64), cr.Sigmoid()]
    model = cr.Sequential(*modules)
    for p in model.parameters():
        p.data *= scale
    return model


def data(seed=0, n=32, width=16):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, width))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name, act, init, scale, flags", [
    # Sigmoid with small weights: each layer multiplies the gradient by ≈ 0.25 · 0.5.
    ("sigmoid, small init", cr.Sigmoid, "gaussian", 0.5, {"vanishing"}),
    # ReLU with He's variance 2/m keeps gradient norms of one order of magnitude.
    ("relu, he", cr.ReLU, "he", 1.0, {None}),
])
def test_ten_layer_stacks_are_flagged_as_the_notes_predict(seed, name, act, init, scale, flags):
    X, y = data(seed)
    report = explain(stack(act, init, scale=scale, seed=10 * seed), cr.NLL(), X, y)
    assert len(report.layers) == 10
    assert report.layers[0]["flag"] is None  # the reference layer itself
    assert report.layers[-1]["flag"] in flags  # layer 1, farthest from the loss
    if flags == {None}:
        assert all(layer["flag"] is None for layer in report.layers)
        ratios = [report.ratio(layer) for layer in report.layers]
        assert 0.1 < min(ratios) and max(ratios) < 100
    else:
        flag = next(iter(flags))
        assert flag in str(report)
        flagged = [layer["flag"] for layer in report.layers]
        first = flagged.index(flag)  # once flagged, every layer closer to the input is too
        assert flagged[first:] == [flag] * (10 - first)


@pytest.mark.parametrize("seed", [0, 1])
def test_exploding_is_flagged(seed):
    # A ReLU stack without offsets is homogeneous: with layer ℓ's weights scaled by sₗ,
    # ‖∂L/∂Wˡ‖ ∝ (Πₖ sₖ) / sₗ (the forward A's and the backward ∂L/∂Z's each bring the other
    # layers' factors). Shrinking layer 1 by 1e-5 makes its gradient 1e5 × the last layer's.
    X, y = data(seed)
    model = stack(cr.ReLU, "he", seed=seed)
    model.modules[0].W.data *= 1e-5
    report = explain(model, cr.NLL(), X, y)
    assert [layer["flag"] for layer in report.layers] == [None] * 9 + ["exploding"]
    assert report.ratio(report.layers[-1]) > 1e3
    assert "!! exploding gradient" in str(report)


def test_sigmoid_stack_gradients_shrink_layer_by_layer():
    X, y = data()
    report = explain(stack(cr.Sigmoid, "gaussian"), cr.NLL(), X, y)
    norms = [layer["norms"]["dLdW"] for layer in report.layers]
    assert all(b < a for a, b in zip(norms, norms[1:]))
    assert all(0.2 < layer["dAdZ"]["mean"] <= 0.25 for layer in report.layers)


MODELS = {
    "mlp softmax": lambda: cr.Sequential(cr.Linear(5, 7, rng=0), cr.ReLU(),
                                         cr.Linear(7, 3, rng=1), cr.Softmax()),
    "batchnorm dropout": lambda: cr.Sequential(
        cr.Linear(5, 7, rng=0), cr.BatchNorm(7), cr.Tanh(), cr.Linear(7, 6, rng=2),
        cr.LeakyReLU(), cr.Dropout(0.3, rng=3), cr.Linear(6, 3, rng=1), cr.Softmax()),
    "input dropout": lambda: cr.Sequential(cr.Dropout(0.2, rng=4), cr.Linear(5, 3, rng=1),
                                           cr.Softmax()),
}


def _batch(n=12):
    rng = np.random.default_rng(5)
    return rng.normal(size=(n, 5)).astype(np.float32), np.arange(n) % 3


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_norms_match_the_models_own_backward(name, mode):
    model = getattr(MODELS[name](), mode)()
    X, y = _batch()
    report = explain(model, cr.NLLM(), X, y)
    twin, loss = copy.deepcopy(model), cr.NLLM()
    A = twin(X)
    loss(A, y)
    twin.backward_from(loss)
    for layer in report.layers:
        linear = twin.modules[int(layer["path"].split(".")[1])]
        assert layer["norms"]["dLdW"] == pytest.approx(np.linalg.norm(linear.W.grad), rel=1e-5)
        assert layer["norms"]["dLdW0"] == pytest.approx(np.linalg.norm(linear.W0.grad),
                                                        rel=1e-5)
        assert layer["shapes"]["dLdW"] == linear.W.data.shape
        assert layer["shapes"]["Z"] == (len(X), linear.n)
    # The fused dL/dZᴸ = (Aᴸ − Y)/n of the output layer.
    onehot = np.eye(3)[y]
    assert report.layers[0]["norms"]["dLdZ"] == pytest.approx(
        np.linalg.norm((A - onehot) / len(X)), rel=1e-5)
    assert report.layers[0]["norms"]["A"] == pytest.approx(np.linalg.norm(A), rel=1e-6)


def test_chain_links_layers():
    # ∂L/∂A of layer ℓ − 1 is ∂L/∂A_prev of layer ℓ; A of layer ℓ − 1 is A_prev of layer ℓ.
    X, y = _batch()
    report = explain(MODELS["batchnorm dropout"](), cr.NLLM(), X, y)
    for later, earlier in zip(report.layers, report.layers[1:]):
        assert earlier["norms"]["dLdA"] == later["norms"]["dLdA_prev"]
        assert earlier["norms"]["A"] == later["norms"]["A_prev"]
        assert earlier["shapes"]["A"] == later["shapes"]["A_prev"]


def test_diagonal_only_for_one_elementwise_activation():
    X, y = _batch()
    report = explain(MODELS["batchnorm dropout"](), cr.NLLM(), X, y)
    softmax, leaky_dropout, batchnorm = report.layers
    assert softmax["dAdZ"] is None
    assert batchnorm["dAdZ"] is None
    assert set(leaky_dropout["dAdZ"]) == {"mean", "zero_fraction"}
    assert leaky_dropout["dAdZ"]["zero_fraction"] == 0.0  # LeakyReLU: f′ ∈ {alpha, 1}


def test_model_is_left_as_it_was():
    model = MODELS["batchnorm dropout"]()
    X, y = _batch()
    cr.fit(model, cr.NLLM(), X, y, epochs=1, batch_size=4, rng=0, progress=False)
    model.modules[1].eval()  # a mixed mode must survive too
    before = copy.deepcopy(model)
    state = model.modules[5].rng.bit_generator.state
    explain(model, cr.NLLM(), X, y)
    for p, q in zip(model.parameters(), before.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
        np.testing.assert_array_equal(p.grad, q.grad)
    for m, b in zip(model.modules, before.modules):
        assert m.training == b.training
    bn, bn0 = model.modules[1], before.modules[1]
    np.testing.assert_array_equal(bn.running_mean, bn0.running_mean)
    np.testing.assert_array_equal(bn.running_var, bn0.running_var)
    assert model.modules[5].rng.bit_generator.state == state
    assert model.training == before.training


def test_explanation_prints_the_walk_and_is_data():
    X, y = _batch()
    report = explain(MODELS["mlp softmax"](), cr.NLLM(), X, y)
    text = str(report)
    for piece in ["layer 2 (modules.2", "layer 1 (modules.0", "∂L/∂W² = A¹ᵀ ∂L/∂Z²",
                  "∂L/∂A⁰ = ∂L/∂Z¹ W¹ᵀ", "diag f′(z)", "fused", "(12, 7)", "summary"]:
        assert piece in text, piece
    assert "ReLU" in report.summary()
    json.dumps(report.to_dict())  # plain data


@pytest.mark.parametrize("model, X, Y, match", [
    (cr.Sequential(cr.ReLU()), np.ones((2, 3)), [0, 1], "at least one Linear"),
    (MODELS["mlp softmax"](), np.ones((2, 4)), [0, 1], "5 features"),
    (MODELS["mlp softmax"](), [[np.nan] * 5, [0] * 5], [0, 1], "NaN"),
    (MODELS["mlp softmax"](), np.ones((2, 5)), [0, 1, 2], "2 samples in X and 3"),
    (MODELS["mlp softmax"](), np.ones((2, 5)), [0, 7], "labels in 0..2"),
])
def test_bad_input_is_an_input_error(model, X, Y, match):
    with pytest.raises(InputError, match=match):
        explain(model, cr.NLLM(), X, Y)
