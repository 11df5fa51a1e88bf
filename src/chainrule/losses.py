"""Losses L(A, Y) beside their derivatives dL/dA (notes' Notation 14).

Each loss is called as ``loss(A, Y) -> float``: it checks ``Y`` against ``A``, computes the
value and caches what ``loss.backward() -> dL/dA`` needs (an array of ``A``'s shape and
dtype). ``reduction="mean"`` (default) divides the sum over samples by n; ``"sum"`` does not.

Per-row weights (beyond the notes): ``loss(A, Y, weights)`` with wᵢ ≥ 0 counts row i's loss
Lᵢ wᵢ times, over the n rows of A::

    "sum":   Σᵢ wᵢ Lᵢ             "mean":  Σᵢ wᵢ Lᵢ / n

so unit weights give the unweighted loss, bit for bit in its gradient. ``dL/dA``'s row i is
wᵢ times its unweighted row (divided by n for ``"mean"``). The mean divides by n, not Σᵢ wᵢ:
``fit`` passes weights divided by their mean over the training set (w / w̄), so a batch's
mean is an unbiased estimate of the weighted mean over all rows, Σᵢ wᵢ Lᵢ / Σᵢ wᵢ, which is
the loss of the data with row i repeated wᵢ times (see ``fit``). Each loss gives its per-row
values in ``_rows`` (used only with weights) beside its sum ``_sum``.

``check_targets(Y, A_shape, dtype)`` does the checking once, and ``forward(A, Y)`` computes
on checked targets; ``fit`` uses the two so its inner loop never re-validates.
"""

from __future__ import annotations

import functools

import numpy as np

from . import kernels
from ._validate import check_finite
from .arrays import check_sample_weight
from .errors import InputError
from .layers.activations import Sigmoid, Softmax

REDUCTIONS = ("mean", "sum")


def _log_eps(dtype) -> float:
    """Smallest probability a log may see: 1e-7 in float32, 1e-15 in float64."""
    return 1e-7 if dtype == np.float32 else 1e-15


class Loss:
    """Shared plumbing: the reduction, the cache, ``__call__`` = check + forward."""

    fuses_with: type | tuple = ()

    def __init__(self, reduction: str = "mean"):
        if reduction not in REDUCTIONS:
            raise InputError(
                f"{type(self).__name__} expected reduction 'mean' or 'sum', got {reduction!r}"
            )
        self.reduction = reduction
        self.A = None
        self.Y = None
        self.weights = None

    def __call__(self, A, Y, weights=None) -> float:
        A = np.asarray(A)
        if A.ndim != 2 or A.shape[0] == 0:
            raise InputError(
                f"{self!r} expected A as a " + ("2-D" if A.ndim != 2 else "non-empty 2-D")
                + f" array (n_samples, n_outputs), got array of shape {A.shape}"
            )
        if A.dtype.kind != "f":  # an integer A would make an integer (truncated) dL/dA
            if A.dtype.kind not in "biu":
                raise InputError(f"{self!r} expected numeric A, got array of dtype {A.dtype}")
            A = A.astype(np.float64)
        if weights is not None:
            weights = check_sample_weight(weights, len(A), repr(self))
        return self.forward(A, self.check_targets(Y, A.shape, A.dtype), weights)

    def forward(self, A: np.ndarray, Y: np.ndarray, weights: np.ndarray | None = None) -> float:
        """Value of the loss for targets already passed through ``check_targets``.

        ``weights``: None, or checked per-row weights, float64 of shape (n,).
        """
        self.A, self.Y, self.weights = A, Y, weights
        if weights is not None:
            self._weight_column = weights.astype(A.dtype).reshape(-1, 1)
            return float(np.dot(weights, self._rows(A, Y))) * self._scale()
        total = float(self._sum(A, Y))
        return total / len(A) if self.reduction == "mean" else total

    def backward(self) -> np.ndarray:
        """dL/dA for the last ``forward``: shape and dtype of A."""
        if self.A is None:
            raise InputError(f"{self!r}.backward() needs a forward first: call loss(A, Y)")
        dLdA = self._grad(self.A, self.Y)
        if self.weights is not None:  # wᵢ times row i
            dLdA *= self._weight_column
        if self.reduction == "mean":
            dLdA /= len(self.A)
        return dLdA

    def _scale(self) -> float:
        """The reduction's factor: 1/n for ``"mean"`` (with or without weights), 1 for
        ``"sum"``."""
        return 1.0 / len(self.A) if self.reduction == "mean" else 1.0

    def check_targets(self, Y, A_shape: tuple, dtype) -> np.ndarray:
        """``Y`` checked against ``A``'s shape, in the form ``forward`` expects."""
        Y = np.asarray(Y)
        n, k = A_shape
        given = Y.shape  # the message names the shape given, not the reshaped one
        if Y.ndim == 1 and k == 1:
            Y = Y.reshape(-1, 1)
        if Y.shape != (n, k):
            raise InputError(
                f"{self!r} expected Y of shape {(n, k)}" + (f" or {(n,)}" if k == 1 else "")
                + f" to match A, got array of shape {given}"
            )
        return self._as_float(Y, dtype)

    def _as_float(self, Y, dtype):
        if Y.dtype.kind not in "biuf":
            raise InputError(f"{self!r} expected numeric Y, got array of dtype {Y.dtype}")
        Y = Y.astype(dtype, copy=False)
        check_finite(Y, "Y", repr(self))
        return Y

    def config(self) -> dict:
        return {"reduction": self.reduction}

    def __repr__(self) -> str:
        extra = "" if self.reduction == "mean" else f"reduction={self.reduction!r}"
        return f"{type(self).__name__}({extra})"


