"""Compiled kernels (chainrule.kernels) against the NumPy lines they replace: the same bits."""

import os

import numpy as np
import pytest

import chainrule as cr
from cases import mlp, weights
from chainrule import kernels
from chainrule.optimizers import OPTIMIZERS

needs_adam = pytest.mark.skipif(kernels._adam is None,
                                reason="chainrule.kernels._adam was not built (no C compiler)")


def test_kernels_were_built_where_required():
    # The build is optional (no compiler, no kernels); CI, which has a compiler, sets
    # CHAINRULE_REQUIRE_KERNELS=1 so that a broken build cannot pass unnoticed.
    if os.environ.get("CHAINRULE_REQUIRE_KERNELS") != "1":
        pytest.skip("CHAINRULE_REQUIRE_KERNELS is not set")
    assert kernels.available() == ["Adam"]


def _run(on: bool, dtype, kind: str, **kwargs):
    """Weights and state after 30 Adam steps on fixed random gradients of three sizes,
    through a model's buffer, a list of parameters, or fit's propose/commit."""
    model = mlp((7, 5, 3), out=None, dtype=dtype)
    opt, buffer, rng = cr.Adam(**kwargs), model.parameter_buffer, np.random.default_rng(3)
    with kernels.enabled(on):
        for _ in range(30):
            for p in model.parameters():
                p.grad[...] = rng.normal(scale=rng.choice([1e-6, 1e-2, 10.0]), size=p.grad.shape)
            if kind == "buffer":
                opt.step(buffer)
            elif kind == "parameters":
                opt.step(model.parameters())
            else:
                assert buffer.propose(opt) is None
                buffer.commit()
    return weights(model), opt.state_dict()


@needs_adam
@pytest.mark.parametrize("kind", ["buffer", "parameters", "propose"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", [{}, {"lr": 0.05, "weight_decay": 0.01, "eps": 1e-3},
                                    {"lr": lambda t: 0.1 / t, "beta1": 0.5, "beta2": 0.9}],
                         ids=["defaults", "weight-decay", "schedule"])
def test_adam_kernel_gives_the_bits_of_adam_update(dtype, kwargs, kind):
    compiled, compiled_state = _run(True, dtype, kind, **kwargs)
    plain, plain_state = _run(False, dtype, kind, **kwargs)
    for a, b in zip(compiled, plain, strict=True):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)  # the same bits, not merely close
    for a, b in zip(compiled_state["state"], plain_state["state"], strict=True):
        for name in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(a[name], b[name])


@needs_adam
def test_the_kernel_runs_by_default_and_only_where_it_can(monkeypatch):
    calls = []
    real = kernels._KERNELS[("chainrule.optimizers", "Adam")]
    monkeypatch.setitem(kernels._KERNELS, ("chainrule.optimizers", "Adam"),
                        (lambda *a: calls.append(1) or real[0](*a), real[1]))
    p = cr.Parameter(np.ones((4, 6)), "W")
    strided = cr.Parameter(np.ones((4, 6))[:, ::2], "W")
    cr.Adam().step([p, strided])
    assert len(calls) == 1  # the contiguous parameter only
    with kernels.enabled(False):
        cr.Adam().step([p])
    assert len(calls) == 1

    class MyAdam(cr.Adam):  # a subclass with its own _update keeps its own lines
        def _update(self, W, g, state, eta):
            W -= eta * np.sign(g)

    q = cr.Parameter(np.zeros((1, 1)), "W")
    q.grad[...] = 5.0
    MyAdam(lr=0.5).step([q])
    assert len(calls) == 1 and q.data[0, 0] == -0.5


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_without_a_kernel_update_is_what_runs(name, monkeypatch):
    # Each optimizer's plain _update is the code that runs when no kernel takes the step.
    calls = []
    cls = OPTIMIZERS[name]
    real = cls._update
    monkeypatch.setattr(cls, "_update", lambda self, *a: calls.append(1) or real(self, *a))
    p = cr.Parameter(np.ones((2, 2), np.float32), "W")
    p.grad[...] = 1.0
    with kernels.enabled(False):
        cls().step([p])
    assert calls == [1]
