"""``explain``: the chain rule walked layer by layer, on networks whose gradients we know."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule.errors import InputError
from chainrule.explain import KEYS, explain

F64 = np.float64


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def two_neuron(w1, w01, w2, w02, hidden, out=cr.Identity):
    """x → Linear(1, 1) → hidden → Linear(1, 1) → out: the notes' two-neuron network."""
    l1 = cr.Linear(1, 1, dtype=F64)
    l2 = cr.Linear(1, 1, dtype=F64)
    l1.W.data[:] = w1
    l1.W0.data[:] = w01
    l2.W.data[:] = w2
    l2.W0.data[:] = w02
    return cr.Sequential(l1, hidden(), l2, out())


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
        assert set(layer) == {"path", "shapes", "norms", "values", "dAdZ", "flag", "r"}
        assert set(layer["norms"]) == set(KEYS) == set(layer["shapes"])
        assert set(layer["values"]) == {*KEYS, "dAdZ"}
        assert all(shape == (1, 1) for shape in layer["shapes"].values())
        for key, value in want[layer["path"]].items():
            assert layer["norms"][key] == pytest.approx(abs(value), rel=1e-12, abs=1e-15), key
            # The signed value, not only its size: z² < 0 shows as z² < 0.
            assert layer["values"][key].shape == (1, 1)
            assert layer["values"][key].item() == pytest.approx(value, rel=1e-12, abs=1e-15), key
    hidden_layer = report.layers[1]
    assert hidden_layer["values"]["dAdZ"].item() == pytest.approx(df(z1), rel=1e-12)
    assert hidden_layer["dAdZ"]["mean"] == pytest.approx(df(z1), rel=1e-12)
    assert hidden_layer["dAdZ"]["zero_fraction"] == (df(z1) == 0)
    assert report.layers[0]["dAdZ"] == {"mean": 1.0, "zero_fraction": 0.0}  # Identity


def test_dead_relu_shows_zero_derivative():
    # z¹ = 1·(−2) + 0 < 0: the ReLU is dead, so no gradient reaches layer 1: ∂L/∂z¹ = 0
    # while ∂L/∂z² = 2(a² − y) = −1, so r = 0 and layer 1 is flagged vanishing. Its output
    # a¹ = 0 also makes ∂L/∂W² = a¹ ∂L/∂z² = 0.
    report = explain(two_neuron(1.0, 0.0, 1.0, 0.5, cr.ReLU), cr.SquareLoss(), [[-2.0]], [1.0])
    last, first = report.layers
    assert first["dAdZ"] == {"mean": 0.0, "zero_fraction": 1.0}
    assert first["norms"]["dLdW"] == 0.0 == last["norms"]["dLdW"]
    assert last["values"]["dLdW0"].item() == pytest.approx(2 * (0.5 - 1.0))  # 2(a² − y)
    assert first["r"] == 0.0 and first["flag"] == "vanishing" and last["flag"] is None


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
        ratios = [report.ratio(layer, "dLdZ") for layer in report.layers]
        assert 0.1 < min(ratios) and max(ratios) < 10
    else:
        flag = next(iter(flags))
        assert flag in str(report)
        flagged = [layer["flag"] for layer in report.layers]
        first = flagged.index(flag)  # once flagged, every layer closer to the input is too
        assert flagged[first:] == [flag] * (10 - first)


@pytest.mark.parametrize("seed", [0, 1])
def test_exploding_is_flagged_where_the_chain_of_dLdZ_grows(seed):
    # He's weights twice too large: each layer multiplies ∂L/∂Z by about 2 (‖W‖ doubles the
    # 1 that He's variance keeps), so over 9 links r = ‖∂L/∂Z¹‖ / ‖∂L/∂Zᴸ‖ passes 1e2.
    X, y = data(seed)
    report = explain(stack(cr.ReLU, "he", scale=2.0, seed=10 * seed), cr.NLL(), X, y)
    r = [layer["r"] for layer in report.layers]
    assert r[0] == 1.0 and all(b > a for a, b in zip(r, r[1:]))
    assert r[-1] > 1e2 and report.layers[-1]["flag"] == "exploding"
    flagged = [layer["flag"] for layer in report.layers]
    first = flagged.index("exploding")
    assert flagged[:first] == [None] * first and flagged[first:] == ["exploding"] * (10 - first)
    assert "!! exploding gradient: r = ‖∂L/∂Z¹‖" in str(report)


