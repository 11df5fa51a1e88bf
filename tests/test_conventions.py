"""The notes' conventions as options (API.md section 8), each against a hand computation from
the notes' formula, finite differences in float64, and a model file.

* ``Dropout(p, scaling="notes")``: training multiplies by the 0/1 mask only, eval by 1 − p
  (Clarification 34, whose "multiply all the weights by p" means the kept fraction).
* ``BatchNorm(n, eps_inside="std")``: Key Equation 37's ``Z̄ = (Z − μ)/(σ + ε)``.
* ``Linear(m, n, offsets="random")``: ``W0`` drawn like ``W`` (6.6.2's pseudocode).
* ``rng`` may be a legacy ``numpy.random.RandomState``; ``Linear``'s draws are made in
  float64, so float32 and float64 layers from one seed hold the same numbers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

import chainrule as cr
from cases import ModuleCase, batchnorm, central_difference, frozen_rngs
from chainrule._files.integrity import digest

F64 = np.float64


def _bn(n, dtype, eps_inside="std"):
    """cases.batchnorm with the notes' ε (Key Equation 37) unless told otherwise."""
    return batchnorm(n, dtype, eps_inside)


# Rows for the finite-difference checks, built like tests/cases.py's MODULES.
CASES = [
    ModuleCase("dropout-notes-train", lambda dt: cr.Dropout(0.4, scaling="notes", rng=0), 4, 4),
    ModuleCase("dropout-notes-eval", lambda dt: cr.Dropout(0.4, scaling="notes", rng=0), 4, 4,
               mode="eval"),
    ModuleCase("batchnorm-std-train", lambda dt: _bn(4, dt), 4, 4),
    ModuleCase("batchnorm-std-eval", lambda dt: _bn(4, dt), 4, 4, mode="eval"),
    ModuleCase("linear-random-offsets",
               lambda dt: cr.Linear(4, 3, offsets="random", rng=0, dtype=dt), 4, 3),
    ModuleCase("linear-randomstate",
               lambda dt: cr.Linear(4, 3, rng=np.random.RandomState(0), dtype=dt), 4, 3),
    ModuleCase("dropout-randomstate",
               lambda dt: cr.Dropout(0.4, rng=np.random.RandomState(0)), 4, 4),
    ModuleCase("seq-notes", lambda dt: cr.Sequential(
        cr.Linear(4, 6, offsets="random", rng=np.random.RandomState(1), dtype=dt),
        _bn(6, dt), cr.Tanh(), cr.Dropout(0.25, scaling="notes", rng=2),
        cr.Linear(6, 2, rng=3, dtype=dt), cr.Sigmoid()), 4, 2),
]
IDS = [c.id for c in CASES]


# -- finite differences, float64 -----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck_passes(case):
    model = case.make(F64)
    X = case.inputs(n=5)
    Y = np.random.default_rng(1).normal(size=(5, case.n_out))
    report = cr.gradcheck(model, cr.SquareLoss(), X, Y)
    assert report.max_rel_error < 1e-7, str(report)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_matches_central_differences(case):
    """L = Σ C ∘ module(X): dL/dX is backward(C) and each .grad is dL/dparameter."""
    module = case.make(F64)
    X = case.inputs(n=5)
    C = np.random.default_rng(2).normal(size=(5, case.n_out))
    rewind = frozen_rngs(module)

    def L() -> float:
        rewind()
        return float(np.sum(C * module(X)))

    L()
    dLdX = module.backward(C)
    np.testing.assert_allclose(dLdX, central_difference(L, X), rtol=1e-7, atol=1e-9)
    for p in module.parameters():
        np.testing.assert_allclose(p.grad, central_difference(L, p.data), rtol=1e-7, atol=1e-9,
                                   err_msg=f"{case.id}: dL/d{p.name}")


# -- Dropout, scaling="notes" ---------------------------------------------------------------------


