"""Losses: values worked by hand, shapes and dtypes of dL/dA, saturation, and every error.

Driven by ``cases.LOSSES`` (one row per loss and target form). Gradients against finite
differences are in test_gradients.py, against PyTorch in test_torch_core.py.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import chainrule as cr
from cases import LOSS_IDS, LOSSES, REDUCTIONS
from chainrule.errors import InputError

DTYPES = [np.float32, np.float64]

# -- values and gradients worked by hand ---------------------------------------------------------

# (loss class, A, Y, value summed over samples, dL/dA for reduction="sum")
BY_HAND = [
    # SquareLoss, per sample Σⱼ (aⱼ − yⱼ)²: row 1 (1−0)² + (2−2)² = 1, row 2 (3−1)² + (4−1)² = 13
    # → sum 14; dL/dA = 2 (A − Y).
    (cr.SquareLoss, [[1.0, 2.0], [3.0, 4.0]], [[0, 2], [1, 1]], 14.0, [[2, 0], [4, 6]]),
    # AbsoluteLoss, per sample Σⱼ |aⱼ − yⱼ|: 1 + 0 = 1, 2 + 3 = 5 → 6; dL/dA = sign(A − Y).
    (cr.AbsoluteLoss, [[1.0, 2.0], [3.0, 4.0]], [[0, 2], [1, 1]], 6.0, [[1, 0], [1, 1]]),
    # NLL: −log 0.8 − log(1 − 0.25) = −log(0.8 · 0.75) = −log 0.6 = 0.5108256237659907;
    # dL/da = (a − y)/(a(1 − a)): (0.8 − 1)/0.16 = −1.25 and 0.25/0.1875 = 4/3.
    (cr.NLL, [[0.8], [0.25]], [1, 0], 0.5108256237659907, [[-1.25], [4 / 3]]),
    # NLLM: −log 0.5 − log 0.8 = −log 0.4 = 0.916290731874155; dL/daⱼ = −yⱼ/aⱼ: −2, −1.25.
    (cr.NLLM, [[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]], [1, 2], 0.916290731874155,
     [[0, -2, 0], [0, 0, -1.25]]),
    (cr.NLLM, [[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]], [[0, 1, 0], [0, 0, 1]], 0.916290731874155,
     [[0, -2, 0], [0, 0, -1.25]]),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("cls, A, Y, total, grad", BY_HAND,
                         ids=["square", "absolute", "nll", "nllm-labels", "nllm-onehot"])
def test_values_and_gradients_by_hand(cls, A, Y, total, grad, reduction):
    loss = cls(reduction=reduction)
    A = np.array(A)
    n = len(A)  # "mean" divides the sum over samples by n = 2
    scale = 1 / n if reduction == "mean" else 1.0
    value = loss(A, Y)
    assert isinstance(value, float)
    assert value == pytest.approx(total * scale, rel=1e-14)
    np.testing.assert_allclose(loss.backward(), np.array(grad) * scale, rtol=1e-14)


@pytest.mark.parametrize("case", LOSSES, ids=LOSS_IDS)
def test_mean_is_sum_over_n(case):
    A, Y = case.data(n=7)
    assert case.make("mean")(A, Y) == pytest.approx(case.make("sum")(A, Y) / 7, rel=1e-14)
    mean, total = case.make("mean"), case.make("sum")
    mean(A, Y)
    total(A, Y)
    np.testing.assert_allclose(mean.backward(), total.backward() / 7, rtol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LOSSES, ids=LOSS_IDS)
def test_backward_has_the_shape_and_dtype_of_A(case, dtype):
    A, Y = case.data(n=5, dtype=dtype)
    for targets in (Y, np.asarray(Y, np.float64), np.asarray(Y, np.float32)):
        loss = case.make()
        value = loss(A, targets)
        assert isinstance(value, float) and math.isfinite(value)
        dLdA = loss.backward()
        assert dLdA.shape == A.shape and dLdA.dtype == dtype


@pytest.mark.parametrize("cls", [cr.SquareLoss, cr.AbsoluteLoss, cr.NLL])
def test_a_single_output_accepts_y_as_a_vector(cls):
    A = np.array([[0.3], [0.9], [0.6]])
    y = np.array([0, 1, 1])
    a, b = cls(), cls()
    assert a(A, y) == b(A, y.reshape(-1, 1))
    np.testing.assert_array_equal(a.backward(), b.backward())


def test_nllm_labels_and_one_hot_agree():
    A = cr.Softmax()(np.random.default_rng(0).normal(size=(6, 4)))
    y = np.array([0, 3, 1, 1, 2, 0])
    for labels in (y, y.astype(np.float64), y.astype(np.int8)):
        a, b = cr.NLLM(), cr.NLLM()
        assert a(A, labels) == pytest.approx(b(A, np.eye(4)[y]), rel=1e-14)
        np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-14)


@pytest.mark.parametrize("reduction, n", [("mean", 5), ("sum", 1)])
def test_nllm_fused_gradient_is_a_minus_y_for_labels_and_one_hot(reduction, n):
    # Concept 19: dL/dZ = (A − Y)/n after a softmax, whichever form the labels take.
    A = cr.Softmax()(np.random.default_rng(1).normal(size=(5, 3)))
    y = np.array([2, 0, 1, 1, 0])
    for Y in (y, np.eye(3)[y]):
        loss = cr.NLLM(reduction=reduction)
        loss(A, Y)
        np.testing.assert_allclose(loss.fused_backward(), (A - np.eye(3)[y]) / n,
                                   rtol=1e-14, atol=1e-17)


def test_losses_keep_a_python_float_and_accept_lists():
    loss = cr.SquareLoss()
    assert loss([[1.0], [2.0]], [1.0, 1.0]) == 0.5


def test_integer_outputs_are_promoted_not_truncated():
    # An integer A would make an integer dL/dA (and "mean" could not divide it): float64.
    loss = cr.SquareLoss()
    assert loss(np.array([[1], [2]]), [0.5, 0.5]) == pytest.approx((0.25 + 2.25) / 2)
    np.testing.assert_allclose(loss.backward(), [[0.5], [1.5]])


# -- saturation: large finite losses, never inf or NaN -------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_nll_on_saturated_outputs_is_large_and_finite(dtype):
    # a = 0 with y = 1, and a = 1 with y = 0: the log sees ε ≤ 1e-7 (float32) or 1e-15.
    A = np.array([[0.0], [1.0]], dtype)
    loss = cr.NLL(reduction="sum")
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = loss(A, [1, 0])
        dLdA = loss.backward()
    floor = -math.log(1e-7 if dtype == np.float32 else 1e-15)  # 16.118... or 34.538...
    assert math.isfinite(value) and value >= 2 * floor - 1e-4
    assert np.all(np.isfinite(dLdA)) and dLdA.dtype == dtype
    assert dLdA[0, 0] < 0 < dLdA[1, 0]  # and each pushes the output the right way


@pytest.mark.parametrize("dtype", DTYPES)
def test_nllm_on_saturated_outputs_is_large_and_finite(dtype):
    A = cr.Softmax()(np.array([[1000.0, 0.0, -1000.0]] * 2, dtype))  # A = [1, 0, 0] exactly
    assert A[0, 2] == 0
    for Y in (np.array([2, 1]), np.array([[0, 0, 1], [0, 1, 0]])):
        loss = cr.NLLM(reduction="sum")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            value = loss(A, Y)
            dLdA = loss.backward()
        floor = -math.log(1e-7 if dtype == np.float32 else 1e-15)
        assert math.isfinite(value) and value >= 2 * floor - 1e-4
        assert np.all(np.isfinite(dLdA))


def test_a_perfect_prediction_costs_nothing():
    assert cr.NLL()(np.array([[1.0], [0.0]]), [1, 0]) < 1e-13
    assert cr.NLLM()(np.eye(3), [0, 1, 2]) == 0.0
    assert cr.SquareLoss()(np.eye(3), np.eye(3)) == 0.0


# -- errors ---------------------------------------------------------------------------------------


def _raises(call, message):
    """``call()`` raises an InputError (a ChainruleError and a ValueError) whose message is
    ``message`` exactly (a str) or matches it (a compiled pattern)."""
    with pytest.raises(InputError) as info:
        call()
    assert isinstance(info.value, cr.ChainruleError) and isinstance(info.value, ValueError)
    if isinstance(message, str):
        assert str(info.value) == message
    else:
        assert message.search(str(info.value)), str(info.value)


WRONG_SHAPES = [
    (cr.SquareLoss(), (4, 2), np.zeros((4, 3)),
     "SquareLoss() expected Y of shape (4, 2) to match A, got array of shape (4, 3)"),
    (cr.SquareLoss(), (4, 2), np.zeros(4),
     "SquareLoss() expected Y of shape (4, 2) to match A, got array of shape (4,)"),
    (cr.SquareLoss(reduction="sum"), (4, 1), np.zeros(3),
     "SquareLoss(reduction='sum') expected Y of shape (4, 1) or (4,) to match A, "
     "got array of shape (3,)"),
    (cr.AbsoluteLoss(), (4, 1), np.zeros((4, 2)),
     "AbsoluteLoss() expected Y of shape (4, 1) or (4,) to match A, got array of shape (4, 2)"),
    (cr.NLL(), (4, 1), np.zeros(5),
     "NLL() expected Y of shape (4, 1) or (4,) to match A, got array of shape (5,)"),
    (cr.NLLM(), (4, 3), np.zeros(5, int),
     "NLLM() expected integer labels of shape (4,) or one-hot Y of shape (4, 3), "
     "got array of shape (5,)"),
    (cr.NLLM(), (4, 3), np.zeros((4, 2)),
     "NLLM() expected Y of shape (4, 3) to match A, got array of shape (4, 2)"),
    (cr.NLLM(), (4, 3), np.zeros((4, 3, 1)),
     "NLLM() expected integer labels of shape (4,) or one-hot Y of shape (4, 3), "
     "got array of shape (4, 3, 1)"),
]


@pytest.mark.parametrize("loss, A_shape, Y, message", WRONG_SHAPES,
                         ids=[f"{type(c[0]).__name__}{i}" for i, c in enumerate(WRONG_SHAPES)])
def test_y_of_the_wrong_shape(loss, A_shape, Y, message):
    _raises(lambda: loss(np.full(A_shape, 0.5), Y), message)


@pytest.mark.parametrize("labels", [[0, 1, 0.5], [0, 2, 1], [-1, 0, 1], [True, 3, 0]])
def test_nll_labels_must_be_0_or_1(labels):
    _raises(lambda: cr.NLL()(np.full((3, 1), 0.5), np.array(labels, dtype=float)),
            re.compile(r"^NLL\(\) expected labels 0 or 1, got values such as \["))


@pytest.mark.parametrize("labels, low, high", [([0, 1, 3], 0, 3), ([-1, 0, 2], -1, 2),
                                               ([0.0, 7.0, 1.0], 0, 7)])
def test_nllm_labels_out_of_range(labels, low, high):
    message = re.compile(rf"^NLLM\(\) expected class labels in 0\.\.2 for A with 3 columns, "
                         rf"got labels from {low}(\.0)? to {high}(\.0)?$")
    _raises(lambda: cr.NLLM()(np.full((3, 3), 1 / 3), np.array(labels)), message)


def test_nllm_labels_must_be_integers():
    _raises(lambda: cr.NLLM()(np.full((3, 3), 1 / 3), np.array([0.0, 1.5, 2.0])),
            re.compile(r"^NLLM\(\) expected integer class labels, got \["))
    _raises(lambda: cr.NLLM()(np.full((3, 3), 1 / 3), np.array(["a", "b", "c"])),
            re.compile(r"^NLLM\(\) expected integer class labels, got dtype <U1$"))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("case", LOSSES, ids=LOSS_IDS)
def test_non_finite_targets_are_rejected(case, bad):
    A, Y = case.data(n=4)
    Y = np.array(Y, dtype=np.float64)
    Y.flat[1] = bad
    what = "NaN" if np.isnan(bad) else "inf"
    _raises(lambda: case.make()(A, Y),
            re.compile(rf"^{case.cls.__name__}\(\) expected finite values in Y, got 1 {what} "
                       r"value\(s\) in array of shape"))


@pytest.mark.parametrize("reduction", ["avg", "MEAN", None, 0])
@pytest.mark.parametrize("cls", [cr.SquareLoss, cr.AbsoluteLoss, cr.NLL, cr.NLLM])
def test_bad_reduction(cls, reduction):
    _raises(lambda: cls(reduction=reduction),
            f"{cls.__name__} expected reduction 'mean' or 'sum', got {reduction!r}")


@pytest.mark.parametrize("cls", [cr.SquareLoss, cr.AbsoluteLoss, cr.NLL, cr.NLLM])
def test_a_must_be_a_matrix_of_numbers(cls):
    _raises(lambda: cls()(np.full(3, 0.5), np.zeros(3)),
            f"{cls.__name__}() expected A as a 2-D array (n_samples, n_outputs), "
            "got array of shape (3,)")
    _raises(lambda: cls()(np.array([["a"], ["b"]]), np.zeros(2)),
            f"{cls.__name__}() expected numeric A, got array of dtype <U1")


@pytest.mark.parametrize("cls", [cr.SquareLoss, cr.AbsoluteLoss, cr.NLL, cr.NLLM])
def test_backward_before_forward(cls):
    _raises(lambda: cls().backward(),
            f"{cls.__name__}().backward() needs a forward first: call loss(A, Y)")


def test_non_numeric_targets():
    _raises(lambda: cr.SquareLoss()(np.zeros((2, 1)), np.array(["a", "b"])),
            "SquareLoss() expected numeric Y, got array of dtype <U1")


def test_nllm_takes_a_column_of_labels_like_a_vector():
    A = np.random.default_rng(0).dirichlet(np.ones(3), size=4)
    y = np.array([0, 2, 1, 2])
    assert cr.NLLM()(A, y[:, None]) == cr.NLLM()(A, y)


@pytest.mark.parametrize("Y", [2 * np.eye(3), np.zeros((3, 3)), -np.eye(3),
                               np.array([[0.5, 0.6, -0.1]] * 3)])
def test_nllm_rejects_rows_that_are_not_probabilities(Y):
    with pytest.raises(ValueError, match="class probabilities"):
        cr.NLLM()(np.full((3, 3), 1 / 3), Y)


def test_nllm_accepts_soft_labels():
    Y = np.array([[0.2, 0.8, 0.0]] * 3)
    assert cr.NLLM()(np.full((3, 3), 1 / 3), Y) == pytest.approx(np.log(3))
