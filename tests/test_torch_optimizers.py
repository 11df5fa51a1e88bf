"""Step-by-step cross-check of every optimizer against torch.optim (optional: needs torch).

A float64 MLP (tanh hidden layer, square loss) is trained for 25 steps twice from the same
weights: once with our optimizer, once with torch's. Both sides take their gradients from the
same torch autograd function of their own current weights, so only the optimizers differ.

Conventions bridged here: torch's ``weight_decay=wd`` adds ``wd·W`` to the gradient, our
``weight_decay=λ`` adds ``2λW``, so torch gets ``2λ``, and only in the param group of the
``"W"`` parameters. A callable ``lr`` is given to torch by setting ``param_group["lr"]``
before each step. torch's ``SGD(momentum=β)`` keeps ``buf = βbuf + g`` and steps ``η·buf``,
which equals our ``V ← βV + η g`` only for a constant η; with a schedule, Momentum is
compared with the closed form written out in torch.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from chainrule.optimizers import OPTIMIZERS  # noqa: E402
from chainrule.parameter import Parameter  # noqa: E402

STEPS = 25
LAMBDA = 0.01


def schedule(t):
    return 0.05 / (1 + 0.1 * t)


# our hyper-parameters (non-default, to exercise each) and the same for torch
CASES = {
    "SGD": ({"lr": 0.05}, lambda ps, lr: torch.optim.SGD(ps, lr=lr)),
    "Momentum": ({"lr": 0.05, "beta": 0.8},
                 lambda ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.8)),
    "Adagrad": ({"lr": 0.05, "eps": 1e-9},
                lambda ps, lr: torch.optim.Adagrad(ps, lr=lr, eps=1e-9)),
    "RMSprop": ({"lr": 0.01, "rho": 0.9, "eps": 1e-7},
                lambda ps, lr: torch.optim.RMSprop(ps, lr=lr, alpha=0.9, eps=1e-7)),
    "Adadelta": ({"lr": 0.8, "rho": 0.85, "eps": 1e-5},
                 lambda ps, lr: torch.optim.Adadelta(ps, lr=lr, rho=0.85, eps=1e-5)),
    "Adam": ({"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-7},
             lambda ps, lr: torch.optim.Adam(ps, lr=lr, betas=(0.8, 0.99), eps=1e-7)),
}

NAMES = ("W", "W0", "W", "W0")


def initial_weights():
    rng = np.random.default_rng(0)
    return [rng.normal(size=(4, 8)) / 2, rng.normal(size=(1, 8)) / 10,
            rng.normal(size=(8, 3)) / 3, rng.normal(size=(1, 3)) / 10]


DATA_RNG = np.random.default_rng(1)
X = torch.tensor(DATA_RNG.normal(size=(16, 4)))
Y = torch.tensor(DATA_RNG.normal(size=(16, 3)))


def loss_of(W1, W01, W2, W02):
    """Mean square loss of the MLP Z = tanh(X W1 + W01) W2 + W02."""
    return ((torch.tanh(X @ W1 + W01) @ W2 + W02 - Y) ** 2).sum(dim=1).mean()


def set_grads(tensors):
    """Each tensor's ``.grad`` := dL/d(tensor) at the tensors' current values."""
    for w in tensors:
        w.grad = None
    loss_of(*tensors).backward()


def run_ours(name, hyper, lr, wd):
    params = [Parameter(w, n) for w, n in zip(initial_weights(), NAMES, strict=True)]
    opt = OPTIMIZERS[name](**{**hyper, "lr": lr}, weight_decay=wd)
    for _ in range(STEPS):
        tensors = [torch.tensor(p.data, requires_grad=True) for p in params]
        set_grads(tensors)
        for p, w in zip(params, tensors, strict=True):
            p.grad[...] = w.grad.numpy()
        opt.step(params)
    return [p.data for p in params]


def torch_params():
    return [torch.tensor(w, requires_grad=True) for w in initial_weights()]


def run_torch(make, lr, wd):
    ws = torch_params()
    groups = [{"params": [w for w, n in zip(ws, NAMES, strict=True) if n == "W"],
               "weight_decay": 2 * wd},
              {"params": [w for w, n in zip(ws, NAMES, strict=True) if n != "W"],
               "weight_decay": 0.0}]
    opt = make(groups, lr if not callable(lr) else lr(1))
    for t in range(1, STEPS + 1):
        if callable(lr):
            for group in opt.param_groups:
                group["lr"] = lr(t)
        set_grads(ws)
        opt.step()
    return [w.detach().numpy() for w in ws]


def run_momentum_closed_form(beta, lr, wd):
    """V ← βV + η(t) (g + 2λW);  W ← W − V, with the gradients from torch."""
    ws = torch_params()
    V = [torch.zeros_like(w) for w in ws]
    for t in range(1, STEPS + 1):
        set_grads(ws)
        with torch.no_grad():
            for w, v, n in zip(ws, V, NAMES, strict=True):
                g = w.grad + 2 * wd * w if n == "W" else w.grad
                v.mul_(beta).add_(lr(t) * g)
                w.sub_(v)
    return [w.detach().numpy() for w in ws]


@pytest.mark.parametrize("scheduled", [False, True], ids=["constant lr", "callable lr"])
@pytest.mark.parametrize("wd", [0.0, LAMBDA], ids=["no decay", "weight decay"])
@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch_optim(name, wd, scheduled):
    hyper, make = CASES[name]
    lr = schedule if scheduled else hyper["lr"]
    ours = run_ours(name, hyper, lr, wd)
    if name == "Momentum" and scheduled:
        theirs = run_momentum_closed_form(hyper["beta"], lr, wd)
    else:
        theirs = run_torch(make, lr, wd)
    start = initial_weights()
    for a, b, w0 in zip(ours, theirs, start, strict=True):
        assert not np.allclose(a, w0)  # the weights did move
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)


def test_momentum_with_schedule_differs_from_torch_sgd_momentum():
    """Why Momentum needs the closed form with a schedule: torch's SGD(momentum) differs."""
    hyper, make = CASES["Momentum"]
    ours = run_ours("Momentum", hyper, schedule, 0.0)
    theirs = run_torch(make, schedule, 0.0)
    assert not np.allclose(ours[0], theirs[0], rtol=1e-6)
