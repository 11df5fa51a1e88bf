"""``gradcheck``: compare back-propagation's gradients with central finite differences."""

from __future__ import annotations

import copy
import numbers
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .module import named_parameters, submodules
from .parameter import Parameter

OK_BELOW = 1e-4


@dataclass
class GradcheckReport:
    """Result of :func:`gradcheck`.

    ``errors`` maps each parameter path (``"modules.0.W"``) to its relative error
    ``‖a − n‖₂ / max(‖a‖₂ + ‖n‖₂, 1e-4)`` (a analytic, n numeric); ``input_error`` is the
    same for ``dL/dX``, which is what checks modules without parameters. Each error lies in
    [0, 1]; a gradient of the wrong shape or with a NaN or inf counts as 1.0. ``ok`` is
    ``max_rel_error < 1e-4``.
    """

    errors: dict[str, float] = field(default_factory=dict)
    input_error: float = 0.0

    @property
    def max_rel_error(self) -> float:
        return max([self.input_error, *self.errors.values()])

    @property
    def ok(self) -> bool:
        return self.max_rel_error < OK_BELOW

    def __str__(self) -> str:
        rows = [*self.errors.items(), ("dL/dX (input)", self.input_error)]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {err:.2e}  {'ok' if err < OK_BELOW else 'NOT OK'}"
                 for name, err in rows]
        verdict = "ok" if self.ok else "not ok"
        return "\n".join([*lines, f"gradcheck: {verdict} (max relative error "
                                  f"{self.max_rel_error:.2e}, threshold {OK_BELOW:.0e})"])


def _rel_error(a, n: np.ndarray) -> float:
    """``‖a − n‖ / max(‖a‖ + ‖n‖, 1e-4)``, which lies in [0, 1].

    A gradient of the wrong shape (it would broadcast, or fail to) or with a NaN or inf gets
    the worst value, 1.0, so it can never pass as ok (``max`` would drop a NaN).
    """
    a = np.asarray(a, dtype=np.float64) if a is not None else None
    if a is None or a.shape != n.shape:
        return 1.0
    err = float(np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), 1e-4))
    return err if np.isfinite(err) else 1.0


RANDOM = (np.random.Generator, np.random.RandomState, np.random.BitGenerator)


def _held_modules(model) -> list:
    """``model`` and every module inside it: through ``.modules`` lists and through attributes
    holding a module (an object with ``forward`` and ``backward``), each once."""
    found, seen, stack = [], set(), [model]
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        found.append(m)
        children = list(getattr(m, "modules", None) or [])
        children += [v for v in getattr(m, "__dict__", {}).values()
                     if not isinstance(v, type) and callable(getattr(v, "forward", None))
                     and callable(getattr(v, "backward", None))]
        stack.extend(reversed(children))
    return found


def _random_sources(model) -> list:
    """Every random source the modules of ``model`` hold as an attribute: a
    ``numpy.random.Generator`` (``Dropout.rng``, also one wrapping a RandomState's bit
    generator), a legacy ``numpy.random.RandomState`` or a bare bit generator."""
    found, seen = [], set()
    for module in _held_modules(model):
        for value in getattr(module, "__dict__", {}).values():
            if isinstance(value, RANDOM) and id(value) not in seen:
                seen.add(id(value))
                found.append(value)
    return found


def _replayer(sources: list):
    """A function that puts each random source back to its state now, so that every forward
    of a finite difference draws the same dropout mask.

    A Generator's (and a bit generator's) state is its bit generator's; a RandomState's is
    ``get_state(legacy=False)``, which also holds its cached Gaussian. A Generator sharing a
    RandomState's bit generator is put back with it either way.
    """
    states = [s.get_state(legacy=False) if isinstance(s, np.random.RandomState)
              else (s.bit_generator.state if isinstance(s, np.random.Generator) else s.state)
              for s in sources]

    def replay() -> None:
        for source, state in zip(sources, states, strict=True):
            if isinstance(source, np.random.RandomState):
                source.set_state(state)
            elif isinstance(source, np.random.Generator):
                source.bit_generator.state = state
            else:
                source.state = state

    return replay


def _to_float64(model) -> list:
    """Cast every float array and Parameter held by the (copied) model to float64.

    Returns the random sources found on the modules (:func:`_random_sources`), so each
    forward can replay the same draws (a dropout mask must not change between the two sides
    of a difference).
    """
    for p in model.parameters():  # also those a user's module keeps in a list
        p.data = p.data.astype(np.float64)
        p.grad = np.zeros_like(p.data)
    for module in submodules(model):
        for name, value in list(getattr(module, "__dict__", {}).items()):
            if isinstance(value, Parameter):
                if value.data.dtype != np.float64:
                    value.data = value.data.astype(np.float64)
                    value.grad = np.zeros_like(value.data)
            elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
                setattr(module, name, value.astype(np.float64))
    return _random_sources(model)


def gradcheck(model, loss, X, Y, *, eps: float = 1e-6) -> GradcheckReport:
    """Check ``model``'s backward pass against central differences, in float64.

    For every parameter entry w and every input entry x::

        numeric dL/dw ≈ (L(w + eps) − L(w − eps)) / (2 eps)

    compared with back-propagation's ``.grad``. Works on a deep copy cast to float64, so
    the model's weights, gradients, mode and running statistics are left as they were. Any
    ``numpy.random.Generator`` or ``numpy.random.RandomState`` held by a module (e.g.
    ``Dropout.rng``, a user's ``self.rng = np.random.RandomState(0)``) is replayed from the
    same state for every evaluation, so random masks stay fixed. Cost: two forwards per
    entry, so keep ``X`` small (a few rows).

    Returns a :class:`GradcheckReport`; ``print(report)`` shows one line per parameter.
    """
    if not (isinstance(eps, numbers.Real) and 0 < eps < 1):
        raise InputError(f"gradcheck expected eps in (0, 1), got {eps!r}")
    model = copy.deepcopy(model)
    loss = copy.deepcopy(loss)
    replay = _replayer(_to_float64(model))
    X = np.array(X, dtype=np.float64)

    def value() -> float:
        replay()
        return loss(model(X), Y)

    value()
    if hasattr(model, "backward_from"):
        dLdX = model.backward_from(loss)
    else:
        dLdX = model.backward(loss.backward())
    report = GradcheckReport()
    for path, p in named_parameters(model):
        report.errors[path] = _rel_error(p.grad.copy(), _numeric(value, p.data, eps))
    report.input_error = _rel_error(dLdX, _numeric(value, X, eps))
    return report


def _numeric(value, W: np.ndarray, eps: float) -> np.ndarray:
    """Central differences of ``value()`` with respect to each entry of ``W`` (in place).

    Indexes ``W`` by position, not through ``W.reshape(-1)``: for a non-contiguous array
    (a Fortran-ordered X, a transposed W) that reshape is a copy and the nudges would be lost.
    """
    grad = np.zeros(W.shape, np.float64)
    for i in np.ndindex(W.shape):
        old = W[i]
        W[i] = old + eps
        up = value()
        W[i] = old - eps
        down = value()
        W[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad
