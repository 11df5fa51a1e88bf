"""Every gradient of every module and loss against PyTorch autograd, to 1e-10 in float64.

Each row of ``cases.MODULES`` and ``cases.LOSSES`` is rebuilt in PyTorch with the same numbers:

* ``Linear``: our ``W`` is (m, n) and ``Z = A W + W0``; torch's weight is (n, m), so it is ``Wᵀ``.
* ``Dropout``: torch draws its own masks, so the torch side multiplies by the mask ours drew.
* ``BatchNorm``: ``torch.nn.functional.batch_norm`` with ``training`` as ours, the same
  momentum convention and the unbiased batch variance in ``running_var``; the running
  statistics are compared after the forward too.
* ``SquareLoss`` is the *sum* over outputs of squared errors, averaged over samples:
  ``mse_loss(reduction="sum") / n``. ``NLLM`` after ``Softmax`` is ``nll_loss(log(softmax))``.
* ReLU's derivative at exactly 0 is a convention (ours 1, torch's 0): the data are random.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import chainrule as cr  # noqa: E402
from cases import LOSS_IDS, LOSSES, MODULE_IDS, MODULES, REDUCTIONS  # noqa: E402

TOL = {"rtol": 1e-10, "atol": 1e-12}


def _leaf(a) -> torch.Tensor:
    return torch.tensor(np.array(a, dtype=np.float64), requires_grad=True)


class TorchTwin:
    """Replays a chainrule model in PyTorch, with leaves for every parameter.

    Built *before* our forward (so BatchNorm starts from the same running statistics); the
    Dropout masks are read from our modules when ``forward`` runs, after ours drew them.
    """

    def __init__(self, model):
        self.model = model
        self.pairs = []  # (our Parameter, torch leaf, to_ours: tensor grad -> our layout)
        self.buffers = {}  # id(BatchNorm) -> (running_mean, running_var) tensors
        self._prepare(model)

    def _prepare(self, m):
        for sub in getattr(m, "modules", []):
            self._prepare(sub)
        if isinstance(m, cr.Linear):
            self.pairs += [(m.W, _leaf(m.W.data.T), lambda g: g.T),
                           (m.W0, _leaf(m.W0.data.reshape(-1)), lambda g: g.reshape(1, -1))]
        elif isinstance(m, cr.BatchNorm):
            self.pairs += [(m.G, _leaf(m.G.data.reshape(-1)), lambda g: g.reshape(1, -1)),
                           (m.B, _leaf(m.B.data.reshape(-1)), lambda g: g.reshape(1, -1))]
            self.buffers[id(m)] = (torch.tensor(m.running_mean.reshape(-1).astype(np.float64)),
                                   torch.tensor(m.running_var.reshape(-1).astype(np.float64)))

    def _leaf_of(self, p):
        return next(t for q, t, _ in self.pairs if q is p)

    def forward(self, x, m=None):
        m = self.model if m is None else m
        if isinstance(m, cr.Sequential):
            for sub in m.modules:
                x = self.forward(x, sub)
            return x
        if isinstance(m, cr.Linear):
            return F.linear(x, self._leaf_of(m.W), self._leaf_of(m.W0))
        if isinstance(m, cr.BatchNorm):
            mean, var = self.buffers[id(m)]
            return F.batch_norm(x, mean, var, self._leaf_of(m.G), self._leaf_of(m.B),
                                training=m.training, momentum=m.momentum, eps=m.eps)
        if isinstance(m, cr.Dropout):
            return x if m.mask is None else x * torch.tensor(m.mask.astype(np.float64))
        if isinstance(m, cr.Step):
            return (x >= 0).to(x.dtype) + 0 * x  # flat: derivative 0 (and dL/dX defined)
        if isinstance(m, cr.LeakyReLU):
            return F.leaky_relu(x, m.alpha)
        simple = {cr.ReLU: torch.relu, cr.Sigmoid: torch.sigmoid, cr.Tanh: torch.tanh,
                  cr.Identity: lambda t: t, cr.Softmax: lambda t: torch.softmax(t, dim=1)}
        return simple[type(m)](x)


def torch_loss(loss, a: torch.Tensor, Y) -> torch.Tensor:
    """Our loss, in torch: the sum over samples, then / n for reduction="mean"."""
    n = a.shape[0]
    Y = np.asarray(Y)
    if isinstance(loss, cr.NLLM) and Y.ndim == 1:
        total = F.nll_loss(torch.log(a), torch.tensor(Y, dtype=torch.long), reduction="sum")
    else:
        y = torch.tensor(Y.reshape(a.shape).astype(np.float64))
        total = {
            cr.SquareLoss: lambda: F.mse_loss(a, y, reduction="sum"),
            cr.AbsoluteLoss: lambda: F.l1_loss(a, y, reduction="sum"),
            cr.NLL: lambda: F.binary_cross_entropy(a, y, reduction="sum"),
            cr.NLLM: lambda: -(y * torch.log(a)).sum(),
        }[type(loss)]()
    return total / n if loss.reduction == "mean" else total


def _compare(model, loss, X, Y, *, fused=True):
    """Forward, loss and backward in both libraries; every number must agree to 1e-10."""
    twin = TorchTwin(model)
    ours_A = model(X)
    ours_L = loss(ours_A, Y)
    if fused and hasattr(model, "backward_from"):
        ours_dX = model.backward_from(loss)
    else:
        ours_dX = model.backward(loss.backward())

    x = _leaf(X)
    a = twin.forward(x)
    L = torch_loss(loss, a, Y)
    L.backward()

    np.testing.assert_allclose(ours_A, a.detach().numpy(), **TOL)
    assert ours_L == pytest.approx(L.item(), rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(ours_dX, x.grad.numpy(), **TOL)
    assert len(twin.pairs) == len(model.parameters())
    for ours, leaf, to_ours in twin.pairs:
        np.testing.assert_allclose(ours.grad, to_ours(leaf.grad.numpy()), **TOL,
                                   err_msg=f"dL/d{ours.name}")
    for m in _all_modules(model):
        if isinstance(m, cr.BatchNorm):
            mean, var = twin.buffers[id(m)]
            np.testing.assert_allclose(m.running_mean.reshape(-1), mean.numpy(), **TOL)
            np.testing.assert_allclose(m.running_var.reshape(-1), var.numpy(), **TOL)


def _all_modules(model):
    found = [model]
    for sub in getattr(model, "modules", []):
        found += _all_modules(sub)
    return found


@pytest.mark.parametrize("case", MODULES, ids=MODULE_IDS)
def test_every_module_matches_torch(case):
    model = case.make(np.float64)
    X = case.inputs(n=6)
    Y = np.random.default_rng(1).normal(size=(6, case.n_out))
    _compare(model, cr.SquareLoss(), X, Y)


@pytest.mark.parametrize("case", MODULES, ids=MODULE_IDS)
def test_every_module_matches_torch_on_a_second_batch(case):
    # A second step: BatchNorm's running statistics have moved, Dropout draws a new mask.
    model = case.make(np.float64)
    r = np.random.default_rng(2)
    model(case.inputs(n=5, seed=3))
    _compare(model, cr.SquareLoss(reduction="sum"), case.inputs(n=4, seed=4),
             r.normal(size=(4, case.n_out)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", LOSSES, ids=LOSS_IDS)
def test_every_loss_matches_torch(case, reduction):
    A, Y = case.data(n=6)
    loss = case.make(reduction)
    value = loss(A, Y)
    a = _leaf(A)
    L = torch_loss(loss, a, Y)
    L.backward()
    assert value == pytest.approx(L.item(), rel=1e-12)
    np.testing.assert_allclose(loss.backward(), a.grad.numpy(), **TOL)


@pytest.mark.parametrize("fused", [True, False], ids=["backward_from", "backward"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", LOSSES, ids=LOSS_IDS)
def test_networks_ending_in_each_loss_match_torch(case, reduction, fused):
    last = case.activation() if case.activation is not None else cr.Identity()
    model = cr.Sequential(cr.Linear(3, 5, rng=0, dtype=np.float64),
                          cr.BatchNorm(5, dtype=np.float64), cr.ReLU(),
                          cr.Linear(5, case.k, rng=1, dtype=np.float64), last)
    X = np.random.default_rng(0).normal(size=(6, 3))
    _, Y = case.data(n=6)
    _compare(model, case.make(reduction), X, Y, fused=fused)


def test_float32_model_agrees_with_torch_to_float32_precision():
    # The same comparison in float32 (ours) against float64 torch: ≈ 1e-6 relative.
    case = MODULES[MODULE_IDS.index("seq-regularized-train")]
    model = case.make(np.float32)
    twin = TorchTwin(model)
    X = case.inputs(n=6, dtype=np.float32)
    loss = cr.SquareLoss()
    loss(model(X), np.zeros((6, 2)))
    model.backward_from(loss)
    L = torch_loss(loss, twin.forward(_leaf(X)), np.zeros((6, 2)))
    L.backward()
    for ours, leaf, to_ours in twin.pairs:
        assert ours.grad.dtype == np.float32
        np.testing.assert_allclose(ours.grad, to_ours(leaf.grad.numpy()), rtol=2e-4, atol=1e-6)
