"""``Sequential``: a network as a list of modules, forward in order and backward in reverse."""

from __future__ import annotations

import numpy as np

from .._validate import as_float_matrix, check_int
from ..buffer import ParameterBuffer
from ..errors import InputError
from ..module import named_parameters

_PROTOCOL = ("__call__", "forward", "backward", "parameters", "train", "eval")


class Sequential:
    """Modules applied one after the other: ``A⁰ = X``, ``Aˡ = moduleₗ(Aˡ⁻¹)``.

    Backward runs the chain rule from the loss back to the input::

        dL/dAˡ⁻¹ = moduleₗ.backward(dL/dAˡ)      for l = L, ..., 1

    ``modules`` holds the very objects given (not copies). Any object with ``__call__``,
    ``forward``, ``backward``, ``parameters``, ``train`` and ``eval`` may be a module.

    Example
    -------
    >>> import chainrule as cr
    >>> model = cr.Sequential(cr.Linear(64, 32, rng=0), cr.ReLU(),
    ...                       cr.Linear(32, 10, rng=1), cr.Softmax())
    >>> loss = cr.NLLM()
    >>> X = np.zeros((8, 64), np.float32); y = np.arange(8)
    >>> value = loss(model(X), y)          # forward and loss
    >>> dLdX = model.backward_from(loss)   # backward; each Parameter's .grad is set
    """

    def __init__(self, *modules):
        for i, module in enumerate(modules):
            if isinstance(module, type):
                raise InputError(f"Sequential expected module instances; module {i} is the "
                                 f"class {module.__name__}: write {module.__name__}(...)")
            missing = [m for m in _PROTOCOL if not hasattr(module, m)]
            if missing:
                raise InputError(
                    f"Sequential expected modules with {', '.join(_PROTOCOL)}; "
                    f"module {i} ({type(module).__name__}) has no {', '.join(missing)}"
                )
        self.modules = list(modules)
        self._buffer = ParameterBuffer.build(self.named_parameters())
        self.training = True
        self.A = None  # the last output, so backward_from can check the loss saw it

    # -- the protocol -------------------------------------------------------------------
    def __call__(self, X):
        return self.forward(X)

    def forward(self, X) -> np.ndarray:
        """``X: (n_samples, n_features) -> Aᴸ``; ``X`` is cast to the model's dtype."""
        A = np.asarray(X)
        dtype = self.dtype
        if dtype is not None and A.dtype != dtype:
            A = A.astype(dtype)
        for module in self.modules:
            A = module.forward(A)
        self.A = A
        return A

    def backward(self, dLdA: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """Back-propagate ``dL/dAᴸ`` through every module; return ``dL/dX``.

        With ``input_grad=False`` (what ``fit`` uses) ``dL/dX`` is not computed and None is
        returned: the first module with parameters only computes its parameters' gradients
        (for a first ``Linear``, this saves the product ``dL/dZ @ W.T``), and modules before
        it are skipped.
        """
        return self._backward(len(self.modules), dLdA, input_grad)

    def backward_from(self, loss, *, input_grad: bool = True) -> np.ndarray | None:
        """Back-propagate the loss last computed on this model's output; return ``dL/dX``.

        When the last module is ``Softmax`` and the loss ``NLLM``, or ``Sigmoid`` and
        ``NLL``, the two derivatives are fused (Concept 19 of the notes suggests computing
        ∂L/∂Zᴸ directly; the formula is derived in docs/notes/losses.md): the loss gradient
        ``dL/dZᴸ = (Aᴸ − Y)/n`` (``/n`` only for ``reduction="mean"``) goes straight to the
        module before the activation, which is both faster and exact where the activation
        saturates. ``input_grad`` is as in :meth:`backward`.
        """
        if self.A is None or getattr(loss, "A", None) is not self.A:
            raise InputError(
                "backward_from(loss) expected a loss last computed on this model's output, "
                "as in loss(model(X), Y); got a loss computed on another array"
            )
        last = self.modules[-1] if self.modules else None
        fused = getattr(loss, "fused_backward", None)
        if fused is not None and isinstance(last, loss.fuses_with):
            return self._backward(len(self.modules) - 1, fused(), input_grad)
        return self._backward(len(self.modules), loss.backward(), input_grad)

    def _backward(self, end: int, dLdA, input_grad: bool):
        """Chain rule through ``modules[:end]`` in reverse, from ``dLdA`` at their output."""
        first = 0
        if not input_grad:  # modules before the first with parameters need no backward
            while first < end and not self.modules[first].parameters():
                first += 1
        for i in range(end - 1, first - 1, -1):
            module = self.modules[i]
            if i == first and not input_grad and hasattr(module, "backward_params"):
                module.backward_params(dLdA)
                return None
            dLdA = module.backward(dLdA)
        return dLdA if input_grad else None

    def parameters(self) -> list:
        return [p for module in self.modules for p in module.parameters()]

    @property
    def parameter_buffer(self) -> ParameterBuffer | None:
        """The model's parameters in flat memory (:mod:`chainrule.buffer`), or None when they
        cannot share one array (mixed dtypes, a parameter used twice, none at all).

        Parameters whose arrays were rebound since (a deep copy of the model, an assignment
        to ``p.data``) are gathered back into it; a changed list of modules, or a parameter of
        another shape or dtype, gets a new one.
        """
        buffer, params = self._buffer, self.parameters()
        if buffer is not None and buffer.fits(params):
            if not buffer.intact():
                buffer.gather()
            return buffer
        self._buffer = ParameterBuffer.build(self.named_parameters())
        return self._buffer

    def named_parameters(self, prefix: str = "") -> list:
        """``[(path, Parameter)]`` with paths ``"modules.0.W"``, ``"modules.0.W0"``, ..."""
        return [
            pair
            for i, module in enumerate(self.modules)
            for pair in named_parameters(module, f"{prefix}modules.{i}.")
        ]

    def train(self) -> Sequential:
        self.training = True
        for module in self.modules:
            module.train()
        return self

    def eval(self) -> Sequential:
        self.training = False
        for module in self.modules:
            module.eval()
        return self

    # -- using a trained model ---------------------------------------------------------
    @property
    def dtype(self) -> np.dtype | None:
        """The dtype of the first parameter (None for a model without parameters)."""
        for module in self.modules:  # the first module with parameters decides
            params = module.parameters()
            if params:
                return params[0].data.dtype
        return None

    def predict(self, X, batch_size: int | None = None) -> np.ndarray:
        """The model's output ``Aᴸ`` for ``X``, computed in eval mode.

        The mode of every module is restored afterwards and gradients are untouched.
        ``batch_size`` bounds memory for large ``X`` (None: all rows at once).
        """
        X = as_float_matrix(X, "X", "predict", self.dtype)
        check_int("predict", "batch_size", batch_size, 1, or_none=True)
        was_training = self.training
        # a module without a readable mode is put back in the model's own mode
        modes = [getattr(m, "training", was_training) for m in self.modules]
        self.eval()
        try:
            step = batch_size or len(X)
            outs = [self.forward(X[i : i + step]) for i in range(0, len(X), step)]
        finally:
            self.training = was_training
            for module, mode in zip(self.modules, modes, strict=True):
                module.train() if mode else module.eval()
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    def __len__(self) -> int:
        return len(self.modules)

    def __getitem__(self, i):
        return self.modules[i]

    def __repr__(self) -> str:
        inner = ",\n".join(f"  {m!r}" for m in self.modules)
        return f"Sequential(\n{inner}\n)"

