"""Compiled kernels (chainrule.kernels) against the NumPy lines they replace: the same bits."""

import os
import signal
import time

import numpy as np
import pytest

import chainrule as cr
from cases import assert_same_weights, mlp, weights
from chainrule import kernels
from chainrule.optimizers import OPTIMIZERS

needs_adam = pytest.mark.skipif(kernels._adam is None,
                                reason="chainrule.kernels._adam was not built (no C compiler)")


def test_kernels_were_built_where_required():
    # The build is optional (no compiler, no kernels); CI, which has a compiler, sets
    # CHAINRULE_REQUIRE_KERNELS=1 so that a broken build cannot pass unnoticed.
    if os.environ.get("CHAINRULE_REQUIRE_KERNELS") != "1":
        pytest.skip("CHAINRULE_REQUIRE_KERNELS is not set")
    assert kernels.available() == ["Adam._update", "Linear.backward_params", "Linear.forward",
                                   "NLLM._sum", "NLLM.fused_backward", "ReLU.backward",
                                   "ReLU.forward", "Softmax.forward"]


def _run(on: bool, dtype, kind: str, **kwargs):
    """Weights and state after 30 Adam steps on fixed random gradients of three sizes,
    through a model's buffer, a list of parameters, or fit's propose/commit."""
    model = mlp((7, 5, 3), out=None, dtype=dtype)
    opt, buffer, rng = cr.Adam(**kwargs), model.parameter_buffer, np.random.default_rng(3)
    with kernels.enabled(on):
        for _ in range(30):
            for p in model.parameters():
                p.grad[...] = rng.normal(scale=rng.choice([1e-6, 1e-2, 10.0]), size=p.grad.shape)
            if kind == "buffer":
                opt.step(buffer)
            elif kind == "parameters":
                opt.step(model.parameters())
            else:
                assert buffer.propose(opt) is None
                buffer.commit()
    return weights(model), opt.state_dict()


@needs_adam
@pytest.mark.parametrize("kind", ["buffer", "parameters", "propose"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", [{}, {"lr": 0.05, "weight_decay": 0.01, "eps": 1e-3},
                                    {"lr": lambda t: 0.1 / t, "beta1": 0.5, "beta2": 0.9}],
                         ids=["defaults", "weight-decay", "schedule"])
def test_adam_kernel_gives_the_bits_of_adam_update(dtype, kwargs, kind):
    compiled, compiled_state = _run(True, dtype, kind, **kwargs)
    plain, plain_state = _run(False, dtype, kind, **kwargs)
    for a, b in zip(compiled, plain, strict=True):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)  # the same bits, not merely close
    for a, b in zip(compiled_state["state"], plain_state["state"], strict=True):
        for name in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(a[name], b[name])


@needs_adam
def test_the_kernel_runs_by_default_and_only_where_it_can(monkeypatch):
    monkeypatch.setattr(kernels, "_on", True)  # the default, even under CHAINRULE_KERNELS=0
    calls = []
    real = kernels._KERNELS[("chainrule.optimizers", "Adam._update")]
    monkeypatch.setitem(kernels._KERNELS, ("chainrule.optimizers", "Adam._update"),
                        lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(kernels, "_chosen", {})
    p = cr.Parameter(np.ones((4, 6)), "W")
    strided = cr.Parameter(np.ones((4, 6))[:, ::2], "W")
    cr.Adam().step([p, strided])
    assert len(calls) == 1  # the contiguous parameter only
    with kernels.enabled(False):
        cr.Adam().step([p])
    assert len(calls) == 1

    class MyAdam(cr.Adam):  # a subclass with its own _update keeps its own lines
        def _update(self, W, g, state, eta):
            W -= eta * np.sign(g)

    q = cr.Parameter(np.zeros((1, 1)), "W")
    q.grad[...] = 5.0
    MyAdam(lr=0.5).step([q])
    assert len(calls) == 1 and q.data[0, 0] == -0.5


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_without_a_kernel_update_is_what_runs(name, monkeypatch):
    # Each optimizer's plain _update is the code that runs when no kernel takes the step.
    calls = []
    cls = OPTIMIZERS[name]
    real = cls._update
    monkeypatch.setattr(cls, "_update", lambda self, *a: calls.append(1) or real(self, *a))
    p = cr.Parameter(np.ones((2, 2), np.float32), "W")
    p.grad[...] = 1.0
    with kernels.enabled(False):
        cls().step([p])
    assert calls == [1]


# -- Adam over a long buffer: split with one helper thread, the same bits ------------------

@needs_adam
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_split_over_two_threads_gives_the_bits_of_one(dtype):
    rng = np.random.default_rng(5)
    n = 3 * 65536 + 37  # long enough to split (adam.c: ADAM_MIN_SPLIT), not a multiple of 64
    W, g = rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)
    g[[5, n - 3]] = [1e30, -0.0]  # a huge gradient, a negative zero
    results = []
    for threads in (1, 2):
        m, v, out = np.full(n, 0.1, dtype), np.full(n, 0.2, dtype), np.empty(n, dtype)
        finite = kernels._adam.adam(W, g, m, v, out, 0.9, 0.999, 1e-3, 1e-8,
                                    dtype == np.float64, threads)
        results.append((finite, out, m, v))
    assert results[0][0] is results[1][0] is True
    for a, b in zip(results[0][1:], results[1][1:]):
        np.testing.assert_array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"))