class SquareLoss(Loss):
    """L = Σⱼ (aⱼ − yⱼ)² per sample; dL/dA = 2 (A − Y). Y: shape of A, or (n,) for k = 1."""

    def _sum(self, A, Y):
        return ((A - Y) ** 2).sum(dtype=np.float64)

    def _rows(self, A, Y):
        return ((A - Y) ** 2).sum(axis=1, dtype=np.float64)

    def _grad(self, A, Y):
        return 2 * (A - Y)


class AbsoluteLoss(Loss):
    """L = Σⱼ |aⱼ − yⱼ| per sample; dL/dA = sign(A − Y) (0 where they are equal)."""

    def _sum(self, A, Y):
        return np.abs(A - Y).sum(dtype=np.float64)

    def _rows(self, A, Y):
        return np.abs(A - Y).sum(axis=1, dtype=np.float64)

    def _grad(self, A, Y):
        return np.sign(A - Y)


class NLL(Loss):
    """Binary negative log-likelihood (cross-entropy) for a sigmoid output a ∈ (0, 1)::

        L = −(y log a + (1 − y) log(1 − a)),    dL/da = (a − y) / (a (1 − a))

    ``Y``: 0/1 labels, ``(n,)`` or ``(n, 1)``. ``a`` is clipped to [ε, 1 − ε] (ε = 1e-7 in
    float32, 1e-15 in float64) so a saturated model gives a large finite loss. After a
    ``Sigmoid``, ``Sequential.backward_from`` uses the fused ``dL/dz = (a − y)/n``.
    """

    fuses_with = Sigmoid

    def check_targets(self, Y, A_shape, dtype):
        Y = super().check_targets(Y, A_shape, dtype)
        if not np.all((Y == 0) | (Y == 1)):
            bad = Y[(Y != 0) & (Y != 1)][:3]
            raise InputError(f"{self!r} expected labels 0 or 1, got values such as {bad}")
        return Y

    def _clip(self, A):
        eps = _log_eps(A.dtype)
        one = A.dtype.type(1)
        hi = A.dtype.type(1 - eps)
        if one - hi > eps:  # float32 rounds 1 − 1e-7 down to 1 − 1.19e-7: take the next float up
            hi = np.nextafter(hi, one)
        return np.clip(A, eps, hi)

    def _sum(self, A, Y):
        Ac = self._clip(A)
        return -(Y * np.log(Ac) + (1 - Y) * np.log1p(-Ac)).sum(dtype=np.float64)

    def _rows(self, A, Y):
        Ac = self._clip(A)
        return -(Y * np.log(Ac) + (1 - Y) * np.log1p(-Ac)).sum(axis=1, dtype=np.float64)

    def _grad(self, A, Y):
        Ac = self._clip(A)
        return (Ac - Y) / (Ac * (1 - Ac))

    def fused_backward(self):
        if self.weights is not None:  # row i times wᵢ (exact for wᵢ = 1), then the factor
            return (self.A - self.Y) * self._weight_column * self.A.dtype.type(self._scale())
        return (self.A - self.Y) * self.A.dtype.type(self._scale())


