"""The notes' formulas (MIT 6.390, chapter 6) worked by hand, with the arithmetic in comments.

The notes work these symbolically; the numbers are ours, chosen so that every step can be
checked on paper.

* A two-neuron network, one input x, worked through the chain rule of the notes'
  equations (6.10)–(6.16):
      neuron 1: z1 = w1 x + w01,  a1 = f1(z1);   neuron 2: z2 = w2 a1 + w02,  a2 = f2(z2)
      loss L(a2, y)
      dL/dw2  = dL/da2 · f2'(z2) · a1              dL/dw02 = dL/da2 · f2'(z2)
      dL/dw1  = dL/da2 · f2'(z2) · w2 · f1'(z1) · x
      dL/dw01 = dL/da2 · f2'(z2) · w2 · f1'(z1)
* The derivative catalogue (Notation 13–14): f'(z) of every activation and dL/da of every
  loss at a few points chosen by hand, against ``backward``.
* The matrix form of back-propagation (Notation 17): the shapes of Z, A, dL/dZ, dL/dW,
  dL/dW0 and dL/dA_prev in a 3-layer network, and that each is the formula it should be.

In chainrule, rows are samples and W is (inputs, outputs): one neuron with one input is a
``Linear(1, 1)`` whose W is [[w]] and W0 is [[w0]].
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule as cr


def _neuron(w: float, w0: float) -> cr.Linear:
    layer = cr.Linear(1, 1, dtype=np.float64)
    layer.W.data[...] = w
    layer.W0.data[...] = w0
    return layer


# -- the two-neuron network ---------------------------------------------------------------------


def test_two_neurons_relu_then_sigmoid_with_square_loss():
    # x = 2, y = 1; neuron 1: w1 = 0.5, w01 = −0.5, f1 = ReLU; neuron 2: w2 = −1.5, w02 = 1,
    # f2 = sigmoid; L = (a2 − y)².
    #
    # Forward:
    #   z1 = 0.5·2 − 0.5 = 0.5                  a1 = ReLU(0.5) = 0.5
    #   z2 = −1.5·0.5 + 1 = 0.25                a2 = σ(0.25) = 1/(1 + e^−0.25) = 0.5621765008857981
    #   L  = (0.5621765008857981 − 1)² = (−0.4378234991142019)² = 0.19168941637660358
    # Backward (the chain rule, last neuron first):
    #   dL/da2  = 2(a2 − y)            = −0.8756469982284039
    #   f2'(z2) = a2(1 − a2)           = 0.5621765008857981 · 0.4378234991142019
    #                                  = 0.24613408273759835
    #   dL/dz2  = dL/da2 · f2'(z2)     = −0.21552657071087958
    #   dL/dw2  = dL/dz2 · a1          = −0.21552657071087958 · 0.5 = −0.10776328535543979
    #   dL/dw02 = dL/dz2               = −0.21552657071087958
    #   dL/da1  = dL/dz2 · w2          = −0.21552657071087958 · −1.5 = 0.3232898560663194
    #   f1'(z1) = step(0.5) = 1, so dL/dz1 = 0.3232898560663194
    #   dL/dw1  = dL/dz1 · x           = 0.6465797121326388
    #   dL/dw01 = dL/dz1               = 0.3232898560663194
    #   dL/dx   = dL/dz1 · w1          = 0.1616449280331597
    model = cr.Sequential(_neuron(0.5, -0.5), cr.ReLU(), _neuron(-1.5, 1.0), cr.Sigmoid())
    loss = cr.SquareLoss()
    value = loss(model(np.array([[2.0]])), np.array([1.0]))
    dLdx = model.backward_from(loss)

    assert model.modules[1].mask.all()  # z1 ≥ 0: the ReLU passes the gradient
    assert value == pytest.approx(0.19168941637660358, rel=1e-14)
    first, second = model.modules[0], model.modules[2]
    assert second.W.grad[0, 0] == pytest.approx(-0.10776328535543979, rel=1e-14)
    assert second.W0.grad[0, 0] == pytest.approx(-0.21552657071087958, rel=1e-14)
    assert first.W.grad[0, 0] == pytest.approx(0.6465797121326388, rel=1e-14)
    assert first.W0.grad[0, 0] == pytest.approx(0.3232898560663194, rel=1e-14)
    assert dLdx[0, 0] == pytest.approx(0.1616449280331597, rel=1e-14)


def test_two_neurons_with_the_relu_switched_off():
    # The same network with x = −2: z1 = 0.5·(−2) − 0.5 = −1.5 < 0, so a1 = 0 and f1'(z1) = 0.
    #   z2 = −1.5·0 + 1 = 1,  a2 = σ(1) = 0.7310585786300049
    #   dL/dz2 = 2(a2 − 1) · a2(1 − a2) = −0.5378828427399902 · 0.19661193324148185
    #          = −0.10575418556853343
    #   dL/dw2 = dL/dz2 · a1 = 0 (a1 = 0);  dL/dw02 = dL/dz2
    #   dL/dw1 = dL/dw01 = dL/dx = 0: nothing flows back through a switched-off ReLU.
    model = cr.Sequential(_neuron(0.5, -0.5), cr.ReLU(), _neuron(-1.5, 1.0), cr.Sigmoid())
    loss = cr.SquareLoss()
    loss(model(np.array([[-2.0]])), np.array([1.0]))
    dLdx = model.backward_from(loss)
    a2 = 1 / (1 + math.exp(-1.0))
    assert 2 * (a2 - 1) * a2 * (1 - a2) == pytest.approx(-0.10575418556853343, rel=1e-15)
    assert model.modules[2].W0.grad[0, 0] == pytest.approx(-0.10575418556853343, rel=1e-14)
    assert model.modules[2].W.grad[0, 0] == 0.0
    assert model.modules[0].W.grad[0, 0] == model.modules[0].W0.grad[0, 0] == 0.0
    assert dLdx[0, 0] == 0.0


def test_two_sigmoid_neurons_with_nll_use_the_fused_output_gradient():
    # x = 1, y = 0; w1 = 2, w01 = −1, f1 = σ; w2 = 3, w02 = −1, f2 = σ; L = NLL.
    #   z1 = 2·1 − 1 = 1                 a1 = σ(1) = 0.7310585786300049
    #   z2 = 3·0.7310585786300049 − 1 = 1.1931757358900148
    #   a2 = σ(1.1931757358900148) = 0.7673085608637868
    #   L  = −log(1 − a2) = −log 0.2326914391362132 = 1.4580419986234598
    # For a sigmoid output with NLL, dL/dz2 = a2 − y (the notes' Concept 19):
    #   dL/dz2 = 0.7673085608637868
    #   dL/dw2 = dL/dz2 · a1 = 0.7673085608637868 · 0.7310585786300049 = 0.5609475058757146
    #   f1'(z1) = a1(1 − a1) = 0.19661193324148185
    #   dL/dz1 = dL/dz2 · w2 · f1'(z1) = 0.7673085608637868 · 3 · 0.19661193324148185
    #          = 0.4525860586325051
    #   dL/dw1 = dL/dz1 · x = 0.4525860586325051;  dL/dx = dL/dz1 · w1 = 0.9051721172650102
    model = cr.Sequential(_neuron(2.0, -1.0), cr.Sigmoid(), _neuron(3.0, -1.0), cr.Sigmoid())
    loss = cr.NLL()
    assert loss(model(np.array([[1.0]])), [0]) == pytest.approx(1.4580419986234598, rel=1e-13)
    dLdx = model.backward_from(loss)
    assert model.modules[2].W0.grad[0, 0] == pytest.approx(0.7673085608637868, rel=1e-14)
    assert model.modules[2].W.grad[0, 0] == pytest.approx(0.5609475058757146, rel=1e-14)
    assert model.modules[0].W.grad[0, 0] == pytest.approx(0.4525860586325051, rel=1e-14)
    assert dLdx[0, 0] == pytest.approx(0.9051721172650102, rel=1e-14)


def test_two_data_points_mean_reduction_averages_the_gradients():
    # chainrule's default J = (1/n) Σᵢ L(a2⁽ⁱ⁾, y⁽ⁱ⁾): with the two points above (x = 2 and
    # x = −2, y = 1), dJ/dw1 = (0.6465797121326388 + 0)/2 = 0.3232898560663194. The notes'
    # batch gradient is the sum (Definition 21): reduction="sum" gives 0.6465797121326388.
    for reduction, expected in [("mean", 0.3232898560663194), ("sum", 0.6465797121326388)]:
        model = cr.Sequential(_neuron(0.5, -0.5), cr.ReLU(), _neuron(-1.5, 1.0), cr.Sigmoid())
        loss = cr.SquareLoss(reduction=reduction)
        loss(model(np.array([[2.0], [-2.0]])), np.array([1.0, 1.0]))
        model.backward_from(loss)
        assert model.modules[0].W.grad[0, 0] == pytest.approx(expected, rel=1e-14)


def test_batch_normalization_divides_by_the_1_over_K_standard_deviation():
    # Key Equation 37 on the notes' data [1, 2, 100, 3, 4, 5] (one unit, K = 6 rows):
    #   μ = 115/6 = 19.1666…;  σ² = (1/K) Σ (z − μ)² = 1329.4722…, σ = 36.4619…
    #   (1 − μ)/σ = −18.1666…/36.4619… = −0.50222, …, (100 − μ)/σ = 2.23464
    # The notes' (6.65) prints −0.458, …, 2.04: those divide by the n − 1 standard deviation
    # (39.9419…), not by Key Equation 37's σ.
    Z = np.array([[1.0], [2.0], [100.0], [3.0], [4.0], [5.0]])
    expected = [-0.50222, -0.47457, 2.23464, -0.44693, -0.41928, -0.39164]
    for eps_inside in ("variance", "std"):
        bn = cr.BatchNorm(1, eps=1e-12, eps_inside=eps_inside, dtype=np.float64)
        np.testing.assert_allclose(bn(Z).ravel(), expected, atol=5e-6)
    notes_6_65 = [-0.458, -0.433, 2.04, -0.408, -0.383, -0.358]
    assert np.abs(bn(Z).ravel() - notes_6_65).max() > 0.03


@pytest.mark.parametrize("patience", [0, 1, 3])
def test_early_stopping_runs_best_epoch_plus_one_plus_max_patience_1(patience):
    # With η = 0 the validation loss never changes: epoch 0 improves on +inf (k = 0), and
    # no later epoch improves. The first epoch without improvement is epoch 1; patience=0
    # stops there, like patience=1 (the notes' Definition 30: stop once the loss has stopped
    # decreasing). So fit runs k + 1 + max(patience, 1) epochs.
    X = np.linspace(-1, 1, 20).reshape(-1, 1)
    model = cr.Sequential(_neuron(0.5, 0.0), cr.Identity())
    history = cr.fit(model, cr.SquareLoss(), X, 2 * X, optimizer=cr.SGD(lr=0.0), epochs=50,
                     validation_split=0.25, early_stopping=cr.EarlyStopping(patience=patience),
                     rng=0, progress=False)
    assert history.stopped_early and history.best_epoch == 0
    assert history.epochs == 0 + 1 + max(patience, 1)


# -- the derivative catalogue (Notation 13 and 14) ------------------------------------------------

Z_POINTS = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])

# f'(z) at z = −2, −0.5, 0, 0.5, 2, worked by hand:
DERIVATIVES = {
    # step: flat on both sides, derivative 0 everywhere (no gradient flows).
    "Step": (cr.Step(), [0, 0, 0, 0, 0]),
    # ReLU: f' = step(z), 1 where z ≥ 0 (so 1 at z = 0, by the API's convention).
    "ReLU": (cr.ReLU(), [0, 0, 1, 1, 1]),
    # LeakyReLU(0.1): 0.1 for z < 0, 1 for z ≥ 0.
    "LeakyReLU": (cr.LeakyReLU(0.1), [0.1, 0.1, 1, 1, 1]),
    # sigmoid: σ(z)(1 − σ(z)); σ(0) = 0.5 → 0.25; σ(0.5) = 0.6224593312018546 → 0.2350037122;
    # σ(2) = 0.8807970779778823 → 0.8807970779778823 · 0.1192029220221177 = 0.10499358540350662;
    # symmetric: σ'(−z) = σ'(z).
    "Sigmoid": (cr.Sigmoid(), [0.10499358540350662, 0.2350037122015945, 0.25,
                               0.2350037122015945, 0.10499358540350662]),
    # tanh: 1 − tanh(z)²; tanh(0.5) = 0.46211715726000974 → 1 − 0.21355226... = 0.7864477329659274;
    # tanh(2) = 0.9640275800758169 → 1 − 0.92934917... = 0.07065082485316443; even in z.
    "Tanh": (cr.Tanh(), [0.07065082485316443, 0.7864477329659274, 1.0, 0.7864477329659274,
                         0.07065082485316443]),
    "Identity": (cr.Identity(), [1, 1, 1, 1, 1]),
}


@pytest.mark.parametrize("name", list(DERIVATIVES))
def test_activation_derivatives_at_hand_chosen_points(name):
    f, expected = DERIVATIVES[name]
    f(Z_POINTS)
    # backward(ones) = 1 · f'(z) for an elementwise f.
    np.testing.assert_allclose(f.backward(np.ones_like(Z_POINTS)), [expected], rtol=1e-14)


def test_activation_values_at_hand_chosen_points():
    np.testing.assert_array_equal(cr.Step()(Z_POINTS), [[0, 0, 1, 1, 1]])
    np.testing.assert_array_equal(cr.ReLU()(Z_POINTS), [[0, 0, 0, 0.5, 2]])
    np.testing.assert_allclose(cr.LeakyReLU(0.1)(Z_POINTS), [[-0.2, -0.05, 0, 0.5, 2]])
    np.testing.assert_allclose(cr.Sigmoid()(Z_POINTS)[0, [2, 4]], [0.5, 0.8807970779778823],
                               rtol=1e-15)
    np.testing.assert_allclose(cr.Tanh()(Z_POINTS)[0, 3], 0.46211715726000974, rtol=1e-15)


def test_softmax_jacobian_by_hand():
    # z = (0, log 3): e^z = (1, 3), a = (1/4, 3/4).
    # ∂aᵢ/∂zⱼ = aᵢ(δᵢⱼ − aⱼ):  [[ 1/4·3/4, −1/4·3/4],   = [[ 0.1875, −0.1875],
    #                           [−3/4·1/4,  3/4·1/4]]      [−0.1875,  0.1875]]
    # backward(g) = Jᵀ g, so backward(e₀) is the first column, backward(ones) = 0 (a row's
    # entries always sum to 1, so adding the same amount to every dL/daⱼ changes nothing).
    f = cr.Softmax()
    np.testing.assert_allclose(f(np.array([[0.0, math.log(3.0)]])), [[0.25, 0.75]], rtol=1e-15)
    np.testing.assert_allclose(f.backward(np.array([[1.0, 0.0]])), [[0.1875, -0.1875]],
                               rtol=1e-14)
    np.testing.assert_allclose(f.backward(np.array([[0.0, 1.0]])), [[-0.1875, 0.1875]],
                               rtol=1e-14)
    np.testing.assert_allclose(f.backward(np.ones((1, 2))), [[0.0, 0.0]], atol=1e-16)


# dL/da at one sample (so "mean" divides by n = 1), worked by hand:
LOSS_DERIVATIVES = [
    # square: L = (a − y)², dL/da = 2(a − y): a = 3, y = 1 → 4; a = 0.5, y = 2 → −3.
    (cr.SquareLoss(), [[3.0, 0.5]], [[1.0, 2.0]], [[4.0, -3.0]]),
    # absolute: dL/da = sign(a − y): +1, −1, and 0 where a = y.
    (cr.AbsoluteLoss(), [[3.0, 0.5, 2.0]], [[1.0, 2.0, 2.0]], [[1.0, -1.0, 0.0]]),
    # NLL: dL/da = (a − y)/(a(1 − a)): a = 0.8, y = 1 → −0.2/0.16 = −1.25.
    (cr.NLL(), [[0.8]], [1], [[-1.25]]),
    # NLL with y = 0: 0.8/0.16 = 5.
    (cr.NLL(), [[0.8]], [0], [[5.0]]),
    # NLLM: dL/daⱼ = −yⱼ/aⱼ: a = (0.2, 0.5, 0.3), y = class 1 → (0, −1/0.5, 0) = (0, −2, 0).
    (cr.NLLM(), [[0.2, 0.5, 0.3]], [1], [[0.0, -2.0, 0.0]]),
]


@pytest.mark.parametrize("loss, A, Y, expected", LOSS_DERIVATIVES,
                         ids=["square", "absolute", "nll-y1", "nll-y0", "nllm"])
def test_loss_derivatives_at_hand_chosen_points(loss, A, Y, expected):
    loss(np.array(A), np.array(Y))
    np.testing.assert_allclose(loss.backward(), expected, rtol=1e-14)


# -- the matrix form (Notation 17) --------------------------------------------------------------


def test_matrix_form_shapes_and_formulas_of_a_three_layer_network():
    # Batch n = 7, layers 5 → 4 → 3 → 2 (ReLU, tanh, softmax), NLLM loss. In row form:
    #   Zˡ = Aˡ⁻¹ Wˡ + W0ˡ       (n, nˡ)        Aˡ = fˡ(Zˡ)            (n, nˡ)
    #   dL/dWˡ  = Aˡ⁻¹ᵀ dL/dZˡ   (mˡ, nˡ)       dL/dW0ˡ = Σ_rows dL/dZˡ (1, nˡ)
    #   dL/dAˡ⁻¹ = dL/dZˡ Wˡᵀ    (n, mˡ)        dL/dZˡ⁻¹ = dL/dAˡ⁻¹ ∘ fˡ⁻¹'(Zˡ⁻¹)
    n, sizes = 7, [5, 4, 3, 2]
    rng = np.random.default_rng(0)
    linears = [cr.Linear(m, k, rng=i, dtype=np.float64)
               for i, (m, k) in enumerate(zip(sizes, sizes[1:]))]
    activations = [cr.ReLU(), cr.Tanh(), cr.Softmax()]
    X = rng.normal(size=(n, sizes[0]))
    y = rng.integers(0, 2, n)

    # Forward, layer by layer, keeping Z and A as the notes name them.
    A = [X]
    Z = [None]
    for linear, f in zip(linears, activations, strict=True):
        Z.append(linear(A[-1]))
        A.append(f(Z[-1]))
    for layer in (1, 2, 3):
        assert Z[layer].shape == A[layer].shape == (n, sizes[layer])

    loss = cr.NLLM()
    loss(A[3], y)
    dLdZ = (A[3] - np.eye(2)[y]) / n  # softmax + NLLM: dL/dZᴸ = (Aᴸ − Y)/n
    for layer in (3, 2, 1):
        linear = linears[layer - 1]
        m_l, n_l = sizes[layer - 1], sizes[layer]
        assert dLdZ.shape == (n, n_l)
        dLdA_prev = linear.backward(dLdZ)
        assert linear.W.grad.shape == (m_l, n_l) and linear.W0.grad.shape == (1, n_l)
        assert dLdA_prev.shape == (n, m_l) == A[layer - 1].shape
        np.testing.assert_allclose(linear.W.grad, A[layer - 1].T @ dLdZ, rtol=1e-13)
        np.testing.assert_allclose(linear.W0.grad, dLdZ.sum(axis=0, keepdims=True), rtol=1e-13)
        np.testing.assert_allclose(dLdA_prev, dLdZ @ linear.W.data.T, rtol=1e-13)
        if layer > 1:
            dLdZ = activations[layer - 2].backward(dLdA_prev)  # times f'(Zˡ⁻¹)
    # The same numbers as Sequential's own backward pass:
    model = cr.Sequential(*[m for pair in zip(linears, activations, strict=True) for m in pair])
    grads = [p.grad.copy() for p in model.parameters()]
    loss(model(X), y)
    model.backward_from(loss)
    for g, p in zip(grads, model.parameters(), strict=True):
        np.testing.assert_allclose(g, p.grad, rtol=1e-13)
