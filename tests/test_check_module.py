"""``check_module`` and the exercises: each skeleton fails until written, a right solution
passes, and each usual mistake gets the sentence that names it."""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from cases import SINGLE_MODULES
from chainrule.check import check_loss
from chainrule.errors import InputError

EXERCISES = Path(__file__).resolve().parent.parent / "exercises"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"exercise_{name}", EXERCISES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tanh, linear, softmax_nllm, batchnorm = (_load(n) for n in
                                         ("tanh", "linear", "softmax_nllm", "batchnorm"))

X = np.random.default_rng(5).normal(size=(4, 3))
# The exercises' own pattern: X from seed 0, the seed of check_module's default rng=0.
X0 = np.random.default_rng(0).normal(size=(4, 3))
P = np.random.default_rng(1).dirichlet(np.ones(3), size=4)  # softmax outputs, rows sum to 1
ONEHOT = np.eye(3)[[0, 2, 1, 2]]


def _only(report, *pieces):
    """The report failed, and its first problem contains every piece."""
    assert not report.ok, str(report)
    assert all(piece in report.problems[0] for piece in pieces), str(report)


# -- solutions, written as a student would fill in the skeletons --------------------------------


class TanhSolution(tanh.Tanh):
    def forward(self, Z):
        self.A = np.tanh(Z)
        return self.A

    def backward(self, dLdA):
        return dLdA * (1 - self.A ** 2)


class LinearSolution(linear.Linear):
    def forward(self, A_prev):
        self.A_prev = A_prev.astype(self.W.data.dtype)
        return self.A_prev @ self.W.data + self.W0.data

    def backward(self, dLdZ):
        self.W.grad[...] = self.A_prev.T @ dLdZ
        self.W0.grad[...] = dLdZ.sum(axis=0, keepdims=True)
        return dLdZ @ self.W.data.T


class SoftmaxSolution(softmax_nllm.Softmax):
    def forward(self, Z):
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        self.A = E / E.sum(axis=1, keepdims=True)
        return self.A

    def backward(self, dLdA):
        return self.A * (dLdA - np.sum(dLdA * self.A, axis=1, keepdims=True))


class NLLMSolution(softmax_nllm.NLLM):
    def __call__(self, A, Y):
        self.A, self.Y = A, Y
        return float(-np.sum(Y * np.log(A)) / len(A))

    def backward(self):
        return (-self.Y / (self.A * len(self.A))).astype(self.A.dtype)


class BatchNormSolution(batchnorm.BatchNorm):
    def forward(self, Z):
        Z = Z.astype(self.G.data.dtype)
        mu = Z.mean(axis=0, keepdims=True)
        self.sigma = np.sqrt(((Z - mu) ** 2).mean(axis=0, keepdims=True))
        self.s = self.sigma + self.G.data.dtype.type(self.eps)
        self.Zbar = (Z - mu) / self.s
        return self.G.data * self.Zbar + self.B.data

    def backward(self, dLdA):
        self.G.grad[...] = np.sum(dLdA * self.Zbar, axis=0, keepdims=True)
        self.B.grad[...] = np.sum(dLdA, axis=0, keepdims=True)
        c = self.s / self.sigma
        return self.G.data / self.s * (dLdA - dLdA.mean(axis=0, keepdims=True)
                                       - c * self.Zbar * np.mean(dLdA * self.Zbar, axis=0,
                                                                 keepdims=True))


SKELETONS = [  # (skeleton, solution, check)
    ("tanh", tanh.Tanh, TanhSolution, lambda m: cr.check_module(m(), X)),
    ("linear", linear.Linear, LinearSolution, lambda m: cr.check_module(m(3, 2), X)),
    ("softmax", softmax_nllm.Softmax, SoftmaxSolution, lambda m: cr.check_module(m(), X)),
    ("nllm", softmax_nllm.NLLM, NLLMSolution, lambda m: check_loss(m(), P, ONEHOT)),
    ("batchnorm", batchnorm.BatchNorm, BatchNormSolution,
     lambda m: cr.check_module(m(3), X)),
]


@pytest.mark.parametrize("name, skeleton, solution, check", SKELETONS,
                         ids=[s[0] for s in SKELETONS])