def test_flags_measure_the_chain_not_one_layers_weight_gradient():
    # A ReLU stack without offsets is homogeneous: shrinking layer 1's weights by 1e-5 makes
    # ‖∂L/∂W¹‖ 1e5 times the last layer's (the A's after layer 1 shrink, ∂L/∂Z does not),
    # but the chain of ∂L/∂Z from layer L back to layer 1 is unchanged: no flag.
    X, y = data()
    model = stack(cr.ReLU, "he")
    model.modules[0].W.data *= 1e-5
    report = explain(model, cr.NLL(), X, y)
    assert report.ratio(report.layers[-1]) > 1e3  # ‖∂L/∂W¹‖ / ‖∂L/∂Wᴸ‖
    assert [layer["flag"] for layer in report.layers] == [None] * 10


def test_thresholds_are_keyword_arguments():
    X, y = data()
    model = stack(cr.ReLU, "he")
    r = explain(model, cr.NLL(), X, y).layers[-1]["r"]
    assert 0.1 < r < 10
    for below, above, flag in [(r / 2, 2 * r, None), (2 * r, 4 * r, "vanishing"),
                               (r / 4, r / 2, "exploding")]:
        report = explain(model, cr.NLL(), X, y, vanishing_below=below, exploding_above=above)
        assert report.layers[-1]["flag"] == flag
        assert f"vanishing where r < {below:g}, exploding where r > {above:g}" in str(report)


@pytest.mark.parametrize("kwargs, match", [
    ({"layout": "columns"}, r"layout in \['rows', 'notes'\], got 'columns'"),
    ({"vanishing_below": 0}, "vanishing_below to be a positive finite number, got 0"),
    ({"exploding_above": float("inf")}, "exploding_above to be a positive finite number"),
    ({"vanishing_below": 10, "exploding_above": 5}, "vanishing_below < exploding_above"),
])
def test_bad_options_are_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        explain(stack(cr.ReLU, "he", depth=2), cr.NLL(), *data(), **kwargs)


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "vanishing_gradients.py"


