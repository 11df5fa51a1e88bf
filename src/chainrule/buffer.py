"""The parameter store: the one place that knows a model's weights live in flat memory.

A :class:`ParameterBuffer` holds all of a model's parameters in two flat arrays, ``data``
and ``grad``; each ``Parameter.data`` and ``.grad`` is a view into them, in the order of the
model's named parameters. The layers notice nothing (they read ``self.W.data`` and write
``self.W.grad`` in place), but an optimizer step, a gradient norm or gradient clipping
becomes a few NumPy calls over one long array instead of a few per parameter, which is what
makes small networks fast in Python.

For ``fit``'s divergence guard the store keeps a second weight array, the *proposal*:
:meth:`~ParameterBuffer.propose` has the optimizer write the next weights there, leaving the
current ones as they are, and :meth:`~ParameterBuffer.commit` makes them current by pointing
the parameters at them. A step that diverges is undone by not committing it, without a copy.

Models whose parameters cannot share one flat array (mixed dtypes, a parameter listed twice,
no parameters, or a model that is not a ``Sequential``) train through :class:`Parameters`,
which offers the same methods one parameter at a time and undoes a step by copying.
"""

from __future__ import annotations

import math
import operator
from contextlib import contextmanager

import numpy as np

from ._validate import all_finite
from .errors import InputError
from .module import named_parameters
from .parameter import Parameter

_data, _grad = operator.attrgetter("data"), operator.attrgetter("grad")