def test_each_skeleton_fails_until_written(name, skeleton, solution, check):
    report = check(skeleton)
    _only(report, "is not written yet", "NotImplementedError", "exercises/")
    assert "FAIL" in str(report)


@pytest.mark.parametrize("name, skeleton, solution, check", SKELETONS,
                         ids=[s[0] for s in SKELETONS])
def test_each_solution_passes(name, skeleton, solution, check):
    report = check(solution)
    assert report.ok, str(report)
    assert str(report).startswith(f"check of {report.name}: ok")
    assert all(err < 1e-4 for err in report.errors.values()), report.errors


def test_the_batchnorm_solution_is_the_notes_batchnorm():
    Z = np.random.default_rng(3).normal(size=(5, 3))
    mine, library = BatchNormSolution(3, dtype=np.float64), cr.BatchNorm(3, eps_inside="std",
                                                                         dtype=np.float64)
    np.testing.assert_allclose(mine(Z), library(Z), rtol=1e-12)
    C = np.random.default_rng(4).normal(size=(5, 3))
    np.testing.assert_allclose(mine.backward(C), library.backward(C), rtol=1e-10)


def test_the_check_script_fails_on_the_skeletons():
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([sys.executable, str(EXERCISES / "check.py"), "tanh", "linear"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1, done.stderr
    assert done.stdout.count("is not written yet") == 2
    done = subprocess.run([sys.executable, str(EXERCISES / "check.py"), "relu"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2 and "unknown exercise relu" in done.stderr


# -- the library's own modules pass -------------------------------------------------------------


@pytest.mark.parametrize("case", SINGLE_MODULES, ids=[c.id for c in SINGLE_MODULES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_library_module_passes(case, dtype):
    report = cr.check_module(case.make(dtype), case.inputs(n=5))
    assert report.ok, str(report)


@pytest.mark.parametrize("loss, A, Y", [
    (cr.NLLM(), P, ONEHOT), (cr.NLLM(reduction="sum"), P, np.array([0, 2, 1, 2])),
    (cr.SquareLoss(), X, X[::-1]), (cr.NLL(), P[:, :1], np.array([0, 1, 1, 0])),
])
def test_library_losses_pass(loss, A, Y):
    report = check_loss(loss, A, Y)
    assert report.ok, str(report)


def test_the_module_is_left_as_it_was():
    layer = cr.BatchNorm(3)
    before = copy.deepcopy(layer)
    cr.check_module(layer, X)
    for attr in ("running_mean", "running_var"):
        np.testing.assert_array_equal(getattr(layer, attr), getattr(before, attr))
    for p, q in zip(layer.parameters(), before.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
        np.testing.assert_array_equal(p.grad, q.grad)


# -- the usual mistakes, each with its sentence ---------------------------------------------------


class TransposedShape(LinearSolution):
    def backward(self, dLdZ):
        dLdA_prev = super().backward(dLdZ)
        self.W.grad = dLdZ.T @ self.A_prev  # (n, m): the notes' layout's product, untransposed
        return dLdA_prev


class TransposedSquare(LinearSolution):
    def backward(self, dLdZ):
        dLdA_prev = super().backward(dLdZ)
        self.W.grad[...] = (self.A_prev.T @ dLdZ).T
        return dLdA_prev


class ForgotToTransposeW(LinearSolution):
    def backward(self, dLdZ):
        super().backward(dLdZ)
        return dLdZ @ self.W.data  # should be dLdZ @ W.T


class Accumulates(LinearSolution):
    def backward(self, dLdZ):
        self.W.grad += self.A_prev.T @ dLdZ
        self.W0.grad += dLdZ.sum(axis=0, keepdims=True)
        return dLdZ @ self.W.data.T


class NLLMWithoutMean(NLLMSolution):
    def backward(self):
        return (-self.Y / self.A).astype(self.A.dtype)  # the sum's gradient, for the mean


class BiasAsVector(LinearSolution):
    def backward(self, dLdZ):
        dLdA_prev = super().backward(dLdZ)
        self.W0.grad = dLdZ.sum(axis=0)  # (n,), not (1, n)
        return dLdA_prev


class Float64Offset(linear.Linear):
    def __init__(self, m, n):
        super().__init__(m, n)
        self.W0 = cr.Parameter(np.zeros((1, n)), "W0")  # np.zeros: float64


class Float64Tanh(TanhSolution):
    def forward(self, Z):
        self.A = np.zeros(Z.shape)  # float64, whatever Z's dtype
        self.A[...] = np.tanh(Z)
        return self.A


class UncastLinear(LinearSolution):
    def forward(self, A_prev):
        self.A_prev = A_prev
        return A_prev @ self.W.data + self.W0.data


class ReturnsNothing(TanhSolution):
    def backward(self, dLdA):
        self.dLdZ = dLdA * (1 - self.A ** 2)


class WrongSign(TanhSolution):
    def backward(self, dLdA):
        return dLdA * (self.A ** 2 - 1)


class InPlace(TanhSolution):
    def forward(self, Z):
        np.tanh(Z, out=Z)
        self.A = Z
        return Z


class WrongDerivative(TanhSolution):
    def backward(self, dLdA):
        return dLdA * (1 - self.A)


class NoBackward:
    def __call__(self, A):
        return A

    def forward(self, A):
        return A

    def parameters(self):
        return []


MISTAKES = [
    ("transposed dLdW", lambda: cr.check_module(TransposedShape(3, 2), X),
     ["your dLdW has shape (2, 3), expected (3, 2) (the shape of W): did you transpose?"]),
    ("transposed square dLdW", lambda: cr.check_module(TransposedSquare(3, 3), X),
     ["your dLdW does not match finite differences", "the transpose of the right one"]),
    ("transposed square dLdW, X from seed 0", lambda: cr.check_module(TransposedSquare(3, 3), X0),
     ["your dLdW does not match finite differences", "the transpose of the right one"]),
    ("W not transposed in dL/dX", lambda: cr.check_module(ForgotToTransposeW(3, 3), X0),
     ["your dL/dX (what backward returns) does not match finite differences",
      "it is ∂L/∂Z W where it should be ∂L/∂Z Wᵀ: did you forget to transpose W?"]),
    ("accumulating grad", lambda: cr.check_module(Accumulates(3, 2), X),
     ["your backward adds to .grad (dLdW, dLdW0", "not +="]),
    ("missing 1/K", lambda: check_loss(NLLMWithoutMean(), P, ONEHOT),
     ["your dL/dA (what backward returns) does not match", "4 times too large",
      "4 = K, the number of samples: missing 1/K?"]),
    ("W0 of shape (n,)", lambda: cr.check_module(BiasAsVector(3, 2), X),
     ["your dLdW0 has shape (2,), expected (1, 2) (the shape of W0)"]),
    ("float64 offset", lambda: cr.check_module(Float64Offset(3, 2), X),
     ["your parameters have different dtypes (W: float32, W0: float64)"]),
    ("float64 arrays in float32", lambda: cr.check_module(Float64Tanh(), X),
     ["for float32 input your forward returned float64, expected float32",
      "dtype=A.dtype"]),
    ("input not cast", lambda: cr.check_module(UncastLinear(3, 2), X),
     ["for float64 input your forward returned float64, expected float32",
      "A.astype(float32)"]),
    ("backward returns None", lambda: cr.check_module(ReturnsNothing(), X),
     ["your backward returned None"]),
    ("wrong sign", lambda: cr.check_module(WrongSign(), X), ["it has the wrong sign"]),
    ("input changed", lambda: cr.check_module(InPlace(), X),
     ["your forward changed its input in place"]),
    ("wrong derivative", lambda: cr.check_module(WrongDerivative(), X),
     ["your dL/dX (what backward returns) does not match finite differences",
      "check the chain rule"]),
    ("not a module", lambda: cr.check_module(NoBackward(), X),
     ["your module has no backward, train, eval"]),
]


@pytest.mark.parametrize("name, run, pieces", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_mistake_gets_its_sentence(name, run, pieces):
    _only(run(), *pieces)


def test_report_as_text_lists_passes_and_problems():
    report = cr.check_module(Accumulates(3, 2), X)
    text = str(report).splitlines()
    assert text[0] == "check of Accumulates(): 1 problem"
    assert text[1].startswith("  ok    protocol") and text[-1].startswith("  FAIL  your backward")
    # From zeros, one += is right: finite differences pass, the overwrite check does not.
    assert max(report.errors.values()) < 1e-8 and len(report.passed) == 4


@pytest.mark.parametrize("kwargs, match", [
    ({"X": np.ones((0, 3))}, "X"), ({"X": [[np.nan, 1.0, 2.0]]}, "NaN"),
    ({"X": X, "dLdA": np.ones((4, 5))}, r"dLdA of the output's shape \(4, 2\)"),
])
def test_bad_arguments_are_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        cr.check_module(cr.Linear(3, 2, rng=0), **kwargs)


def test_a_given_dLdA_is_used():
    C = np.arange(8.0).reshape(4, 2)
    assert cr.check_module(cr.Linear(3, 2, rng=0), X, dLdA=C).ok


def test_the_exercises_page_shows_the_real_output(capsys):
    page = (EXERCISES.parent / "docs" / "exercises.md").read_text("utf-8")
    pairs = re.findall(r"```python\n(.*?)```\s*```text\n(.*?)```", page, flags=re.S)
    assert len(pairs) == 3
    namespace: dict = {}
    for code, text in pairs:
        exec(compile(code, "docs/exercises.md", "exec"), namespace)  # noqa: S102
        assert capsys.readouterr().out.rstrip("\n") == text.rstrip("\n"), code


def test_the_readme_quotes_real_sentences():
    readme = (EXERCISES / "README.md").read_text("utf-8")
    quoted = re.findall(r"^FAIL  (.*)$", readme, flags=re.M)
    found = [cr.check_module(TransposedShape(3, 2), X).problems[0],
             cr.check_module(Accumulates(3, 2), X).problems[0],
             check_loss(NLLMWithoutMean(), P, ONEHOT).problems[0]]
    assert [q.split(" (relative error")[0] for q in quoted] == \
        [f.split(" (relative error")[0] for f in found]


# -- the default dLdA cannot be the caller's X, and a symmetric probe is replaced ----------------


def test_the_default_dLdA_is_not_the_stream_of_the_seed():
    # Regression: dLdA was default_rng(0).standard_normal(out.shape), equal to X0 itself, so
    # A_prevᵀ dLdZ = X0ᵀ X0 was symmetric and hid a transposed dLdW.
    report = cr.check_module(TransposedSquare(3, 3), X0, rng=0)
    _only(report, "the transpose of the right one; did you transpose?")
    for rng in (0, 7):
        X = np.random.default_rng(rng).normal(size=(4, 3))
        assert not cr.check_module(TransposedSquare(3, 3), X, rng=rng).ok


def test_a_dLdA_that_makes_a_square_gradient_symmetric_is_followed_by_a_second():
    # dLdA = X makes every A_prevᵀ dLdA symmetric: a second dLdA, drawn with rng, shows the
    # transpose; a right module still passes, and the report says a second dLdA was used.
    _only(cr.check_module(TransposedSquare(3, 3), X0, dLdA=X0),
          "the transpose of the right one")
    report = cr.check_module(LinearSolution(3, 3), X0, dLdA=X0)
    assert report.ok, str(report)
    assert "with a second dLdA" in report.passed[-1]
    assert "second" not in cr.check_module(LinearSolution(3, 3), X0).passed[-1]


@pytest.mark.parametrize("make", [lambda: BatchNormSolution(3),
                                  lambda: cr.BatchNorm(3, dtype=np.float64),
                                  lambda: cr.BatchNorm(3, eps_inside="std", dtype=np.float64)],
                         ids=["exercise", "variance", "std"])
def test_batchnorm_is_checked_to_full_precision_on_X_from_seed_0(make):
    # With dLdA = X0, L = Σ X0 ∘ BN(X0) has a dL/dX near zero and its relative error was
    # ~1e-5, close to failing; with a dLdA of its own it is round-off.
    report = cr.check_module(make(), X0)
    assert report.ok and max(report.errors.values()) < 1e-8, report.errors


@pytest.mark.parametrize("kwargs", [{}, {"gaussian": True}, {"wrap": True}],
                         ids=["uniform", "gaussian", "wrapped"])
def test_a_users_random_state_dropout_passes(kwargs):
    # Regression: a RandomState held by the module was not put back between the forwards of
    # the finite differences (nor of the overwrite check), so a right module was told its
    # chain rule was wrong.
    from test_gradients import RandomStateDropout
    report = cr.check_module(RandomStateDropout(**kwargs), X0)
    assert report.ok, str(report)
    assert max(report.errors.values()) < 1e-8, report.errors