def test_notes_dropout_by_hand():
    A = np.array([[2.0, 4.0, -6.0, 8.0]] * 50)
    notes = cr.Dropout(0.25, scaling="notes", rng=0)
    inverted = cr.Dropout(0.25, rng=0)  # the same generator state: the same mask
    out, out_inv = notes(A), inverted(A)
    kept = out != 0
    assert 0.6 < kept.mean() < 0.9
    np.testing.assert_array_equal(out[kept], A[kept])  # training: the mask only, no 1/(1 − p)
    np.testing.assert_array_equal(out_inv, out / 0.75)
    np.testing.assert_array_equal(notes.backward(np.ones_like(A)), kept.astype(F64))
    notes.eval()
    np.testing.assert_array_equal(notes(A[:1]), [[1.5, 3.0, -4.5, 6.0]])  # × (1 − p) = 0.75
    np.testing.assert_array_equal(notes.backward(np.ones((1, 4))), [[0.75] * 4])
    assert inverted.eval()(A[:1]) is not None and np.array_equal(inverted(A[:1]), A[:1])


def test_notes_dropout_matches_inverted_in_expectation():
    A = np.ones((400, 50))
    train = cr.Dropout(0.3, scaling="notes", rng=1)(A).mean()
    test = cr.Dropout(0.3, scaling="notes", rng=1).eval()(A).mean()
    assert test == pytest.approx(0.7) and train == pytest.approx(0.7, abs=0.01)


@pytest.mark.parametrize("dtype", [np.float32, F64])
def test_notes_dropout_keeps_the_input_dtype(dtype):
    d = cr.Dropout(0.5, scaling="notes", rng=0)
    A = np.ones((3, 4), dtype)
    assert d(A).dtype == dtype and d.backward(A).dtype == dtype
    d.eval()
    assert d(A).dtype == dtype and d.backward(A).dtype == dtype


# -- BatchNorm, eps_inside="std" -------------------------------------------------------------------

SIGMA = 1e-3
Z_SMALL = np.array([[1 - SIGMA, 5.0], [1 + SIGMA, 7.0], [1 - SIGMA, 4.0], [1 + SIGMA, 8.0]])


def test_std_batchnorm_by_hand_on_a_column_whose_sigma_is_small():
    # Column 0: μ = 1, σ = 0.001 (1/K over K = 4 rows). Key Equation 37:
    #   Z̄ = (Z − μ)/(σ + ε) = ±0.001 / 0.00101 = ±0.990099...
    # while sqrt(σ² + ε) = sqrt(1e-6 + 1e-5) = 0.0033166 gives only ±0.30151.
    eps = 1e-5
    notes = cr.BatchNorm(2, eps=eps, eps_inside="std", dtype=F64)
    torch_like = cr.BatchNorm(2, eps=eps, dtype=F64)
    sign = np.array([-1, 1, -1, 1])
    np.testing.assert_allclose(notes(Z_SMALL)[:, 0], sign * 0.001 / 0.00101, rtol=1e-9)
    np.testing.assert_allclose(torch_like(Z_SMALL)[:, 0], sign * 0.001 / np.sqrt(1.1e-5),
                               rtol=1e-9)
    # Column 1: μ = 6, σ = sqrt((1 + 1 + 4 + 4)/4) = sqrt(2.5).
    np.testing.assert_allclose(notes(Z_SMALL)[:, 1],
                               (Z_SMALL[:, 1] - 6) / (np.sqrt(2.5) + eps), rtol=1e-12)


def _jacobian_std(z, eps):
    """∂Z̄_k/∂Z_j for one column, from Z̄ = (Z − μ)/(σ + ε) by hand:
    ∂Z̄_k/∂Z_j = (δ_kj − 1/K)/(σ + ε) − (Z_k − μ) ∂σ/∂Z_j / (σ + ε)², ∂σ/∂Z_j = (Z_j − μ)/(K σ)."""
    K = len(z)
    mu = z.mean()
    sigma = np.sqrt(((z - mu) ** 2).mean())
    s = sigma + eps
    dsigma = (z - mu) / (K * sigma)
    return (np.eye(K) - 1 / K) / s - np.outer(z - mu, dsigma) / s**2


