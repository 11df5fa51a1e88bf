"""``chainrule export MODEL --torch out.pt``: a PyTorch ``state_dict`` file and its architecture.

The file is ``torch.save`` of one dict holding only tensors, strings, numbers, lists and dicts,
which ``torch.load(path, weights_only=True)`` reads without running any code: its unpickler
refuses every other object (no classes, no functions). The network is rebuilt from
``torch.nn`` by name, with no chainrule needed::

    saved = torch.load("model.pt", weights_only=True)
    net = torch.nn.Sequential(*(getattr(torch.nn, s["type"])(**s["args"])
                                for s in saved["architecture"]))
    net.load_state_dict(saved["state_dict"], assign=True).eval()  # assign: keeps the dtype

==================  ========================================================================
key                 value
==================  ========================================================================
``format``          ``"chainrule-torch-1"``
``architecture``    ``[{"type": "Linear", "args": {"in_features": 784, ...}}, ...]``: the
                    ``torch.nn`` classes of :func:`~chainrule.export.to_torch`, in order
``state_dict``      that ``torch.nn.Sequential``'s ``state_dict()`` (``"0.weight"``, ...)
``input_mean``,     only for a model with saved feature scaling: ``net`` takes
``input_std``       ``(x − input_mean) / input_std``
``target_mean``,    only for regression: ``net(...) * target_scale + target_mean`` is in
``target_scale``    the targets' units
``classes``         only for classification: the class names, in the order of the outputs
==================  ========================================================================
"""

from __future__ import annotations

import io
import os

import numpy as np

from ..errors import InputError
from ._walk import leaves
from .torch_modules import to_torch_module

FORMAT = "chainrule-torch-1"


def save_torch(model, path: str | os.PathLike, *, standardise=None, unstandardise=None,
               classes=None) -> None:
    """Write ``model`` (nested ``Sequential`` flattened) as described above, atomically.

    ``standardise=(mean, std)`` and ``unstandardise=(mean, scale)`` are stored as
    ``input_*`` and ``target_*`` tensors, ``classes`` as a list of strings.
    """
    from ..serialization import atomic_write_bytes
    atomic_write_bytes(path, torch_bytes(model, standardise=standardise,
                                         unstandardise=unstandardise, classes=classes))


def torch_bytes(model, *, standardise=None, unstandardise=None, classes=None) -> bytes:
    """The bytes :func:`save_torch` writes: a model torch cannot take raises here, before
    anything is written."""
    import torch

    modules = leaves(model, "chainrule export --torch")
    net = torch.nn.Sequential(*(to_torch_module(path, m) for path, m in modules)).eval()
    saved = {"format": FORMAT, "architecture": [_spec(path, m) for (path, _), m in
                                                zip(modules, net, strict=True)],
             "state_dict": dict(net.state_dict())}
    for prefix, pair in (("input", standardise), ("target", unstandardise)):
        if pair is not None:
            second = "std" if prefix == "input" else "scale"
            saved[f"{prefix}_mean"] = torch.from_numpy(np.array(pair[0], np.float64).ravel())
            saved[f"{prefix}_{second}"] = torch.from_numpy(np.array(pair[1],
                                                                    np.float64).ravel())
    if classes is not None:
        saved["classes"] = [str(c) for c in classes]
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    return buffer.getvalue()


def _spec(path: str, m) -> dict:
    """The ``torch.nn`` class name and constructor arguments of ``m``, a torch module."""
    import torch
    nn = torch.nn
    cls = type(m)
    if cls is nn.Linear:
        args = {"in_features": m.in_features, "out_features": m.out_features}
    elif cls is nn.BatchNorm1d:
        args = {"num_features": m.num_features, "eps": m.eps, "momentum": m.momentum}
    elif cls is nn.Softmax:
        args = {"dim": m.dim}
    elif cls is nn.LeakyReLU:
        args = {"negative_slope": m.negative_slope}
    elif cls is nn.Dropout:
        args = {"p": m.p}
    elif cls in (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Identity):
        args = {}
    else:  # Step: chainrule's own torch module, which torch.nn cannot rebuild by name
        raise InputError(f"chainrule export --torch cannot write {path} ({cls.__name__}): "
                         "torch.nn has no such module; use chainrule.export.to_torch in Python")
    return {"type": cls.__name__, "args": args}
