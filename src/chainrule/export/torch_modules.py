"""``to_torch`` and ``from_torch``: a chainrule model as a ``torch.nn.Sequential`` and back.

=====================================  =================================================
chainrule                              torch.nn
=====================================  =================================================
``Linear(m, n)``: W (m, n), W0 (1, n)  ``Linear(m, n)``: ``weight`` = Wᵀ (n, m),
                                       ``bias`` = W0 as (n,)
``ReLU``, ``Sigmoid``, ``Tanh``,       ``ReLU``, ``Sigmoid``, ``Tanh``, ``Identity``
``Identity``
``Softmax`` (over each row)            ``Softmax(dim=-1)`` (``dim=1`` is taken too)
``LeakyReLU(alpha)``                   ``LeakyReLU(negative_slope=alpha)``
``Dropout(p)``                         ``Dropout(p)``: both inverted dropout
``BatchNorm(n, eps, momentum)``        ``BatchNorm1d(n, eps, momentum)``: ``weight`` = G,
                                       ``bias`` = B and the running statistics; the same
                                       momentum convention and unbiased running variance
``Step``                               :func:`step_module`'s ``Step`` (torch has none)
``Sequential`` (nested too)            ``Sequential`` (nested the same way)
=====================================  =================================================

Each module keeps its mode (train or eval) and its dtype, and the numbers are copied, so the
two models share no memory. Both directions translate only these classes themselves: a
subclass or any other module is an error that names it. Going there and back gives the same
bits in every weight and setting.

Two settings of chainrule's have no ``torch.nn`` twin and are refused by ``to_torch``:
``Dropout(scaling="notes")`` (torch's dropout is the inverted one) and
``BatchNorm(eps_inside="std")`` (``BatchNorm1d`` adds eps to the variance). ``from_torch``
refuses ``BatchNorm1d`` without running statistics or with ``momentum=None`` (a cumulative
average), which chainrule's ``BatchNorm`` does not do, and any module with forward, forward
pre-, backward or backward pre-hooks (or while torch has such hooks registered globally):
chainrule's modules have no hooks, so the import would compute something else.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import InputError
from ..layers import (
    BatchNorm,
    Dropout,
    Identity,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Step,
    Tanh,
)
from ._walk import children, unsupported

_SIMPLE = {ReLU: "ReLU", Sigmoid: "Sigmoid", Tanh: "Tanh", Identity: "Identity"}
_TO_TORCH_KNOWN = ["Linear", "ReLU", "Sigmoid", "Tanh", "Identity", "Softmax", "LeakyReLU",
                   "Dropout", "BatchNorm", "Step", "Sequential"]
_FROM_TORCH_KNOWN = [f"torch.nn.{n}" for n in (
    "Linear", "ReLU", "Sigmoid", "Tanh", "Identity", "Softmax", "LeakyReLU", "Dropout",
    "BatchNorm1d", "Sequential")] + ["chainrule's torch Step"]


@functools.cache
def step_module():
    """The class ``Step``, a ``torch.nn.Module`` with chainrule's step f(z) = 1 if z ≥ 0 else
    0, for ``to_torch`` (PyTorch has no such module). Its gradient is 0, as chainrule's."""
    import torch

    class Step(torch.nn.Module):
        """f(z) = 1 if z ≥ 0 else 0, in z's dtype; f′(z) = 0."""

        def forward(self, z):
            return (z >= 0).to(z.dtype)

    return Step


def _tensor(A: np.ndarray):
    import torch
    return torch.from_numpy(np.array(A, copy=True, order="C"))


def to_torch(model):
    """``model`` as a ``torch.nn.Sequential`` with the same weights, settings and modes.

    Parameters
    ----------
    model : chainrule.Sequential (nested ones too) or one chainrule module

    Returns
    -------
    torch.nn.Sequential
        Its ``i``-th module is ``model.modules[i]``'s twin (see the table above); in eval
        mode its outputs equal ``model.predict`` (to float rounding of the matrix products).

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule.export import to_torch
    >>> net = to_torch(cr.Sequential(cr.Linear(4, 2, rng=0), cr.Softmax()))  # doctest: +SKIP
    >>> net                                                                # doctest: +SKIP
    Sequential(
      (0): Linear(in_features=4, out_features=2, bias=True)
      (1): Softmax(dim=-1)
    )
    """
    import torch
    seq = torch.nn.Sequential(*(to_torch_module(path, m)
                                for path, m in children(model, "to_torch")))
    seq.training = getattr(model, "training", True)  # not .train(): each module keeps its mode
    return seq