def test_flags_fire_on_the_vanishing_gradients_example():
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([sys.executable, str(EXAMPLE), "--quick"], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    rows = {line[:24].strip(): line[24:].split() for line in done.stdout.splitlines()}
    assert "vanishing" in rows["sigmoid, gaussian 1/m"]
    assert "exploding" in rows["relu, he, W × 2"]
    assert float(rows["relu, he, W × 2"][0]) > 1e2  # r: ∂L/∂Z grows > 100× back to layer 1
    for name in ("tanh, xavier", "relu, he 2/m"):
        assert "—" in rows[name], name


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


# -- values: signed copies, in either layout ---------------------------------------------------


def test_values_are_the_models_own_arrays_signed_and_copied():
    model = MODELS["mlp softmax"]()
    X, y = _batch()
    report = explain(model, cr.NLLM(), X, y)
    twin, loss = copy.deepcopy(model), cr.NLLM()
    A = twin(X)
    loss(A, y)
    twin.backward_from(loss)
    last, first = report.layers
    np.testing.assert_allclose(last["values"]["A"], A, rtol=1e-6)
    np.testing.assert_allclose(last["values"]["dLdZ"], (A - np.eye(3)[y]) / len(X), rtol=1e-5,
                               atol=1e-8)
    np.testing.assert_array_equal(first["values"]["A_prev"], X)
    for layer, linear in [(last, twin.modules[2]), (first, twin.modules[0])]:
        np.testing.assert_allclose(layer["values"]["dLdW"], linear.W.grad, rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(layer["values"]["dLdW0"], linear.W0.grad, rtol=1e-5,
                                   atol=1e-8)
    assert (first["values"]["Z"] < 0).any()  # signed, not magnitudes
    Z = first["values"]["Z"]
    np.testing.assert_array_equal(first["values"]["dAdZ"], (Z >= 0).astype(Z.dtype))  # ReLU′
    assert last["values"]["dAdZ"] is None  # Softmax: no diagonal
    # The chain: layer 1's dLdA is layer 2's dLdA_prev; copies, so no aliasing with the model.
    np.testing.assert_array_equal(first["values"]["dLdA"], last["values"]["dLdA_prev"])
    json.dumps(report.to_dict())


def test_notes_layout_holds_and_prints_the_column_form():
    model = MODELS["mlp softmax"]()
    X, y = _batch()
    rows = explain(model, cr.NLLM(), X, y)
    notes = explain(model, cr.NLLM(), X, y, layout="notes")
    assert notes.layout == "notes"
    for r, c in zip(rows.layers, notes.layers):
        for key in KEYS:
            want = r["values"][key] if key == "dLdW" else r["values"][key].T
            np.testing.assert_array_equal(c["values"][key], want)
            assert c["shapes"][key] == want.shape and c["norms"][key] == r["norms"][key]
        assert c["flag"] == r["flag"] and c["r"] == r["r"]
    last = notes.layers[0]
    assert last["shapes"]["Z"] == (3, 12) and last["shapes"]["dLdW0"] == (3, 1)  # (n, K)
    assert last["shapes"]["dLdW"] == (7, 3)  # W is (m, n) in both layouts
    # Z = Wᵀ A + W0, one column per sample: check it from the values themselves.
    W = model.modules[2].W.data
    np.testing.assert_allclose(last["values"]["Z"], W.T @ last["values"]["A_prev"]
                               + model.modules[2].W0.data.T, rtol=1e-5, atol=1e-6)
    text = str(notes)
    for piece in ["Z² = W²ᵀ A¹ + W0²", "∂L/∂W² = A¹ (∂L/∂Z²)ᵀ", "∂L/∂A¹ = W² ∂L/∂Z²",
                  "∂L/∂Z² = ∂A²/∂Z² · ∂L/∂A²", "(3, 12)", "one column per sample"]:
        assert piece in text, piece


def test_small_networks_print_their_signed_values():
    # The two-neuron network of examples/two_neuron_backprop.py: z² = −0.5188, ∂L/∂W² = −0.1992.
    model = two_neuron(0.5, -0.25, -1.5, 0.5, cr.Sigmoid, out=cr.Sigmoid)
    report = explain(model, cr.SquareLoss(), [[2.0]], [[1.0]])
    lines = str(report).splitlines()
    z2 = next(line for line in lines if line.lstrip().startswith("Z² = "))
    dw2 = next(line for line in lines if line.lstrip().startswith("∂L/∂W² = "))
    assert z2.endswith("value -0.5188") and dw2.endswith("value -0.1992")
    assert "f′(z): value 0.2339" in str(report)
    # A big network prints norms only.
    X, y = _batch()
    text = str(explain(MODELS["mlp softmax"](), cr.NLLM(), X, y))
    z1 = next(line for line in text.splitlines() if line.lstrip().startswith("Z¹ = "))
    assert "[[" not in z1 and z1.split("‖·‖ = ")[1].strip() == f"{float(z1.split()[-1]):.4g}"


def test_the_seeing_page_shows_the_real_output(capsys):
    # docs/seeing.md: each ```python block of the explain section followed by a ```text block
    # must print exactly that text.
    import re
    page = (Path(__file__).resolve().parent.parent / "docs" / "seeing.md").read_text("utf-8")
    section = page[:page.index("## Plots")]
    pairs = re.findall(r"```python\n(.*?)```\s*```text\n(.*?)```", section, flags=re.S)
    assert len(pairs) >= 4
    namespace: dict = {}
    for code, text in pairs:
        exec(compile(code, "docs/seeing.md", "exec"), namespace)  # noqa: S102
        assert capsys.readouterr().out.rstrip("\n") == text.rstrip("\n"), code


# -- nested Sequentials, as chainrule.export.from_torch makes them -------------------------------


def _nested():
    """Two deep: ((Linear, ReLU), Linear, Tanh), Linear, Softmax."""
    inner = cr.Sequential(cr.Linear(5, 7, rng=0), cr.ReLU())
    return cr.Sequential(cr.Sequential(inner, cr.Linear(7, 6, rng=2), cr.Tanh()),
                         cr.Linear(6, 3, rng=1), cr.Softmax())


def test_nested_sequentials_are_walked_in_order():
    # Regression: only the top level's modules were looked at, so every Linear inside an
    # inner Sequential was skipped (the report had modules.1 alone).
    X, y = _batch()
    model = _nested()
    report = explain(model, cr.NLLM(), X, y)
    assert [layer["path"] for layer in report.layers] == [
        "modules.1", "modules.0.modules.1", "modules.0.modules.0.modules.0"]
    assert report.names == ["Linear(6, 3) → Softmax()", "Linear(7, 6) → Tanh()",
                            "Linear(5, 7) → ReLU()"]
    # The same numbers as the flat model, and the nested model's own gradients.
    flat = cr.Sequential(cr.Linear(5, 7, rng=0), cr.ReLU(), cr.Linear(7, 6, rng=2), cr.Tanh(),
                         cr.Linear(6, 3, rng=1), cr.Softmax())
    for mine, theirs in zip(report.layers, explain(flat, cr.NLLM(), X, y).layers, strict=True):
        assert mine["norms"] == pytest.approx(theirs["norms"], rel=1e-6)
        assert mine["flag"] == theirs["flag"]
    loss = cr.NLLM()
    loss(model(X), y)
    model.backward(loss.backward())  # the outer last module is Softmax: explain fuses, exactly
    grads = dict(model.named_parameters())
    for layer in report.layers:
        np.testing.assert_allclose(layer["values"]["dLdW"], grads[layer["path"] + ".W"].grad,
                                   rtol=1e-4, atol=1e-7)
    assert "layer 1 (modules.0.modules.0.modules.0: Linear(5, 7) → ReLU())" in str(report)


def test_a_model_from_torch_is_explained_layer_by_layer():
    torch = pytest.importorskip("torch")
    from chainrule.export import from_torch
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU()),
                              torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh()),
                              torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1))
    X, y = _batch()
    report = explain(from_torch(net), cr.NLLM(), X, y)
    assert [layer["path"] for layer in report.layers] == [
        "modules.2", "modules.1.modules.0", "modules.0.modules.0"]


