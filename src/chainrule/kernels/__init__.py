"""Compiled kernels: one pass over the arrays in place of a method's NumPy lines.

This package is the one place that chooses between a method's plain NumPy lines and a
compiled kernel, through one table, ``_KERNELS``, looked up by :func:`find` (and by
:func:`compiled`, which wraps a method). A kernel is used only for the exact class it was
written for (a subclass, which may change the method, keeps its own lines), on arrays it can
take (C-contiguous, all native float32 or all float64), and while kernels are enabled.
Every kernel gives the same bits as the lines it replaces (``tests/test_kernels.py``), so
which one runs never changes a result: ``CHAINRULE_KERNELS=0`` in the environment, or
:func:`enabled(False) <enabled>`, runs the NumPy lines everywhere.

Two kinds of callers:

- An optimizer asks ``find(self, "_update", W, g, writes=(out, *state))`` once per update.
  The kernel is ``kernel(optimizer, W, g, state, eta, out) -> bool``: the update of ``W`` by
  gradient ``g`` with the optimizer's per-parameter ``state`` and step size ``eta``, the new
  weights written to ``out`` (``W`` itself, or a ``ParameterBuffer``'s proposal), and
  whether they are all finite.
- A layer's or loss's method decorated with :func:`compiled` runs, in place of its body,
  ``kernel(module, *args)``, which sets the same cache attributes and returns the same
  array, or ``NotImplemented`` for arrays it does not take (then the body runs).

The kernels are built from C sources in this folder when the package is installed with a C
compiler (``setup.py``); without one this package only ever answers "no kernel". A long
pass (Adam over a large model) may use one helper thread, within the thread limit of NumPy's
BLAS (as threadpoolctl sets it); see ``split.h``.
"""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager

import numpy as np

try:
    from . import _adam
except ImportError:  # built without a C compiler
    _adam = None
try:
    from . import _layers
except ImportError:
    _layers = None

_F32, _F64, _INTP = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.intp)
_on = os.environ.get("CHAINRULE_KERNELS", "1") != "0"


# -- threads: a long pass may use one helper thread, never more than NumPy's BLAS ----------
#
# A kernel may split a long pass with one helper thread (split.h) where that was measured
# faster inside the training loop. It asks helper_threads() first, which allows the second
# thread only while the BLAS that NumPy loaded may use two or more threads (what
# threadpoolctl.threadpool_limits and OPENBLAS_NUM_THREADS set) and this process may run on
# two or more CPUs. A BLAS whose thread count cannot be read (not OpenBLAS, or not found)
# gets one thread: the kernels then run exactly as single-threaded code.

# Adam over fewer weights than this runs on one thread. Alone (benchmarks/adam_split.py,
# best of interleaved runs on the shared 2-core machine) two threads take 0.6-0.8x the time
# from 65,536 weights up; but inside fit's loop a threshold of 65,536 made mnist-b32's epoch
# 1.04x slower and mnist-b128's no faster (paired.py): right after the matrix products,
# OpenBLAS's own threads still spin on the second core. So only passes long enough to
# outlast that (4M weights, 16 MB) are split.
MIN_SPLIT = 1 << 22

_NAMES = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
          "openblas_get_num_threads64_", "openblas_get_num_threads")
_getter = False  # not looked up yet


def _blas_thread_getter():
    """OpenBLAS's ``get_num_threads`` in the library NumPy loaded, or None."""
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _NAMES:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype, fn.argtypes = ctypes.c_int, []
                return fn
    return None


def helper_threads() -> int:
    """2 when a pass may use a helper thread now, else 1."""
    global _getter
    if _getter is False:
        import numpy.linalg  # noqa: F401 - NumPy's BLAS is loaded with it

        _getter = _blas_thread_getter()
    if _getter is None or len(os.sched_getaffinity(0)) < 2:
        return 1
    return 2 if _getter() >= 2 else 1


# -- the kernels ---------------------------------------------------------------------------

