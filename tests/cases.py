"""The tables that drive the core's tests: one row per module, one row per loss.

A new module is one row in ``MODULES``; that row then gets a finite-difference gradient check,
a direct central-difference check of dL/dX, shape, dtype, train/eval and PyTorch tests (see
test_gradients.py, test_modules.py, test_torch_core.py). A new loss is one row in ``LOSSES``.

Each row builds a *fresh, seeded* object, so every test sees the same numbers and no test can
disturb another through shared state.
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


def _batchnorm(n: int, dtype) -> cr.BatchNorm:
    """A BatchNorm whose G, B and running statistics are not the trivial 1, 0, 0, 1."""
    bn = cr.BatchNorm(n, dtype=dtype)
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
        cr.Linear(4, 6, init="he", rng=3, dtype=dtype), _batchnorm(6, dtype), cr.Tanh(),
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
    ModuleCase("batchnorm-train", lambda dt: _batchnorm(4, dt), 4, 4),
    ModuleCase("batchnorm-eval", lambda dt: _batchnorm(4, dt), 4, 4, mode="eval"),
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