# -- a last layer whose gradient is exactly zero, and strict JSON ----------------------------------


def _flat_at_target():
    """A model whose output is exactly 0 (last W, W0 zero): with Y = 0, ∂L/∂Zᴸ = 0."""
    model = cr.Sequential(cr.Linear(5, 4, rng=0, dtype=F64), cr.Tanh(),
                          cr.Linear(4, 1, rng=1, dtype=F64))
    model.modules[2].W.data[:] = 0.0
    return model


def test_a_zero_last_gradient_is_said_and_r_is_undefined():
    # Regression: r was NaN for every layer, nothing was said, and to_dict held NaN.
    X, _ = _batch()
    report = explain(_flat_at_target(), cr.SquareLoss(), X, np.zeros((len(X), 1)))
    assert report.zero_gradient
    assert all(np.isnan(layer["r"]) and layer["flag"] is None for layer in report.layers)
    text = str(report)
    assert ("‖∂L/∂Zᴸ‖ = 0: the last layer's gradient is exactly zero on this batch" in text
            and "no gradient flows back to any layer; r is undefined" in text)
    summary = text.splitlines()[-2:]
    assert all("undefined" in row and "nan" not in row for row in summary), summary
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["zero_gradient"] is True
    assert [layer["r"] for layer in data["layers"]] == [None, None]
    # A usual batch: r defined, zero_gradient false, to_dict as before.
    report = explain(_flat_at_target(), cr.SquareLoss(), X, np.ones((len(X), 1)))
    assert not report.zero_gradient and report.layers[0]["r"] == 1.0
    assert report.to_dict()["layers"][0]["r"] == 1.0 and "undefined" not in str(report)


def test_to_dict_is_strict_json_with_infinite_values():
    # A float32 Z that overflows to inf: its norm and values are inf; to_dict says None.
    model = cr.Sequential(cr.Linear(5, 2, rng=0), cr.Tanh(), cr.Linear(2, 1, rng=1))
    model.modules[0].W.data[:] = 1e30
    X = np.full((3, 5), 1e10)
    with np.errstate(over="ignore", invalid="ignore"):
        report = explain(model, cr.SquareLoss(), X, np.zeros((3, 1)))
    assert np.isinf(report.layers[1]["norms"]["Z"])
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    first = data["layers"][1]
    assert first["norms"]["Z"] is None and first["values"]["Z"][0][0] is None
    assert first["values"]["A_prev"][0][0] == 1e10 and first["shapes"]["Z"] == [3, 2]