def _adam_kernel(opt, W, g, state, eta, out) -> bool:
    """Adam's update (``Adam._update``) in one pass: ``kernels/adam.c``."""
    k, eps_hat = opt._folded(eta)
    threads = helper_threads() if W.size >= MIN_SPLIT else 1
    return _adam.adam(W, g, state["exp_avg"], state["exp_avg_sq"], out, opt.beta1, opt.beta2,
                      k, eps_hat, W.dtype is _F64, threads)


def _fits(*arrays) -> bool:
    """All C-contiguous, of one dtype, native float32 or float64 (NumPy's own dtype objects:
    an identity test, which is what keeps a kernel's call cheaper than NumPy's)."""
    dtype = arrays[0].dtype
    if dtype is not _F32 and dtype is not _F64:
        return False
    for a in arrays:
        if a.dtype is not dtype or not a.flags.c_contiguous:
            return False
    return True


def _fits1(a) -> bool:
    """:func:`_fits` for one array, without packing arguments (it runs several times in
    every step)."""
    dtype = a.dtype
    return (dtype is _F32 or dtype is _F64) and a.flags.c_contiguous


def _relu_forward(module, Z):
    """``ReLU.forward``: ``mask = Z ≥ 0`` and ``max(Z, 0)`` in one pass (``layers.c``)."""
    if not _fits1(Z):
        return NotImplemented
    A, mask = np.empty_like(Z), np.empty(Z.shape, np.bool_)
    _layers.relu_forward(Z, A, mask, Z.dtype is _F64)
    module.mask = mask
    return A


def _relu_backward(module, dLdA):
    """``ReLU.backward``: ``dLdA * mask`` (``layers.c``)."""
    mask = module.mask
    if not _fits1(dLdA) or mask.shape != dLdA.shape or not mask.flags.c_contiguous:
        return NotImplemented
    out = np.empty_like(dLdA)
    _layers.relu_backward(dLdA, mask, out, dLdA.dtype is _F64)
    return out


def _softmax_forward(module, Z):
    """``Softmax.forward``: ``Z − max`` of each row in one pass (``layers.c``), then NumPy's
    own ``exp`` and row sums, so that the bits are those of the plain lines."""
    if getattr(Z, "ndim", 0) != 2 or not _fits1(Z):
        return NotImplemented
    E = np.empty_like(Z)
    _layers.shift_rows(Z, E, Z.shape[1], Z.dtype is _F64)
    np.exp(E, out=E)
    E /= E.sum(axis=1, keepdims=True)
    module.A = E
    return E


def _linear_forward(module, A_prev):
    """``Linear.forward``: NumPy's product ``A_prev @ W``, then ``+ W0`` in place, row by row
    (``layers.c``), which saves NumPy's new array for the sum."""
    W, W0 = module.W.data, module.W0.data
    dtype = W.dtype
    if (getattr(A_prev, "ndim", 0) != 2 or A_prev.shape[1] != module.m
            or (dtype is not _F32 and dtype is not _F64) or A_prev.dtype is not dtype
            or W0.dtype is not dtype or not A_prev.flags.c_contiguous
            or not W.flags.c_contiguous or not W0.flags.c_contiguous
            or W0.shape != (1, W.shape[1])):  # _fits(A_prev, W, W0), written out
        return NotImplemented
    module.A_prev = A_prev
    Z = np.matmul(A_prev, W)
    _layers.add_row(Z, W0, W.shape[1], W.dtype is _F64)
    return Z


def _linear_backward_params(module, dLdZ):
    """``Linear.backward_params``: NumPy's product for ``dLdW``, and ``dLdW0 = Σ_rows dLdZ``
    row after row from 0 (the order of NumPy's sum over axis 0) in one pass (``layers.c``)."""
    W0 = module.W0.grad
    if not _fits(dLdZ, W0) or W0.shape != (1, dLdZ.shape[1]) or not W0.flags.writeable:
        return NotImplemented
    np.matmul(module.A_prev.T, dLdZ, out=module.W.grad)
    _layers.sum_rows(dLdZ, W0, dLdZ.shape[1], dLdZ.dtype is _F64)
    return None


