"""The tables that drive the core's tests: one row per module, one row per loss.

A new module is one row in ``MODULES``; that row then gets a finite-difference gradient check,
a direct central-difference check of dL/dX, shape, dtype, train/eval and PyTorch tests (see
test_gradients.py, test_modules.py, test_torch_core.py). A new loss is one row in ``LOSSES``.

Each row builds a *fresh, seeded* object, so every test sees the same numbers and no test can
disturb another through shared state.

Below the tables sit the pieces several test files build from: ``mlp`` (a seeded network),
``blobs`` (a seeded classification set), ``weights`` and ``assert_same_weights``, and
``UserModule``, the protocol's plumbing for a user's own module with no chainrule base class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import chainrule as cr

# -- modules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleCase:
    """A module (or network) to test.

    ``build(dtype)`` returns a fresh module whose parameters (if any) have that dtype; the
    case's ``mode`` is applied by :meth:`make`. Inputs are ``(n_samples, n_in)``, outputs
    ``(n_samples, n_out)``.
    """

    id: str
    build: Callable[[type], object]
    n_in: int
    n_out: int
    mode: str = "train"

    def make(self, dtype=np.float64):
        module = self.build(dtype)
        return module.train() if self.mode == "train" else module.eval()

    def inputs(self, n: int = 5, dtype=np.float64, seed: int = 0) -> np.ndarray:
        """Random inputs, standard normal: no entry sits exactly on ReLU's or Step's kink."""
        return np.random.default_rng(seed).normal(size=(n, self.n_in)).astype(dtype)

    @property
    def is_network(self) -> bool:
        return self.id.startswith("seq")


def batchnorm(n: int, dtype, eps_inside: str = "variance") -> cr.BatchNorm:
    """A BatchNorm whose G, B and running statistics are not the trivial 1, 0, 0, 1."""
    bn = cr.BatchNorm(n, eps_inside=eps_inside, dtype=dtype)
    r = np.random.default_rng(7)
    bn.G.data[...] = r.uniform(0.5, 1.5, (1, n))
    bn.B.data[...] = r.normal(size=(1, n))
    bn.running_mean[...] = r.normal(size=(1, n))
    bn.running_var[...] = r.uniform(0.5, 2.0, (1, n))
    return bn


def _mlp_softmax(dtype) -> cr.Sequential:
    return cr.Sequential(cr.Linear(4, 5, rng=1, dtype=dtype), cr.ReLU(),
                         cr.Linear(5, 3, rng=2, dtype=dtype), cr.Softmax())


def _mlp_regularized(dtype) -> cr.Sequential:
    # Dropout after BatchNorm and Tanh, a sigmoid output: every kind of module in one net.
    return cr.Sequential(
        cr.Linear(4, 6, init="he", rng=3, dtype=dtype), batchnorm(6, dtype), cr.Tanh(),
        cr.Dropout(0.25, rng=4), cr.Linear(6, 2, init="xavier", rng=5, dtype=dtype),
        cr.Sigmoid(),
    )


def _nested(dtype) -> cr.Sequential:
    # A Sequential inside a Sequential: parameter paths become "modules.0.modules.0.W".
    return cr.Sequential(cr.Sequential(cr.Linear(4, 3, rng=6, dtype=dtype), cr.LeakyReLU(0.2)),
                         cr.Linear(3, 2, rng=8, dtype=dtype), cr.Identity())


MODULES: list[ModuleCase] = [
    ModuleCase("linear-gaussian", lambda dt: cr.Linear(4, 3, rng=0, dtype=dt), 4, 3),
    ModuleCase("linear-xavier", lambda dt: cr.Linear(4, 3, init="xavier", rng=0, dtype=dt),
               4, 3),
    ModuleCase("linear-he", lambda dt: cr.Linear(4, 3, init="he", rng=0, dtype=dt), 4, 3),
    ModuleCase("step", lambda dt: cr.Step(), 4, 4),
    ModuleCase("relu", lambda dt: cr.ReLU(), 4, 4),
    ModuleCase("sigmoid", lambda dt: cr.Sigmoid(), 4, 4),
    ModuleCase("tanh", lambda dt: cr.Tanh(), 4, 4),
    ModuleCase("identity", lambda dt: cr.Identity(), 4, 4),
    ModuleCase("softmax", lambda dt: cr.Softmax(), 4, 4),
    ModuleCase("leaky_relu", lambda dt: cr.LeakyReLU(alpha=0.1), 4, 4),
    ModuleCase("dropout-train", lambda dt: cr.Dropout(0.4, rng=0), 4, 4),
    ModuleCase("dropout-eval", lambda dt: cr.Dropout(0.4, rng=0), 4, 4, mode="eval"),
    ModuleCase("batchnorm-train", lambda dt: batchnorm(4, dt), 4, 4),
    ModuleCase("batchnorm-eval", lambda dt: batchnorm(4, dt), 4, 4, mode="eval"),
    ModuleCase("seq-mlp-softmax", _mlp_softmax, 4, 3),
    ModuleCase("seq-regularized-train", _mlp_regularized, 4, 2),
    ModuleCase("seq-regularized-eval", _mlp_regularized, 4, 2, mode="eval"),
    ModuleCase("seq-nested", _nested, 4, 2),
]
MODULE_IDS = [c.id for c in MODULES]
SINGLE_MODULES = [c for c in MODULES if not c.is_network]

# Activations by class, for the derivative catalogue and the stability tests.
ACTIVATIONS = {"Step": cr.Step, "ReLU": cr.ReLU, "Sigmoid": cr.Sigmoid, "Tanh": cr.Tanh,
               "Identity": cr.Identity, "Softmax": cr.Softmax, "LeakyReLU": cr.LeakyReLU}

# -- losses ----------------------------------------------------------------------------------


def _sigmoid(Z):
    return 1 / (1 + np.exp(-Z))


def _softmax(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class LossCase:
    """A loss with a way to make valid outputs ``A`` and targets ``Y`` for it.

    ``outputs(Z)`` maps standard-normal ``Z: (n, k)`` to a valid ``A`` (probabilities for the
    log losses, kept away from the clipping at ε); ``targets(rng, n)`` draws a valid ``Y``.
    ``activation`` is the output module the loss is meant for (``None``: any).
    """

    id: str
    cls: type
    k: int
    outputs: Callable[[np.ndarray], np.ndarray]
    targets: Callable[[np.random.Generator, int], np.ndarray]
    activation: type | None = None

    def make(self, reduction: str = "mean"):
        return self.cls(reduction=reduction)

    def data(self, n: int = 6, dtype=np.float64, seed: int = 0):
        r = np.random.default_rng(seed)
        A = self.outputs(r.normal(size=(n, self.k))).astype(dtype)
        return A, self.targets(r, n)


LOSSES: list[LossCase] = [
    LossCase("square", cr.SquareLoss, 3, lambda Z: Z, lambda r, n: r.normal(size=(n, 3))),
    LossCase("square-1d", cr.SquareLoss, 1, lambda Z: Z, lambda r, n: r.normal(size=n)),
    LossCase("absolute", cr.AbsoluteLoss, 3, lambda Z: Z,
             lambda r, n: r.normal(size=(n, 3)) + 5.0),  # |a − y| ≫ finite-difference step
    LossCase("absolute-1d", cr.AbsoluteLoss, 1, lambda Z: Z,
             lambda r, n: r.normal(size=n) - 5.0),
    LossCase("nll", cr.NLL, 1, _sigmoid, lambda r, n: r.integers(0, 2, n), cr.Sigmoid),
    LossCase("nll-column", cr.NLL, 1, _sigmoid,
             lambda r, n: r.integers(0, 2, (n, 1)).astype(np.float64), cr.Sigmoid),
    LossCase("nllm-labels", cr.NLLM, 4, _softmax, lambda r, n: r.integers(0, 4, n),
             cr.Softmax),
    LossCase("nllm-onehot", cr.NLLM, 4, _softmax,
             lambda r, n: np.eye(4)[r.integers(0, 4, n)], cr.Softmax),
]
LOSS_IDS = [c.id for c in LOSSES]
REDUCTIONS = ("mean", "sum")


# -- networks, data and user modules for the tests of fit, optimizers and files ----------------


def mlp(sizes=(4, 8, 3), *, act=cr.ReLU, out=cr.Softmax, batch_norm: bool = False,
        dropout: float | None = None, init: str = "he", dtype=np.float32,
        rng=0) -> cr.Sequential:
    """A seeded fully connected network ``sizes[0] -> ... -> sizes[-1]``.

    Each hidden layer is ``Linear(m, n, init=init)``, then ``BatchNorm(n)`` if ``batch_norm``,
    then ``act()``, then ``Dropout(dropout)`` if ``dropout`` is given; the last layer is a
    ``Linear`` with the default (Gaussian) init, then ``out()`` (nothing when ``out`` is None).
    One generator made from ``rng`` draws the weights layer by layer and is the dropout
    layers' mask generator, so a given ``rng`` always builds the same network. For example
    ``mlp((5, 16, 3), batch_norm=True, dropout=0.2)`` is Linear(5, 16), BatchNorm(16), ReLU,
    Dropout(0.2), Linear(16, 3), Softmax.
    """
    rng = np.random.default_rng(rng)
    modules = []
    for m, n in zip(sizes[:-2], sizes[1:-1]):
        modules.append(cr.Linear(m, n, init=init, rng=rng, dtype=dtype))
        if batch_norm:
            modules.append(cr.BatchNorm(n, dtype=dtype))
        modules.append(act())
        if dropout is not None:
            modules.append(cr.Dropout(dropout, rng=rng))
    modules.append(cr.Linear(sizes[-2], sizes[-1], rng=rng, dtype=dtype))
    if out is not None:
        modules.append(out())
    return cr.Sequential(*modules)


def blobs(n: int = 60, d: int = 4, k: int = 3, *, sep: float = 2.0, rng=0):
    """``(X, y)``: ``n`` float32 rows of ``d`` standard-normal features, class ``y`` in 0..k-1
    shifted by ``sep`` along feature ``y`` (so the classes are learnable but overlap)."""
    rng = np.random.default_rng(rng)
    y = rng.integers(0, k, n)
    X = rng.normal(size=(n, d)) + sep * np.eye(k, d)[y]
    return X.astype(np.float32), y


def weights(model) -> list[np.ndarray]:
    """Copies of ``model``'s parameter arrays, in ``parameters()`` order."""
    return [p.data.copy() for p in model.parameters()]