@needs_adam
def test_adam_split_reports_a_non_finite_weight_in_either_half():
    n = 2 * 65536
    for bad in (3, n - 3):  # the calling thread's half, the helper's
        W, g = np.zeros(n, np.float32), np.ones(n, np.float32)
        W[bad] = np.inf
        m, v, out = np.zeros(n, np.float32), np.zeros(n, np.float32), np.empty(n, np.float32)
        assert kernels._adam.adam(W, g, m, v, out, 0.9, 0.999, 1e-3, 1e-8, False, 2) is False


@needs_adam
def test_fit_with_a_split_adam_gives_the_bits_of_numpy(monkeypatch):
    monkeypatch.setattr(kernels, "helper_threads", lambda: 2)  # even with 1 BLAS thread
    monkeypatch.setattr(kernels, "MIN_SPLIT", 65536)
    X = np.random.default_rng(0).normal(size=(96, 300)).astype(np.float32)
    y = np.arange(96) % 3
    runs = []
    for on in (True, False):
        model = mlp((300, 250, 3))  # 75,753 weights: long enough to split
        assert model.parameter_buffer.data.size >= kernels.MIN_SPLIT
        with kernels.enabled(on):
            cr.fit(model, cr.NLLM(), X, y, epochs=2, batch_size=32, rng=0, progress=False)
        runs.append(weights(model))
    assert_same_weights(*runs)


@needs_adam
def test_a_forked_process_runs_the_split_pass():
    # The helper thread does not exist in a forked child: the child starts its own.
    n = 2 * 65536
    arrays = [np.ones(n, np.float32) for _ in range(5)]
    assert kernels._adam.adam(*arrays, 0.9, 0.999, 1e-3, 1e-8, False, 2)  # helper started
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        ok = kernels._adam.adam(*arrays, 0.9, 0.999, 1e-3, 1e-8, False, 2)
        os._exit(0 if ok else 1)
    for _ in range(200):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung in the split pass")
    assert os.waitstatus_to_exitcode(status) == 0


def test_helper_threads_stay_within_the_blas_limit():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1):
        assert kernels.helper_threads() == 1
    assert kernels.helper_threads() in (1, 2)


# -- the layers' and the loss's kernels: the bits of the plain lines -----------------------

needs_layers = pytest.mark.skipif(kernels._layers is None,
                                  reason="chainrule.kernels._layers was not built")


def _bits(a: np.ndarray) -> np.ndarray:
    """The bit patterns, so that −0 and +0 (equal as numbers) count as different."""
    a = np.asarray(a)
    return a.view(f"u{a.itemsize}") if a.dtype.kind == "f" else a


def _assert_same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(_bits(a), _bits(b))