def to_torch_module(path: str, m):
    """The ``torch.nn`` twin of chainrule module ``m`` at ``path`` (see the table above)."""
    import torch
    nn, cls = torch.nn, type(m)
    if cls is Sequential:
        out = nn.Sequential(*(to_torch_module(f"{path}.{sub}", s)
                              for sub, s in children(m, "to_torch")))
    elif cls is Linear:
        # skip_init: torch's random initial weights would be overwritten, and drawing them
        # would move torch's global generator
        out = nn.utils.skip_init(nn.Linear, m.m, m.n, dtype=_torch_dtype(m.W.data.dtype))
        with torch.no_grad():
            out.weight.copy_(_tensor(m.W.data.T))  # torch keeps (n, m): Wᵀ
            out.bias.copy_(_tensor(m.W0.data.reshape(-1)))
    elif cls in _SIMPLE:
        out = getattr(nn, _SIMPLE[cls])()
    elif cls is Softmax:
        out = nn.Softmax(dim=-1)
    elif cls is LeakyReLU:
        out = nn.LeakyReLU(negative_slope=m.alpha)
    elif cls is Step:
        out = step_module()()
    elif cls is Dropout:
        if getattr(m, "scaling", "inverted") != "inverted":
            raise InputError(f"to_torch cannot translate {path}, Dropout(p={m.p}, "
                             f"scaling={m.scaling!r}): torch.nn.Dropout is inverted dropout "
                             "only; use scaling='inverted'")
        out = nn.Dropout(m.p)
    elif cls is BatchNorm:
        if getattr(m, "eps_inside", "variance") != "variance":
            raise InputError(f"to_torch cannot translate {path}, BatchNorm({m.n}, "
                             f"eps_inside={m.eps_inside!r}): torch.nn.BatchNorm1d computes "
                             "(z − μ)/sqrt(σ² + eps) only; use eps_inside='variance'")
        out = nn.BatchNorm1d(m.n, eps=m.eps, momentum=m.momentum,
                             dtype=_torch_dtype(m.G.data.dtype))
        with torch.no_grad():
            for theirs, ours in ((out.weight, m.G.data), (out.bias, m.B.data),
                                 (out.running_mean, m.running_mean),
                                 (out.running_var, m.running_var)):
                theirs.copy_(_tensor(ours.reshape(-1)))
    else:
        raise unsupported("to_torch", path, m, _TO_TORCH_KNOWN)
    out.training = getattr(m, "training", True)
    return out


def _torch_dtype(dtype: np.dtype):
    import torch
    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[dtype]


def from_torch(module) -> Sequential:
    """A chainrule ``Sequential`` from live PyTorch modules, with the same weights and modes.

    Parameters
    ----------
    module : torch.nn.Sequential (nested ones too) or one module of the table above
        Module objects, never a file: nothing is unpickled.

    Returns
    -------
    chainrule.Sequential
        ``Linear`` weights are float32 or float64 as torch's (others are refused); a
        ``Linear(bias=False)`` gets W0 = 0 and a ``BatchNorm1d(affine=False)`` G = 1, B = 0.
        Anything outside the table raises :class:`~chainrule.ChainruleError` naming the
        module's path and class.

    Example
    -------
    >>> import torch                                                       # doctest: +SKIP
    >>> from chainrule.export import from_torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
    ...                           torch.nn.Linear(8, 1), torch.nn.Sigmoid())  # doctest: +SKIP
    >>> model = from_torch(net)                                            # doctest: +SKIP
    >>> model.modules[0].W.data.shape                                      # doctest: +SKIP
    (4, 8)
    """
    import torch
    _refuse_global_hooks()
    if type(module) is torch.nn.Sequential:
        _refuse_hooks("the model", module)
        model = Sequential(*(_from_torch(str(name), m) for name, m in module.named_children()))
    else:
        model = Sequential(_from_torch("0", module))
    model.training = module.training  # not .train(): each module keeps its mode
    return model