def assert_same_weights(a, b) -> None:
    """``a`` and ``b`` (models, or lists of arrays from :func:`weights`) hold the same number of
    weights, equal bit for bit."""
    a, b = (weights(x) if hasattr(x, "parameters") else x for x in (a, b))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


class UserModule:
    """The module protocol's plumbing, written as a user would, *not* from ``chainrule.Module``.

    The tests of duck typing subclass it and write only ``forward`` and ``backward``:
    ``__call__`` runs ``forward``, ``parameters()`` lists the :class:`chainrule.Parameter`
    attributes in the order they were set, and ``train()``/``eval()`` set ``training`` and
    return the module. It takes nothing from chainrule but ``Parameter``, so what those tests
    show (a user's class works in ``Sequential``, ``fit``, ``gradcheck`` and the optimizers)
    holds for any class written against the protocol.
    """

    training = True

    def __call__(self, A):
        return self.forward(A)

    def parameters(self):
        return [v for v in vars(self).values() if isinstance(v, cr.Parameter)]

    def train(self):
        self.training = True
        return self

    def eval(self):
        self.training = False
        return self


# -- numeric helpers ---------------------------------------------------------------------------


def frozen_rngs(module) -> Callable[[], None]:
    """A function that rewinds every ``numpy.random.Generator`` held by ``module`` (or by the
    modules inside it) to its current state, so repeated forwards draw the same dropout mask.
    """
    found, stack = [], [module]
    while stack:
        m = stack.pop()
        stack.extend(getattr(m, "modules", None) or [])
        found += [g for g in vars(m).values() if isinstance(g, np.random.Generator)]
    states = [g.bit_generator.state for g in found]

    def rewind():
        for g, s in zip(found, states, strict=True):
            g.bit_generator.state = s

    return rewind


def central_difference(f: Callable[[], float], X: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``(f(X + eps e_i) − f(X − eps e_i)) / (2 eps)`` for every entry i of ``X`` (nudged in
    place and restored): the numeric gradient, independent of chainrule.gradcheck."""
    G = np.zeros(X.shape)
    for i in np.ndindex(X.shape):
        old = X[i]
        X[i] = old + eps
        up = f()
        X[i] = old - eps
        down = f()
        X[i] = old
        G[i] = (up - down) / (2 * eps)
    return G