class ParameterBuffer:
    """A model's parameters as views into one flat ``data`` and one flat ``grad`` array.

    Parameters
    ----------
    named : list of (path, Parameter)
        E.g. ``[("modules.0.W", W), ("modules.0.W0", W0), ...]``: at least one parameter,
        each once, all of one float dtype (see :meth:`build`). Their values and gradients
        are copied into the buffer and each ``Parameter`` then points into it.

    Attributes
    ----------
    paths : list of str
    params : list of Parameter
    data, grad : ndarray (size,)
        Every weight and every gradient, parameter after parameter.
    decay : ndarray (size,)
        1 where weight decay applies (parameters named ``"W"``), 0 elsewhere.
    """

    def __init__(self, named: list[tuple[str, Parameter]]):
        self.paths = [path for path, _ in named]
        self.params = [p for _, p in named]
        self.shapes = [p.data.shape for p in self.params]
        dtype = self.params[0].data.dtype
        size = sum(p.data.size for p in self.params)
        self.data, self.grad = np.empty(size, dtype), np.empty(size, dtype)
        self.decay = np.concatenate([np.full(p.data.size, p.decayed, dtype)
                                     for p in self.params])
        self._proposal = None
        self.gather()

    @classmethod
    def build(cls, named: list[tuple[str, Parameter]]) -> ParameterBuffer | None:
        """A buffer for ``named``, or None when :meth:`can_hold` says they cannot share one."""
        return cls(named) if cls.can_hold([p for _, p in named]) else None

    @staticmethod
    def can_hold(params: list[Parameter]) -> bool:
        """Can ``params`` share one buffer? Not when there are none, when one is listed twice
        (shared weights), or when their dtypes differ or are not floats."""
        dtypes = {p.data.dtype for p in params}
        return (len(dtypes) == 1 and dtypes.pop().kind == "f"
                and len({id(p) for p in params}) == len(params))

    def views(self, flat: np.ndarray) -> list[np.ndarray]:
        """Views into the flat array ``flat`` (of ``data``'s size), one per parameter, each
        of that parameter's shape: the buffer's layout applied to another array."""
        views, start = [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            views.append(flat[start:start + size].reshape(shape))
            start += size
        return views

    def intact(self) -> bool:
        """Does every parameter still point into the buffer? (Anything may rebind a
        ``Parameter.data``; a deep copy of a model gets arrays of its own.)"""
        params = self.params  # map over C functions: this runs in every step of fit
        return (all(map(operator.is_, map(_data, params), self._views))
                and all(map(operator.is_, map(_grad, params), self._grad_views)))

    def fits(self, params: list[Parameter]) -> bool:
        """Are ``params`` the buffer's own, in order, each of the shape and dtype it holds?"""
        return (len(params) == len(self.params)
                and all(p is q for p, q in zip(params, self.params))
                and all(p.data.shape == shape and p.data.dtype == self.data.dtype
                        and p.grad.shape == shape for p, shape in zip(params, self.shapes)))

    def gather(self) -> None:
        """Copy each parameter's current arrays into the buffer and point it there."""
        self._views, self._grad_views = self.views(self.data), self.views(self.grad)
        if self._proposal is not None:
            self._proposal_views = self.views(self._proposal)
        for p, W, g in zip(self.params, self._views, self._grad_views):
            W[...], g[...] = p.data, p.grad
            p.data, p.grad = W, g

    def sync(self) -> None:
        """Take back arrays rebound since the last step (a user's ``backward`` that assigns
        ``p.grad = ...``, a callback that assigns ``p.data = ...``), so that the step uses
        them; a parameter rebound to another shape or dtype is an error."""
        if self.intact():
            return
        for path, p, shape in zip(self.paths, self.params, self.shapes):
            if p.data.shape != shape or p.grad.shape != shape or p.data.dtype != self.data.dtype:
                raise InputError(f"fit expected parameter {path} to keep its shape {shape} and "
                                 f"dtype {self.data.dtype}, got data of shape {p.data.shape} "
                                 f"and dtype {p.data.dtype}, grad of shape {p.grad.shape}")
        self.gather()

    def __getstate__(self) -> dict:
        # The views are derived from data and grad; a copy derives its own (see gather).
        return {k: getattr(self, k)
                for k in ("paths", "params", "shapes", "data", "grad", "decay")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._proposal = None
        for name in ("data", "grad", "decay"):  # unpickled arrays may be read-only memmaps
            setattr(self, name, np.require(getattr(self, name), requirements="W"))
        self.gather()

    # -- fit's step -------------------------------------------------------------------------

    def grad_norms(self) -> np.ndarray:
        """Each parameter's gradient L2 norm, float64 (see :func:`grad_norms`)."""
        return grad_norms(self._grad_views)

    def scale_grads(self, factor: float) -> None:
        self.grad *= factor

    def propose(self, optimizer) -> str | None:
        """Have ``optimizer`` take its next step with the new weights written to the proposal,
        the parameters keeping the current ones. Returns None when the new weights are all
        finite (:meth:`commit` then makes them current), else the path of the first
        parameter whose new weights are not."""
        if self._proposal is None:
            self._proposal = np.empty_like(self.data)
            self._proposal_views = self.views(self._proposal)
        finite = optimizer._step_into(self, self._proposal)
        if finite or (finite is None and all_finite(self._proposal)):
            return None
        return _first_nonfinite(self.paths, self._proposal_views)

    def commit(self) -> None:
        """Make the proposed weights current; the old array becomes the next proposal."""
        self.data, self._proposal = self._proposal, self.data
        self._views, self._proposal_views = self._proposal_views, self._views
        for p, W in zip(self.params, self._views):
            p.data = W

    @contextmanager
    def stepping(self):
        """For the length of a ``fit``: however it ends, the weights are then back in the
        array they were in before it, so that arrays taken from ``p.data`` earlier see the
        weights fit ended with."""
        home = self.data
        try:
            yield self
        finally:
            if self.data is not home:
                np.copyto(self._proposal, self.data)
                self.commit()


class Parameters:
    """The store's methods one parameter at a time, for parameters that share no buffer.

    A step is proposed by saving the weights, stepping in place and, if any new weight is
    not finite, copying the saved ones back.
    """

    def __init__(self, named: list[tuple[str, Parameter]]):
        self.paths = [path for path, _ in named]
        self.params = [p for _, p in named]
        self._saved = None

    def grad_norms(self) -> np.ndarray:
        return grad_norms([p.grad for p in self.params])

    def scale_grads(self, factor: float) -> None:
        for p in self.params:
            p.grad *= factor

    def propose(self, optimizer) -> str | None:
        """As :meth:`ParameterBuffer.propose`; an interrupted or diverging step is undone."""
        if self._saved is None:
            self._saved = [np.empty_like(p.data) for p in self.params]
        for saved, p in zip(self._saved, self.params):
            np.copyto(saved, p.data)
        try:
            optimizer.step(self.params)
        except BaseException:  # an interrupt in the middle of the update
            self._restore()
            raise
        bad = _first_nonfinite(self.paths, [p.data for p in self.params])
        if bad is not None:
            self._restore()
        return bad

    def _restore(self) -> None:
        for saved, p in zip(self._saved, self.params):
            np.copyto(p.data, saved)

    def sync(self) -> None:
        """Each step reads the parameters' arrays as they are: nothing to take back."""

    def commit(self) -> None:
        """The weights were updated in place: nothing is left to do."""

    @contextmanager
    def stepping(self):
        yield self


def store_for(model, optimizer) -> ParameterBuffer | Parameters:
    """The store ``fit`` trains ``model`` through: the model's own ``parameter_buffer`` when
    it has one (a ``Sequential`` whose parameters share a dtype) and the optimizer's update
    works weight by weight (``Optimizer.elementwise``), else :class:`Parameters`."""
    buffer = getattr(model, "parameter_buffer", None)
    if buffer is not None and getattr(optimizer, "elementwise", False):
        return buffer
    return Parameters(named_parameters(model))


def grad_norms(grads: list[np.ndarray]) -> np.ndarray:
    """The L2 norm of each gradient, as float64.

    One BLAS dot product per gradient, in its dtype; a float32 sum of squares that overflows
    is recomputed in float64, so that only a truly non-finite gradient has a non-finite norm.
    """
    sums = np.array(list(map(np.vdot, grads, grads)), dtype=np.float64)
    if not math.isfinite(sum(sums.tolist())):  # a Python sum: cheaper than NumPy on a few
        for i in np.flatnonzero(~np.isfinite(sums)):
            g = grads[i].astype(np.float64)
            sums[i] = np.vdot(g, g)
    return np.sqrt(sums)


def _first_nonfinite(paths: list[str], arrays: list[np.ndarray]) -> str | None:
    """The path of the first array with a NaN or ±∞, or None."""
    return next((path for path, a in zip(paths, arrays) if not all_finite(a)), None)