def _nllm_sum(loss, A, Y):
    """``NLLM._sum`` for integer labels: the entries ``a_y`` of the labels, each at least
    ε, and their flat indices, in one pass (``layers.c``); then NumPy's ``log`` and sum."""
    if Y.ndim != 1 or Y.dtype is not _INTP or not _fits1(A) or len(Y) != len(A):
        return NotImplemented
    rows, k = A.shape
    picked, a_y = np.empty(rows, _INTP), np.empty(rows, A.dtype)
    eps = 1e-7 if A.dtype is _F32 else 1e-15  # losses._log_eps
    _layers.pick(A, k, Y, picked, a_y, eps, A.dtype is _F64)
    loss.picked = picked
    return -np.log(a_y).sum(dtype=np.float64)


def _nllm_fused_backward(loss):
    """``NLLM.fused_backward`` for integer labels without sample weights: ``(A − Y)·scale``
    with Y one-hot, in one pass (``layers.c``)."""
    A, Y = loss.A, loss.Y
    if Y.ndim != 1 or getattr(loss, "weights", None) is not None or not _fits1(A):
        return NotImplemented
    G = np.empty_like(A)
    _layers.nllm_grad(A, loss.picked, G, loss._scale(), A.dtype is _F64)
    return G


# (module, qualified name) -> kernel, for the kernels that were built. Keyed by name so that
# the callers can ask this package without the two importing each other, and so that a
# subclass (which may change the method) is never taken for its parent.
_KERNELS = {}
if _adam is not None:
    _KERNELS[("chainrule.optimizers", "Adam._update")] = _adam_kernel
if _layers is not None:
    _KERNELS.update({
        ("chainrule.layers.activations", "ReLU.forward"): _relu_forward,
        ("chainrule.layers.activations", "ReLU.backward"): _relu_backward,
        ("chainrule.layers.activations", "Softmax.forward"): _softmax_forward,
        ("chainrule.layers.linear", "Linear.forward"): _linear_forward,
        ("chainrule.layers.linear", "Linear.backward_params"): _linear_backward_params,
        ("chainrule.losses", "NLLM._sum"): _nllm_sum,
        ("chainrule.losses", "NLLM.fused_backward"): _nllm_fused_backward,
    })

_chosen: dict = {}  # (class, method name) -> kernel or None, as _KERNELS answers
_UNSEEN = object()


def _kernel_for(cls: type, method: str):
    kernel = _chosen.get((cls, method), _UNSEEN)
    if kernel is _UNSEEN:
        kernel = _chosen[cls, method] = _KERNELS.get(
            (cls.__module__, f"{cls.__qualname__}.{method}"))
    return kernel


def find(owner, method: str, *arrays: np.ndarray, writes: tuple = ()):
    """The kernel for ``method`` of ``owner``'s exact class on these arrays, or None (then
    the method's NumPy lines run).

    ``arrays`` (read) and ``writes`` (written, so also writable) must be C-contiguous and of
    one dtype, float32 or float64.
    """
    if not _on:
        return None
    kernel = _kernel_for(type(owner), method)
    if kernel is None or not _fits(*arrays, *writes):
        return None
    for a in writes:
        if not a.flags.writeable:
            return None
    return kernel


def compiled(method):
    """Decorator: the method's body is its plain NumPy lines; where :func:`find` has a
    kernel for the method of the instance's exact class, that kernel runs instead (with the
    same bits), unless it answers ``NotImplemented`` for the arrays it was given."""
    name = method.__name__

    @functools.wraps(method)
    def run(self, *args):
        if _on:  # _kernel_for, inlined: this runs several times in every step
            kernel = _chosen.get((type(self), name), _UNSEEN)
            if kernel is _UNSEEN:
                kernel = _kernel_for(type(self), name)
            if kernel is not None:
                result = kernel(self, *args)
                if result is not NotImplemented:
                    return result
        return method(self, *args)

    run.plain = method  # the NumPy lines alone, for the tests
    return run


def available() -> list[str]:
    """The methods with a compiled kernel in this installation, as ``"Class.method"``."""
    return sorted(name for _, name in _KERNELS)


@contextmanager
def enabled(on: bool):
    """Within ``with kernels.enabled(False):`` every method runs its NumPy lines."""
    global _on
    before, _on = _on, bool(on)
    try:
        yield
    finally:
        _on = before
