"""The module protocol every layer follows, and a small base class that implements its plumbing.

A module is anything with these members (duck typing: no base class is required, so a
user's own class works in ``Sequential``, ``fit`` and ``gradcheck``):

=========================  ===============================================================
``forward(A) -> A_out``    compute the output and cache exactly what backward needs
``__call__(A)``            the same as ``forward``
``backward(dLdA_out)``     return ``dLdA_in`` from the cache of the last forward, and
                           **overwrite** each parameter's ``.grad`` with this batch's gradient
``parameters()``           a list of :class:`~chainrule.Parameter`, in a stable order
``train()`` / ``eval()``   switch mode; modules start in training mode
=========================  ===============================================================
"""

from __future__ import annotations

import numpy as np

from .parameter import Parameter


class Module:
    """Base class with the protocol's plumbing: ``__call__``, ``parameters``, ``train``/``eval``.

    Subclasses write ``forward`` and ``backward``, and list their parameters in ``_params``.
    ``config()`` returns the constructor arguments, which is how model files record a module.
    """

    training: bool = True
    _params: tuple[str, ...] = ()

    def __call__(self, A: np.ndarray) -> np.ndarray:
        return self.forward(A)

    def forward(self, A: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, dLdA: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def parameters(self) -> list[Parameter]:
        return [getattr(self, name) for name in self._params]

    def train(self) -> Module:
        self.training = True
        return self

    def eval(self) -> Module:
        self.training = False
        return self

    def config(self) -> dict:
        """Constructor keyword arguments that rebuild this module (JSON-friendly values)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def submodules(module) -> list:
    """``module`` and every module inside it (through ``.modules`` lists), in order."""
    found = [module]
    for child in getattr(module, "modules", None) or []:
        found.extend(submodules(child))
    return found


def named_parameters(module, prefix: str = "") -> list[tuple[str, Parameter]]:
    """``[(path, parameter), ...]`` with paths such as ``"modules.0.W"``.

    Uses the module's own ``named_parameters`` when it has one (``Sequential`` does), and
    otherwise names each parameter by its ``.name`` (a user's module needs nothing more);
    a name used twice in one module gets a counter: ``W``, ``W.1``, ...
    """
    if hasattr(module, "named_parameters"):
        return module.named_parameters(prefix)
    named, seen = [], {}
    for p in module.parameters():
        k = seen[p.name] = seen.get(p.name, -1) + 1
        named.append((f"{prefix}{p.name}" + (f".{k}" if k else ""), p))
    return named