class NLLM(Loss):
    """Multiclass negative log-likelihood (cross-entropy) for a softmax output::

        L = −Σⱼ yⱼ log aⱼ,    dL/daⱼ = −yⱼ / aⱼ

    ``Y``: integer class labels ``(n,)`` in ``0..k-1`` (kept as labels: no one-hot matrix is
    built) or ``(n, k)`` rows of class probabilities (one-hot, or soft labels: each row ≥ 0
    and summing to 1, which the fused gradient assumes). ``a`` is clipped below at ε (1e-7
    in float32, 1e-15 in float64). After a ``Softmax``, ``Sequential.backward_from`` uses the
    fused ``dL/dZ = (A − Y)/n`` (computed directly, as the notes' Concept 19 suggests; the
    derivation is beyond the notes).
    """

    fuses_with = Softmax

    def check_targets(self, Y, A_shape, dtype):
        Y = np.asarray(Y)
        n, k = A_shape
        if Y.ndim == 2 and not (Y.shape == (n, 1) and k != 1):  # not a column of labels
            Y = super().check_targets(Y, A_shape, dtype)
            sums = Y.sum(axis=1, dtype=np.float64)
            if Y.min(initial=0) < 0 or not np.allclose(sums, 1, atol=1e-3 if dtype == np.float32
                                                        else 1e-6):
                raise InputError(
                    f"{self!r} expected each row of Y to be class probabilities (≥ 0, summing "
                    f"to 1, e.g. one-hot), got rows summing to {sums.min():g}..{sums.max():g} "
                    f"with smallest value {Y.min():g}")
            return Y
        if Y.shape == (n, 1) and k != 1:  # a column of labels
            Y = Y[:, 0]
        if Y.shape != (n,):
            raise InputError(
                f"{self!r} expected integer labels of shape {(n,)} or one-hot Y of shape "
                f"{(n, k)}, got array of shape {Y.shape}"
            )
        if Y.dtype.kind == "f":
            check_finite(Y, "Y", repr(self))
            if not np.all(Y == np.round(Y)):
                raise InputError(f"{self!r} expected integer class labels, got {Y[:5]}")
        elif Y.dtype.kind not in "biu":
            raise InputError(f"{self!r} expected integer class labels, got dtype {Y.dtype}")
        if n and (Y.min() < 0 or Y.max() >= k):
            raise InputError(
                f"{self!r} expected class labels in 0..{k - 1} for A with {k} columns, "
                f"got labels from {Y.min()} to {Y.max()}"
            )
        return Y.astype(np.intp, copy=False)

    @kernels.compiled
    def _sum(self, A, Y):
        eps = _log_eps(A.dtype)
        if Y.ndim == 1:  # labels: Σⱼ yⱼ log aⱼ is log a_y, the entry of each row's label
            self.picked = _label_entries(Y, A.shape[1])  # backward updates the same entries
            a_y = A.reshape(-1)[self.picked]
            return -np.log(np.maximum(a_y, eps)).sum(dtype=np.float64)
        return -(Y * np.log(np.maximum(A, eps))).sum(dtype=np.float64)

    def _rows(self, A, Y):
        eps = _log_eps(A.dtype)
        if Y.ndim == 1:
            self.picked = _label_entries(Y, A.shape[1])
            return -np.log(np.maximum(A.reshape(-1)[self.picked], eps)).astype(np.float64)
        return -(Y * np.log(np.maximum(A, eps))).sum(axis=1, dtype=np.float64)

    def _grad(self, A, Y):
        eps = _log_eps(A.dtype)
        if Y.ndim == 1:  # dL/da_y = −1/a_y, 0 elsewhere
            G = np.zeros_like(A)
            G.reshape(-1)[self.picked] = -1 / np.maximum(A.reshape(-1)[self.picked], eps)
            return G
        return -Y / np.maximum(A, eps)

    @kernels.compiled
    def fused_backward(self):
        A, Y = self.A, self.Y
        if Y.ndim == 1:
            G = A.copy()
            G.reshape(-1)[self.picked] -= 1  # A − Y with Y one-hot
        else:
            G = A - Y
        if self.weights is not None:  # row i times wᵢ (exact for wᵢ = 1)
            G *= self._weight_column
        G *= A.dtype.type(self._scale())
        return G


def _label_entries(Y: np.ndarray, k: int) -> np.ndarray:
    """Flat indices ``i·k + yᵢ`` of the entries ``(i, yᵢ)`` of an ``(n, k)`` array ``A``.

    ``A.reshape(-1)[index]`` reads (or writes) the same entries as ``A[np.arange(n), Y]``
    in half the time: one index array instead of two. On small batches that is 5% of an
    epoch (digits-b32, batch 32).
    """
    return Y + _row_starts(len(Y), k)


@functools.lru_cache(maxsize=16)
def _row_starts(n: int, k: int) -> np.ndarray:
    """``[0, k, 2k, ...]``: the flat index of each row's first entry (read-only, cached)."""
    starts = np.arange(0, n * k, k)
    starts.flags.writeable = False
    return starts