def _special(shape, dtype, seed=0) -> np.ndarray:
    """Normal values with every kind of special one sprinkled in: ±0, ±∞, NaN, subnormals,
    the largest floats and values that round at the edge of the dtype."""
    rng = np.random.default_rng(seed)
    a = rng.normal(scale=3.0, size=shape).astype(dtype)
    info = np.finfo(dtype)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, info.tiny / 4, -info.tiny / 4,
                         info.max, -info.max, 1.0, -1.0], dtype)
    flat = a.reshape(-1)
    where = rng.choice(flat.size, size=min(flat.size // 3, 3 * specials.size), replace=False)
    flat[where] = specials[np.arange(where.size) % specials.size]
    return a


SHAPES = [(1, 1), (3, 7), (32, 64), (33, 10), (128, 256), (5, 1)]


def _both(run):
    """``run()`` with kernels on, then off: ``(compiled, plain)``."""
    with kernels.enabled(True):
        compiled = run()
    with kernels.enabled(False):
        plain = run()
    return compiled, plain


@needs_layers
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("special", [False, True], ids=["normal", "special"])
def test_relu_kernels_give_the_bits_of_the_plain_lines(dtype, shape, special):
    Z = _special(shape, dtype) if special else np.random.default_rng(1).normal(
        size=shape).astype(dtype)
    dLdA = _special(shape, dtype, seed=2)

    def run():
        relu = cr.ReLU()
        A = relu.forward(Z)
        return A, relu.mask, relu.backward(dLdA)

    with np.errstate(invalid="ignore"):  # 0 · ±∞ in the backward
        for a, b in zip(*_both(run), strict=True):
            _assert_same_bits(a, b)


@needs_layers
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("special", [False, True], ids=["normal", "special"])
def test_softmax_kernel_gives_the_bits_of_the_plain_lines(dtype, shape, special):
    Z = _special(shape, dtype) if special else np.random.default_rng(1).normal(
        scale=20.0, size=shape).astype(dtype)
    Z[0] = -0.0  # a row of zeros of both signs: the row's maximum may be either
    Z[0, ::2] = 0.0

    def run():
        softmax = cr.Softmax()
        A = softmax.forward(Z)
        assert softmax.A is A
        return A

    with np.errstate(invalid="ignore", over="ignore"):
        _assert_same_bits(*_both(run))


@needs_layers
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, m, n", [(1, 3, 1), (32, 64, 64), (7, 5, 10), (128, 20, 256)])
@pytest.mark.parametrize("special", [False, True], ids=["normal", "special"])
def test_linear_backward_params_kernel_gives_the_bits_of_the_plain_lines(dtype, rows, m, n,
                                                                         special):
    rng = np.random.default_rng(3)
    A_prev = rng.normal(size=(rows, m)).astype(dtype)
    dLdZ = _special((rows, n), dtype) if special else rng.normal(size=(rows, n)).astype(dtype)

    def run():
        layer = cr.Linear(m, n, rng=0, dtype=dtype, offsets="random")
        Z = layer.forward(A_prev)
        assert layer.A_prev is A_prev
        dLdA = layer.backward(dLdZ)
        return Z, layer.W.grad.copy(), layer.W0.grad.copy(), dLdA

    with np.errstate(invalid="ignore", over="ignore"):
        for a, b in zip(*_both(run), strict=True):
            _assert_same_bits(a, b)


@needs_layers
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, k", [(1, 1), (1, 10), (32, 10), (33, 3), (128, 10)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_nllm_fused_kernel_gives_the_bits_of_the_plain_lines(dtype, rows, k, reduction):
    rng = np.random.default_rng(4)
    A = cr.Softmax().forward(rng.normal(scale=5.0, size=(rows, k)).astype(dtype))
    A[0, 0] = 0.0  # clipped to ε in the log
    y = rng.integers(0, k, rows)
    y[0] = 0

    def run():
        loss = cr.NLLM(reduction=reduction)
        value = loss(A, y)
        return np.float64(value), loss.picked, loss.fused_backward()

    for a, b in zip(*_both(run), strict=True):
        _assert_same_bits(a, b)


@needs_layers
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_fit_with_the_layer_kernels_gives_the_bits_of_numpy(dtype, batch_size):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 6)).astype(dtype)
    y = rng.integers(0, 4, 100)
    runs = []
    for on in (True, False):
        model = mlp((6, 16, 8, 4), dtype=dtype)
        with kernels.enabled(on):
            history = cr.fit(model, cr.NLLM(), X, y, epochs=3, batch_size=batch_size, rng=0,
                             progress=False)
        runs.append((weights(model), history.history["loss"]))
    assert_same_weights(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


@needs_layers
def test_each_layer_kernel_runs_by_default(monkeypatch):
    monkeypatch.setattr(kernels, "_on", True)  # the default, even under CHAINRULE_KERNELS=0
    calls = []
    for key, real in list(kernels._KERNELS.items()):
        if key[1] != "Adam._update":
            monkeypatch.setitem(kernels._KERNELS, key,
                                lambda *a, _k=key, _r=real: calls.append(_k[1]) or _r(*a))
    monkeypatch.setattr(kernels, "_chosen", {})
    model = mlp((6, 5, 3))
    X = np.random.default_rng(0).normal(size=(8, 6)).astype(np.float32)
    loss = cr.NLLM()
    loss(model(X), np.arange(8) % 3)
    model.backward_from(loss)
    assert sorted(set(calls)) == ["Linear.backward_params", "Linear.forward", "NLLM._sum",
                                  "NLLM.fused_backward", "ReLU.backward", "ReLU.forward",
                                  "Softmax.forward"]


@needs_layers
def test_layer_kernels_leave_what_they_cannot_take_to_the_plain_lines():
    relu = cr.ReLU()
    strided = np.arange(-6.0, 6.0, dtype=np.float32).reshape(3, 4)[:, ::2]
    np.testing.assert_array_equal(relu.forward(strided), np.maximum(strided, 0))
    np.testing.assert_array_equal(relu.forward(np.array([[-2, 3]])), [[0, 3]])  # ints
    big_endian = np.array([[-1.0, 2.0]], dtype=">f4")
    np.testing.assert_array_equal(relu.forward(big_endian), [[0.0, 2.0]])
    with pytest.raises(cr.ChainruleError):
        cr.Softmax().forward(np.zeros(3, np.float32))  # the plain line's message, not C's
    with pytest.raises(cr.ChainruleError, match="expected"):
        cr.Linear(3, 2, rng=0)(np.zeros((4, 5), np.float32))
    layer = cr.Linear(3, 2, rng=0)
    np.testing.assert_array_equal(layer(np.ones((2, 3), np.float64)),  # cast, as plain
                                  layer(np.ones((2, 3), np.float32)))

    class MyReLU(cr.ReLU):  # a subclass keeps its own lines, even when it only inherits
        pass

    assert kernels._kernel_for(MyReLU, "forward") is None
    loss = cr.NLLM()  # sample weights: the plain lines
    A = cr.Softmax().forward(np.zeros((4, 3), np.float32))
    loss(A, np.arange(4) % 3, weights=np.array([1.0, 0.0, 2.0, 1.0]))
    with kernels.enabled(False):
        plain = loss.fused_backward()
    _assert_same_bits(loss.fused_backward(), plain)