# hooks that change what a module computes or its gradients; chainrule's modules have none
_HOOKS = {"_forward_pre_hooks": "forward pre-hook", "_forward_hooks": "forward hook",
          "_backward_pre_hooks": "backward pre-hook", "_backward_hooks": "backward hook"}


def _refuse_hooks(path: str, m) -> None:
    """A module with hooks computes more than its class says: refuse it by path."""
    found = [kind for attr, kind in _HOOKS.items() if getattr(m, attr, None)]
    if found:
        cls = type(m)
        raise InputError(f"from_torch cannot translate {path}, a {cls.__module__}."
                         f"{cls.__qualname__} with a {' and a '.join(found)}: the chainrule "
                         "model would compute without it; expected a module without hooks "
                         "(remove them with the handle register_*_hook returned)")


def _refuse_global_hooks() -> None:
    """torch.nn.modules.module's global hooks run around every module's forward."""
    from torch.nn.modules import module as torch_module
    found = [kind for attr, kind in _HOOKS.items()
             if getattr(torch_module, f"_global{attr}", None)]
    if found:
        raise InputError(f"from_torch cannot translate a model while a global "
                         f"{' and a '.join(found)} is registered (torch.nn.modules.module."
                         "register_module_*_hook): the chainrule model would compute without "
                         "it; remove it first")


def _from_torch(path: str, m):
    import torch
    nn, cls = torch.nn, type(m)
    _refuse_hooks(path, m)
    if cls is nn.Sequential:
        out = Sequential(*(_from_torch(f"{path}.{name}", s) for name, s in m.named_children()))
    elif cls is nn.Linear:
        dtype = _numpy_dtype(path, m.weight)
        out = Linear(m.in_features, m.out_features, rng=0, dtype=dtype)
        out.W.data[...] = _array(m.weight).T
        out.W0.data[...] = 0 if m.bias is None else _array(m.bias).reshape(1, -1)
    elif cls is nn.ReLU:
        out = ReLU()
    elif cls is nn.Sigmoid:
        out = Sigmoid()
    elif cls is nn.Tanh:
        out = Tanh()
    elif cls is nn.Identity:
        out = Identity()
    elif cls is nn.Softmax:
        if m.dim not in (-1, 1):
            raise InputError(f"from_torch cannot translate {path}, Softmax(dim={m.dim}): "
                             "chainrule's Softmax is over each row, expected dim=-1 or dim=1")
        out = Softmax()
    elif cls is nn.LeakyReLU:
        out = LeakyReLU(m.negative_slope)
    elif cls is nn.Dropout:
        out = Dropout(m.p)
    elif cls is nn.BatchNorm1d:
        out = _batchnorm(path, m)
    elif cls is step_module():
        out = Step()
    else:
        raise unsupported("from_torch", path, m, _FROM_TORCH_KNOWN)
    out.training = m.training
    return out


def _batchnorm(path: str, m) -> BatchNorm:
    if not m.track_running_stats or m.running_mean is None:
        raise InputError(f"from_torch cannot translate {path}, {m}: chainrule's BatchNorm "
                         "needs running statistics (track_running_stats=True)")
    if m.momentum is None:
        raise InputError(f"from_torch cannot translate {path}, {m}: chainrule's BatchNorm "
                         "expected a number as momentum, got None (a cumulative average)")
    dtype = _numpy_dtype(path, m.running_mean)
    out = BatchNorm(m.num_features, eps=m.eps, momentum=m.momentum, dtype=dtype)
    if m.affine:  # without, G = 1 and B = 0 as a new BatchNorm has them
        out.G.data[...] = _array(m.weight).reshape(1, -1)
        out.B.data[...] = _array(m.bias).reshape(1, -1)
    out.running_mean[...] = _array(m.running_mean).reshape(1, -1)
    out.running_var[...] = _array(m.running_var).reshape(1, -1)
    return out


def _numpy_dtype(path: str, t) -> np.dtype:
    import torch
    dtypes = {torch.float32: np.float32, torch.float64: np.float64}
    if t.dtype not in dtypes:
        raise InputError(f"from_torch cannot translate {path}: expected float32 or float64 "
                         f"weights, got {t.dtype}")
    return np.dtype(dtypes[t.dtype])


def _array(t) -> np.ndarray:
    return t.detach().cpu().numpy()