@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_std_batchnorm_backward_by_hand(eps):
    bn = cr.BatchNorm(2, eps=eps, eps_inside="std", dtype=F64)
    bn.G.data[...] = [[1.5, -0.5]]
    C = np.random.default_rng(0).normal(size=Z_SMALL.shape)  # L = Σ C ∘ A
    bn(Z_SMALL)
    dLdZ = bn.backward(C)
    for j in range(2):
        J = _jacobian_std(Z_SMALL[:, j], eps)  # J[k, i] = ∂Z̄_k/∂Z_i
        want = bn.G.data[0, j] * J.T @ C[:, j]
        np.testing.assert_allclose(dLdZ[:, j], want, rtol=1e-9, atol=1e-12)

    def L():
        return float(np.sum(C * bn(Z)))

    Z = Z_SMALL.copy()
    # Steps well below σ = 0.001, so the differences stay on the smooth part of σ.
    np.testing.assert_allclose(dLdZ, central_difference(L, Z, eps=1e-8), rtol=1e-5, atol=1e-6)


def test_std_batchnorm_with_a_constant_column_stays_finite():
    bn = cr.BatchNorm(2, eps_inside="std", dtype=F64)
    Z = np.array([[3.0, 1.0], [3.0, 2.0], [3.0, 4.0]])
    A = bn(Z)
    dLdZ = bn.backward(np.ones_like(Z) + np.arange(3)[:, None])
    np.testing.assert_array_equal(A[:, 0], [0.0, 0.0, 0.0])
    assert np.isfinite(dLdZ).all()


def test_std_batchnorm_eval_divides_by_sqrt_running_var_plus_eps():
    bn = _bn(3, F64).eval()
    Z = np.random.default_rng(3).normal(size=(4, 3))
    want = bn.G.data * (Z - bn.running_mean) / (np.sqrt(bn.running_var) + bn.eps) + bn.B.data
    np.testing.assert_allclose(bn(Z), want, rtol=1e-12)


def test_running_statistics_do_not_depend_on_eps_inside():
    a, b = cr.BatchNorm(2, dtype=F64), cr.BatchNorm(2, eps_inside="std", dtype=F64)
    a(Z_SMALL), b(Z_SMALL)
    np.testing.assert_array_equal(a.running_mean, b.running_mean)
    np.testing.assert_array_equal(a.running_var, b.running_var)


# -- Linear: random offsets, RandomState, dtype-independent draws -----------------------------


@pytest.mark.parametrize("init, std", [("gaussian", lambda m, n: m ** -0.5),
                                       ("xavier", lambda m, n: (2 / (m + n)) ** 0.5),
                                       ("he", lambda m, n: (2 / m) ** 0.5)])
def test_random_offsets_are_drawn_like_the_weights(init, std):
    layer = cr.Linear(5, 3, init=init, offsets="random", rng=4, dtype=F64)
    r = np.random.default_rng(4)
    W, W0 = r.normal(0, std(5, 3), (5, 3)), r.normal(0, std(5, 3), (1, 3))
    np.testing.assert_array_equal(layer.W.data, W)
    np.testing.assert_array_equal(layer.W0.data, W0)
    # The weights are those of offsets="zeros": W0 is drawn after W.
    np.testing.assert_array_equal(cr.Linear(5, 3, init=init, rng=4, dtype=F64).W.data, W)
    np.testing.assert_array_equal(cr.Linear(5, 3, init=init, rng=4, dtype=F64).W0.data,
                                  np.zeros((1, 3)))


