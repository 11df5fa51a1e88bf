"""Every public boundary rejects bad input with a message naming what was expected and given."""

import numpy as np
import pytest

import chainrule as cr
from cases import UserModule, mlp


def model():
    """Linear(4, 3), BatchNorm(3), ReLU, Linear(3, 2), Softmax: the messages below name them."""
    return mlp((4, 3, 2), batch_norm=True)


@pytest.mark.parametrize("X, match", [
    (np.full((3, 4), np.nan), "NaN"),
    (np.array([[1, 2, 3, np.inf]]), "inf"),
    (np.zeros((0, 4)), "non-empty"),
    (np.zeros((3, 5)),
     r"Linear\(4, 3\) expected input with 4 features, got array of shape \(3, 5\)"),
    (np.zeros(4), r"2-D array .* got array of shape \(4,\)"),
    (np.array([["a", "b", "c", "d"]]), "numeric"),
    ([[1, 2], [3]], "2-D numeric array"),
])
def test_predict_rejects_bad_X(X, match):
    with pytest.raises(cr.ChainruleError, match=match) as info:
        model().predict(X)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_predict_rejects_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        model().predict(np.zeros((3, 4)), batch_size=batch_size)


def test_predict_in_batches_equals_predict_at_once():
    m = model()
    X = np.random.default_rng(0).normal(size=(10, 4))
    np.testing.assert_array_equal(m.predict(X, batch_size=3), m.predict(X))


def test_forward_checks_the_first_module():
    with pytest.raises(cr.ChainruleError, match=r"expected input with 4 features, got array of "
                                                r"shape \(32, 785\)"):
        model()(np.zeros((32, 785), np.float32))


def test_one_row_batchnorm_training_batch():
    with pytest.raises(ValueError, match=r"at least 2 rows.*\(1, 3\)"):
        model()(np.zeros((1, 4), np.float32))
    m = model().eval()
    assert m(np.zeros((1, 4), np.float32)).shape == (1, 2)  # eval mode: fine


def test_fit_rejects_one_row_batches_through_batchnorm():
    X = np.random.default_rng(0).normal(size=(5, 4))
    with pytest.raises(ValueError, match="at least 2 rows"):
        cr.fit(model(), cr.NLLM(), X, np.zeros(5, int), batch_size=1)


@pytest.mark.parametrize("loss, Y, match", [
    (cr.NLLM(), np.array([0, 1, 5]), r"labels in 0..1"),
    (cr.NLLM(), np.array([0, 1, -1]), r"labels in 0..1"),
    (cr.NLLM(), np.array([0.5, 1, 0]), "integer"),
    (cr.NLLM(), np.array(["a", "b", "a"]), "integer"),
    (cr.NLLM(), np.zeros((3, 3)), r"\(3, 2\)"),
    (cr.SquareLoss(), np.zeros((3, 3)), r"\(3, 2\)"),
    (cr.SquareLoss(), np.array([[0, np.nan]] * 3), "NaN"),
])
def test_fit_rejects_bad_targets(loss, Y, match):
    X = np.random.default_rng(0).normal(size=(3, 4))
    with pytest.raises(ValueError, match=match):
        cr.fit(model(), loss, X, Y)


def test_nll_labels_must_be_0_or_1():
    m = cr.Sequential(cr.Linear(4, 1, rng=0), cr.Sigmoid())
    with pytest.raises(ValueError, match="0 or 1"):
        cr.fit(m, cr.NLL(), np.zeros((3, 4)), np.array([0, 1, 2]))


def test_fit_rejects_a_non_loss_and_bad_validation_data():
    X, y = np.zeros((4, 4)), np.zeros(4, int)
    with pytest.raises(cr.ChainruleError, match="chainrule loss"):
        cr.fit(model(), lambda A, Y: 0.0, X, y)
    with pytest.raises(ValueError, match=r"validation_data=\(X_val, Y_val\)"):
        cr.fit(model(), cr.NLLM(), X, y, validation_data=X)
    with pytest.raises(ValueError, match="features"):
        cr.fit(model(), cr.NLLM(), X, y, validation_data=(np.zeros((2, 3)), y[:2]))


def test_sequential_rejects_objects_that_are_not_modules():
    with pytest.raises(cr.ChainruleError, match="has no"):
        cr.Sequential(cr.Linear(2, 2), object())


def test_a_user_module_with_two_parameters_of_one_name_gets_distinct_paths():
    class Scale2(UserModule):
        """A * W1 * W2, both named "W"; its backward makes W1's gradient 3x too large."""

        def __init__(self, broken):
            self.W1 = cr.Parameter(np.array([[1.5, -0.5]]), "W")
            self.W2 = cr.Parameter(np.array([[0.7, 2.0]]), "W")
            self.broken = broken

        def forward(self, A):
            self.A = A
            return A * self.W1.data * self.W2.data

        def backward(self, dLdA):
            self.W1.grad[...] = (3 if self.broken else 1) * np.sum(
                dLdA * self.A * self.W2.data, axis=0, keepdims=True)
            self.W2.grad[...] = np.sum(dLdA * self.A * self.W1.data, axis=0, keepdims=True)
            return dLdA * self.W1.data * self.W2.data

    assert not isinstance(Scale2(False), cr.Module)
    X = np.random.default_rng(0).normal(size=(4, 2))
    Y = np.random.default_rng(1).normal(size=(4, 2))
    ok = cr.gradcheck(cr.Sequential(Scale2(False)), cr.SquareLoss(), X, Y)
    assert list(ok.errors) == ["modules.0.W", "modules.0.W.1"] and ok.ok
    bad = cr.gradcheck(cr.Sequential(Scale2(True)), cr.SquareLoss(), X, Y)
    assert not bad.ok and bad.errors["modules.0.W"] > 1e-2