def test_randomstate_reproduces_np_random_seed_homework_weights():
    # A course's code: np.random.seed(0), then each layer's W = normal(0, m^-1/2, (m, n)) and,
    # with 6.6.2's random biases, W0 = normal(0, m^-1/2, (1, n)) after it.
    np.random.seed(0)  # noqa: NPY002 - the legacy global generator is the point here
    W1 = np.random.normal(0, 3 ** -0.5, (3, 4))  # noqa: NPY002
    W01 = np.random.normal(0, 3 ** -0.5, (1, 4))  # noqa: NPY002
    W2 = np.random.normal(0, 4 ** -0.5, (4, 2))  # noqa: NPY002
    rs = np.random.RandomState(0)
    first = cr.Linear(3, 4, offsets="random", rng=rs, dtype=F64)
    second = cr.Linear(4, 2, rng=rs, dtype=F64)
    np.testing.assert_array_equal(first.W.data, W1)
    np.testing.assert_array_equal(first.W0.data, W01)
    np.testing.assert_array_equal(second.W.data, W2)
    m = 7  # exactly rng.normal(0, m ** -0.5, (m, n)), as API.md writes it
    np.testing.assert_array_equal(cr.Linear(m, 2, rng=np.random.RandomState(0)).W.data,
                                  np.random.RandomState(0).normal(0, m ** -0.5, (m, 2))
                                  .astype(np.float32))


@pytest.mark.parametrize("init", ["gaussian", "xavier", "he"])
@pytest.mark.parametrize("offsets", ["zeros", "random"])
@pytest.mark.parametrize("rng", [0, 12345, "randomstate"])
def test_float32_and_float64_layers_start_from_the_same_numbers(init, offsets, rng):
    def make(dtype):
        source = np.random.RandomState(3) if rng == "randomstate" else rng
        return cr.Linear(6, 5, init=init, offsets=offsets, rng=source, dtype=dtype)

    a, b = make(np.float32), make(F64)
    assert a.W.data.dtype == np.float32 and b.W.data.dtype == F64
    np.testing.assert_array_equal(a.W.data, b.W.data.astype(np.float32))
    np.testing.assert_array_equal(a.W0.data, b.W0.data.astype(np.float32))


# -- RandomState wherever a Generator goes -----------------------------------------------------


def test_dropout_draws_from_the_randomstates_own_stream():
    rs = np.random.RandomState(0)
    d = cr.Dropout(0.5, rng=rs)
    before = rs.get_state(legacy=False)["state"]["pos"]
    mask = d(np.ones((200, 50))) != 0
    assert rs.get_state(legacy=False)["state"]["pos"] != before  # the same stream advanced
    assert 0.45 < mask.mean() < 0.55
    twin = cr.Dropout(0.5, rng=np.random.RandomState(0))
    np.testing.assert_array_equal(twin(np.ones((200, 50))) != 0, mask)


def test_dropout_with_a_randomstate_draws_the_courses_mask():
    # np.random.seed(0); mask = np.random.rand(*A.shape) >= p: a unit is dropped with
    # probability p (Definition 33), the RandomState's own uniform decides which.
    np.random.seed(0)  # noqa: NPY002
    mask = np.random.rand(6, 5) >= 0.3  # noqa: NPY002
    d = cr.Dropout(0.3, scaling="notes", rng=np.random.RandomState(0))
    np.testing.assert_array_equal(d(np.ones((6, 5))), mask.astype(F64))


def test_dropout_keeps_half_the_units_on_an_mt19937_generator():
    # MT19937 makes 32 random bits per draw: read as two 32-bit halves of a 64-bit draw, one
    # half was always 0 and dropout kept only about 1/4 of the units for p = 0.5.
    d = cr.Dropout(0.5, rng=np.random.Generator(np.random.MT19937(0)))
    assert 0.48 < (d(np.ones((400, 100))) != 0).mean() < 0.52


def _model(rs_seed):
    rs = np.random.RandomState(rs_seed)
    return cr.Sequential(cr.Linear(4, 8, rng=rs), cr.ReLU(), cr.Dropout(0.2, rng=rs),
                         cr.Linear(8, 3, rng=rs), cr.Softmax())


def _data():
    r = np.random.default_rng(0)
    return r.normal(size=(40, 4)).astype(np.float32), r.integers(0, 3, 40)


def test_fit_takes_a_randomstate_and_is_reproducible():
    X, y = _data()
    runs = []
    for _ in range(2):
        model = _model(0)
        h = cr.fit(model, cr.NLLM(), X, y, epochs=3, batch_size=8, input_noise=0.1,
                   rng=np.random.RandomState(5), progress=False)
        runs.append((h.history["loss"], [p.data.copy() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_with_a_randomstate_resumes_exactly(tmp_path):
    X, y = _data()
    whole = _model(1)
    h_whole = cr.fit(whole, cr.NLLM(), X, y, epochs=4, batch_size=8,
                     rng=np.random.RandomState(5), progress=False)

    class Stop:
        def on_epoch_end(self, epoch, logs):
            return epoch == 1

    path = tmp_path / "ck.safetensors"
    cr.fit(_model(1), cr.NLLM(), X, y, epochs=4, batch_size=8, rng=np.random.RandomState(5),
           progress=False, callbacks=[Stop()], checkpoint=path)
    model, h = cr.resume(path, cr.NLLM(), X, y, epochs=4, batch_size=8, progress=False)
    assert h.history["loss"] == h_whole.history["loss"]
    for a, b in zip(model.parameters(), whole.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


# -- model files: the options are saved; files without the keys load with the defaults ------------


def _options_model():
    return cr.Sequential(cr.Linear(3, 4, offsets="random", rng=0),
                         cr.BatchNorm(4, eps_inside="std"), cr.ReLU(),
                         cr.Dropout(0.3, scaling="notes", rng=1), cr.Linear(4, 2, rng=2))


def test_options_are_saved_and_loaded(tmp_path):
    model = _options_model()
    X = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    model(X)  # running statistics move off their start
    cr.save(model, tmp_path / "m.safetensors")
    loaded = cr.load(tmp_path / "m.safetensors")
    configs = [m.config() for m in loaded.modules]
    assert configs[0]["offsets"] == "random" and configs[1]["eps_inside"] == "std"
    assert configs[3]["scaling"] == "notes"
    model.eval(), loaded.eval()
    np.testing.assert_array_equal(loaded(X), model(X))


def _options_file_with(tmp_path, change):
    """A model file of :func:`_options_model` whose every module config went through
    ``change(config)``, re-signed as such a file would be: (its path, its tensors)."""
    path = tmp_path / "m.safetensors"
    cr.save(_options_model(), path)
    with safe_open(str(path), "np") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    arch = json.loads(metadata["architecture"])
    for spec in arch["modules"]:
        change(spec.get("config", {}))
    metadata["architecture"] = json.dumps(arch)
    metadata["sha256"] = digest(metadata, tensors)
    edited = tmp_path / "edited.safetensors"
    save_file(tensors, str(edited), metadata=metadata)
    return edited, tensors


def test_files_without_the_new_keys_load_with_the_defaults(tmp_path):
    # A file written before the options existed: its configs lack offsets, eps_inside and
    # scaling (rewritten here, with its digest recomputed, as such a file would have it).
    def drop_options(config):
        for key in ("offsets", "eps_inside", "scaling"):
            config.pop(key, None)

    old, tensors = _options_file_with(tmp_path, drop_options)
    loaded = cr.load(old)
    assert loaded.modules[0].offsets == "zeros"
    assert loaded.modules[1].eps_inside == "variance"
    assert loaded.modules[3].scaling == "inverted"
    np.testing.assert_array_equal(loaded.modules[0].W0.data, tensors["modules.0.W0"])


@pytest.mark.parametrize("key, value", [("offsets", "ones"), ("eps_inside", 1),
                                        ("scaling", "sometimes")])
def test_bad_option_values_in_a_file_are_model_file_errors(tmp_path, key, value):
    def set_option(config):
        if key in config:
            config[key] = value

    bad, _ = _options_file_with(tmp_path, set_option)
    with pytest.raises(cr.ModelFileError, match=key):
        cr.load(bad)
