"""chainrule.export: ONNX graphs run in ONNX Runtime, PyTorch twins, scikit-learn MLPs, and
``chainrule export`` on the command line.

Every module of ``cases.MODULES`` goes to ONNX and to PyTorch. An activation alone has no
dtype of its own (it computes in its input's), so each single module is also exported behind
a ``Linear`` of the dtype under test, which fixes the graph's input dtype. Each group of tests
skips by itself when its optional package (onnx and onnxruntime, torch, scikit-learn) is
missing.
"""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

import chainrule as cr
from cases import MODULE_IDS, MODULES, UserModule
from chainrule.export import from_sklearn, from_torch, to_onnx, to_torch

DTYPES = [np.float32, np.float64]
ONNX_TOL = {np.float32: {"rtol": 1e-5, "atol": 1e-5}, np.float64: {"rtol": 1e-12, "atol": 1e-12}}
TORCH_TOL = {np.float32: {"rtol": 1e-5, "atol": 1e-6}, np.float64: {"rtol": 1e-6, "atol": 1e-6}}


def _ort():
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


def _torch():
    return pytest.importorskip("torch")


def _model(case, dtype) -> cr.Sequential:
    """The case as a model whose first module has parameters of ``dtype``."""
    m = case.make(dtype)
    if case.is_network:
        return m
    front = cr.Linear(case.n_in, case.n_in, rng=3, dtype=dtype)
    return cr.Sequential(front, m) if m.parameters() == [] else cr.Sequential(m)


def _run_onnx(path, X):
    ort = _ort()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": X})


def _notes_options():
    """Dropout(scaling="notes") and BatchNorm(eps_inside="std") where chainrule has them."""
    try:
        drop = cr.Dropout(0.3, scaling="notes", rng=0)
        bn = cr.BatchNorm(4, eps=1e-3, eps_inside="std", dtype=np.float64)
    except TypeError:
        pytest.skip("this chainrule has no scaling= / eps_inside= options")
    r = np.random.default_rng(1)
    bn.G.data[...] = r.uniform(0.5, 1.5, (1, 4))
    bn.B.data[...] = r.normal(size=(1, 4))
    bn.running_mean[...] = r.normal(size=(1, 4))
    bn.running_var[...] = r.uniform(0.5, 2.0, (1, 4))
    return drop, bn


# -- ONNX ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("case", MODULES, ids=MODULE_IDS)
def test_onnx_graph_is_valid_and_runs_like_predict(case, dtype, tmp_path):
    onnx = pytest.importorskip("onnx")
    model = _model(case, dtype)
    before = [p.data.copy() for p in model.parameters()]
    mode = [getattr(m, "training", None) for m in model.modules]
    proto = to_onnx(model, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")), full_check=True)
    dim = proto.graph.input[0].type.tensor_type.shape.dim
    assert dim[0].dim_param == "N" and dim[1].dim_value == case.n_in
    for n in (1, 7, 64):  # one graph, any batch size
        X = case.inputs(n, dtype, seed=n)
        (A,) = _run_onnx(tmp_path / "m.onnx", X)
        assert A.dtype == dtype and A.shape == (n, case.n_out)
        np.testing.assert_allclose(A, model.predict(X), **ONNX_TOL[dtype])
    # exporting changed nothing in the model
    assert [getattr(m, "training", None) for m in model.modules] == mode
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, b)


def test_onnx_every_module_runs_at_every_opset(tmp_path):
    """Each opset ``to_onnx`` takes (13 to the installed onnx's newest), each module of
    ``cases.MODULES`` and the notes' conventions, in float32 and float64: ONNX Runtime has a
    kernel for every operator and gives ``predict``'s numbers."""
    onnx = pytest.importorskip("onnx")
    _ort()
    drop, bn = _notes_options()
    notes = cr.Sequential(cr.Linear(4, 4, rng=0, dtype=np.float64), bn, cr.LeakyReLU(0.1),
                          drop)
    models = [(cid, _model(case, dtype), case.n_in, dtype)
              for case, cid in zip(MODULES, MODULE_IDS) for dtype in DTYPES]
    models.append(("notes", notes, 4, np.float64))
    X = {dtype: np.random.default_rng(5).normal(size=(6, 16)).astype(dtype) for dtype in DTYPES}
    for opset in range(13, onnx.defs.onnx_opset_version() + 1):
        for name, model, n_in, dtype in models:
            path = tmp_path / f"{name}-{np.dtype(dtype).name}-{opset}.onnx"
            to_onnx(model, path, opset=opset)
            (A,) = _run_onnx(path, X[dtype][:, :n_in])
            np.testing.assert_allclose(A, model.predict(X[dtype][:, :n_in]), **ONNX_TOL[dtype],
                                       err_msg=f"{name} {np.dtype(dtype).name} opset {opset}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_onnx_leaky_relu_is_chainrules_bit_for_bit(dtype, tmp_path):
    """Behind an identity Linear (an exact product), the graph's LeakyReLU gives the bits of
    chainrule's, subnormals and numbers near the dtype's range included."""
    onnx = pytest.importorskip("onnx")
    _ort()
    front = cr.Linear(4, 4, rng=0, dtype=dtype)
    front.W.data[...], front.W0.data[...] = np.eye(4), 0
    model = cr.Sequential(front, cr.LeakyReLU(0.3))
    tiny = np.finfo(dtype).smallest_subnormal
    big = np.finfo(dtype).max / 2
    X = np.array([[0.0, 1.0, tiny, -tiny], [big, -big, -1 / 3, 1 / 3],
                  [1e-30, -1e-30, 2.5, -7.1]], dtype)
    want = model.predict(X)
    for opset in (13, 17, onnx.defs.onnx_opset_version()):
        to_onnx(model, tmp_path / "m.onnx", opset=opset)
        (A,) = _run_onnx(tmp_path / "m.onnx", X)
        assert A.tobytes() == want.tobytes(), (opset, A, want)


def test_onnx_a_parameterless_model_is_float32_with_open_width(tmp_path):
    _ort()
    to_onnx(cr.Sequential(cr.Tanh(), cr.Softmax()), tmp_path / "m.onnx")
    X = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    (A,) = _run_onnx(tmp_path / "m.onnx", X)
    np.testing.assert_allclose(A, cr.Sequential(cr.Tanh(), cr.Softmax()).predict(X), rtol=1e-6)


def test_onnx_the_notes_dropout_and_batchnorm_conventions(tmp_path):
    _ort()
    drop, bn = _notes_options()
    model = cr.Sequential(cr.Linear(4, 4, rng=0, dtype=np.float64), bn, cr.ReLU(), drop,
                          cr.Linear(4, 2, rng=1, dtype=np.float64))
    to_onnx(model, tmp_path / "m.onnx")
    X = np.random.default_rng(2).normal(size=(9, 4))
    (A,) = _run_onnx(tmp_path / "m.onnx", X)
    np.testing.assert_allclose(A, model.predict(X), rtol=1e-12, atol=1e-12)
    # the graph does scale by 1 − p and put eps outside the square root: against plain NumPy
    Z = X @ model[0].W.data + model[0].W0.data
    Z = bn.G.data * (Z - bn.running_mean) / (np.sqrt(bn.running_var) + 1e-3) + bn.B.data
    A_hand = (np.maximum(Z, 0) * 0.7) @ model[4].W.data + model[4].W0.data
    np.testing.assert_allclose(A, A_hand, rtol=1e-12)


def test_onnx_casts_where_the_dtype_changes(tmp_path):
    _ort()
    model = cr.Sequential(cr.Linear(3, 4, rng=0), cr.Sigmoid(),
                          cr.Linear(4, 2, rng=1, dtype=np.float64))
    to_onnx(model, tmp_path / "m.onnx")
    X = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    (A,) = _run_onnx(tmp_path / "m.onnx", X)
    assert A.dtype == np.float64
    np.testing.assert_allclose(A, model.predict(X), rtol=1e-6)


class Doubler(UserModule):
    def forward(self, A):
        return 2 * A

    def backward(self, dLdA):
        return 2 * dLdA


class MyLinear(cr.Linear):
    pass


@pytest.mark.parametrize("export", ["onnx", "torch"])
@pytest.mark.parametrize("bad, path, name", [
    (lambda: cr.Sequential(cr.Linear(2, 2), Doubler()), "modules.1", "Doubler"),
    (lambda: cr.Sequential(cr.Sequential(cr.ReLU(), MyLinear(2, 2))), "modules.0.modules.1",
     "MyLinear"),
    (lambda: Doubler(), "modules.0", "Doubler"),
    (lambda: "a string", "modules.0", "str"),
])
def test_a_module_chainrule_cannot_translate_is_named(bad, path, name, export, tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")
    if export == "onnx":
        pytest.importorskip("onnx")
        with pytest.raises(cr.ChainruleError, match=rf"to_onnx cannot translate {path}, a "
                                                    rf"\S*{name}: expected one of Linear"):
            to_onnx(bad(), target)
        assert target.read_bytes() == b"old"  # nothing written
    else:
        _torch()
        with pytest.raises(cr.ChainruleError, match=rf"to_torch cannot translate {path}, a "
                                                    rf"\S*{name}"):
            to_torch(bad())


def test_onnx_opset_choice_and_its_checks(tmp_path):
    onnx = pytest.importorskip("onnx")
    model = cr.Sequential(cr.Linear(2, 3, rng=0), cr.Softmax())
    assert to_onnx(model, tmp_path / "a.onnx").opset_import[0].version == 17
    assert to_onnx(model, tmp_path / "b.onnx", opset=13).opset_import[0].version == 13
    X = np.ones((2, 2), np.float32)
    np.testing.assert_allclose(_run_onnx(tmp_path / "b.onnx", X)[0], model.predict(X),
                               rtol=1e-6)
    newest = onnx.defs.onnx_opset_version()
    for bad in (12, newest + 1, 17.0, "17"):
        with pytest.raises(cr.ChainruleError, match=f"expected opset as an int from 13 to "
                                                    f"{newest}"):
            to_onnx(model, tmp_path / "c.onnx", opset=bad)
    assert not (tmp_path / "c.onnx").exists()


def test_onnx_writes_atomically_and_leaves_no_temporary_file(tmp_path):
    pytest.importorskip("onnx")
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")
    to_onnx(cr.Sequential(cr.Linear(2, 1, rng=0)), os.fspath(target))
    assert target.read_bytes() != b"old"
    assert os.listdir(tmp_path) == ["m.onnx"]
    with pytest.raises(FileNotFoundError):
        to_onnx(cr.Sequential(cr.Linear(2, 1, rng=0)), tmp_path / "no" / "m.onnx")


# -- PyTorch ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("case", MODULES, ids=MODULE_IDS)
def test_to_torch_eval_outputs_equal_predict(case, dtype):
    torch = _torch()
    model = _model(case, dtype)
    net = to_torch(model)
    assert isinstance(net, torch.nn.Sequential)
    assert net.training == model.training
    X = case.inputs(9, dtype, seed=4)
    with torch.no_grad():
        A = net.eval()(torch.from_numpy(X)).numpy()
    assert A.dtype == dtype
    np.testing.assert_allclose(A, model.predict(X), **TORCH_TOL[dtype])


@pytest.mark.parametrize("case", MODULES, ids=MODULE_IDS)
def test_round_trip_through_torch_is_lossless(case):
    _torch()
    model = _model(case, np.float64)
    back = from_torch(to_torch(model))
    assert _structure(back) == _structure(model)
    for a, b in zip(back.parameters(), model.parameters(), strict=True):
        assert a.name == b.name and a.data.dtype == b.data.dtype
        np.testing.assert_array_equal(a.data, b.data)
    for a, b in zip(_leaves(back), _leaves(model), strict=True):
        if isinstance(a, cr.BatchNorm):
            np.testing.assert_array_equal(a.running_mean, b.running_mean)
            np.testing.assert_array_equal(a.running_var, b.running_var)


def _leaves(m):
    return [x for sub in m.modules for x in _leaves(sub)] if isinstance(m, cr.Sequential) else [m]


def _structure(m):
    """Classes, settings and modes, nested as the model is; not how the weights were first
    drawn (Linear's init and offsets), which torch has no place for."""
    if isinstance(m, cr.Sequential):
        return ("Sequential", m.training, [_structure(s) for s in m.modules])
    config = {k: v for k, v in m.config().items() if k not in ("init", "offsets")}
    return (type(m).__name__, m.training, config)


def _torch_net(torch, dtype):
    nn = torch.nn
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(5, eps=1e-3, momentum=0.2, dtype=dtype)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
    return nn.Sequential(
        nn.Linear(4, 5, dtype=dtype), bn, nn.ReLU(), nn.Dropout(0.3),
        nn.Sequential(nn.Linear(5, 5, dtype=dtype), nn.Tanh(), nn.Identity()),
        nn.Linear(5, 5, bias=False, dtype=dtype), nn.LeakyReLU(0.2), nn.Sigmoid(),
        nn.Linear(5, 3, dtype=dtype), nn.Softmax(dim=-1))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_from_torch_computes_what_torch_computes(dtype):
    torch = _torch()
    net = _torch_net(torch, getattr(torch, np.dtype(dtype).name)).eval()
    model = from_torch(net)
    assert model.dtype == dtype and not model.training
    assert [type(m).__name__ for m in model.modules] == [
        "Linear", "BatchNorm", "ReLU", "Dropout", "Sequential", "Linear", "LeakyReLU",
        "Sigmoid", "Linear", "Softmax"]
    assert model[1].eps == 1e-3 and model[1].momentum == 0.2 and model[3].p == 0.3
    np.testing.assert_array_equal(model[5].W0.data, 0)  # bias=False
    X = np.random.default_rng(0).normal(size=(8, 4)).astype(dtype)
    with torch.no_grad():
        want = net(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(model.predict(X), want, **TORCH_TOL[dtype])
    # and back: every tensor of the state_dict bit for bit (a missing bias comes back as 0)
    again = to_torch(model).state_dict()
    for key, value in net.state_dict().items():
        if key != "1.num_batches_tracked":
            torch.testing.assert_close(again[key], value, rtol=0, atol=0)


def test_from_torch_keeps_each_modules_mode_and_takes_a_single_module():
    torch = _torch()
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    net[1].eval()
    model = from_torch(net)
    assert model.training and model[0].training and not model[1].training
    single = from_torch(torch.nn.Linear(3, 1).double())
    assert isinstance(single, cr.Sequential) and single[0].W.data.shape == (3, 1)
    assert single.dtype == np.float64


class _MyTorchLinear:
    pass  # replaced below by a torch.nn.Linear subclass when torch is there


@pytest.mark.parametrize("make, path, message", [
    (lambda nn: nn.Sequential(nn.Linear(2, 2), nn.GELU()), "1", "a torch.nn.modules.activation"
     ".GELU: expected one of torch.nn.Linear"),
    (lambda nn: nn.Sequential(nn.Sequential(nn.Conv1d(1, 1, 1))), "0.0", "Conv1d"),
    (lambda nn: nn.Softmax(dim=0), "0", "Softmax\\(dim=0\\).*dim=-1 or dim=1"),
    (lambda nn: nn.BatchNorm1d(2, track_running_stats=False), "0", "running statistics"),
    (lambda nn: nn.BatchNorm1d(2, momentum=None), "0", "momentum, got None"),
    (lambda nn: nn.Linear(2, 2).half(), "0", "float32 or float64 weights, got torch.float16"),
    (lambda nn: nn.Sequential(type("MyLinear", (nn.Linear,), {})(2, 2)), "0", "MyLinear"),
])
def test_from_torch_refuses_what_it_cannot_translate(make, path, message):
    torch = _torch()
    with pytest.raises(cr.ChainruleError, match=rf"from_torch cannot translate {path}.*{message}"):
        from_torch(make(torch.nn))


@pytest.mark.parametrize("register, kind", [
    (lambda m: m.register_forward_hook(lambda mod, args, out: out * 2), "forward hook"),
    (lambda m: m.register_forward_pre_hook(lambda mod, args: (args[0] + 1,)),
     "forward pre-hook"),
    (lambda m: m.register_full_backward_hook(lambda mod, gin, gout: None), "backward hook"),
    (lambda m: m.register_full_backward_pre_hook(lambda mod, gout: None),
     "backward pre-hook"),
])
@pytest.mark.parametrize("where, path", [
    (lambda net: net[1][0], "1.0"), (lambda net: net[0], "0"), (lambda net: net, "the model")])
def test_from_torch_refuses_a_module_with_hooks(register, kind, where, path):
    """A hook changes what the module computes (or its gradients); chainrule's modules have
    none, so an import would compute something else."""
    torch = _torch()
    nn = torch.nn
    net = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 1)))
    handle = register(where(net))
    with pytest.raises(cr.ChainruleError, match=rf"from_torch cannot translate {path}, a "
                                                rf"\S+ with a {kind}:"):
        from_torch(net)
    handle.remove()
    assert isinstance(from_torch(net), cr.Sequential)


@pytest.mark.parametrize("name, hook", [
    ("register_module_forward_hook", lambda mod, args, out: out),
    ("register_module_forward_pre_hook", lambda mod, args: None),
    ("register_module_full_backward_hook", lambda mod, gin, gout: None),
])
def test_from_torch_refuses_while_a_global_hook_is_registered(name, hook):
    torch = _torch()
    handle = getattr(torch.nn.modules.module, name)(hook)
    try:
        with pytest.raises(cr.ChainruleError, match="while a global .*hook is registered"):
            from_torch(torch.nn.Linear(2, 1))
    finally:
        handle.remove()
    assert isinstance(from_torch(torch.nn.Linear(2, 1)), cr.Sequential)


def test_to_torch_refuses_the_notes_conventions_torch_lacks():
    _torch()
    drop, bn = _notes_options()
    with pytest.raises(cr.ChainruleError, match="modules.1, Dropout.*scaling='notes'.*inverted"):
        to_torch(cr.Sequential(cr.Linear(4, 4), drop))
    with pytest.raises(cr.ChainruleError, match="modules.0, BatchNorm.*eps_inside='std'"):
        to_torch(bn)


def test_to_torch_batchnorm_trains_as_chainrules():
    """The same momentum convention and unbiased running variance: one training forward
    moves both models' running statistics alike."""
    torch = _torch()
    bn = cr.BatchNorm(3, eps=1e-3, momentum=0.3, dtype=np.float64)
    net = to_torch(cr.Sequential(bn))
    X = np.random.default_rng(0).normal(2.0, 3.0, size=(6, 3))
    A = bn(X)
    with torch.no_grad():
        A_torch = net(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(A_torch, A, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net[0].running_mean.numpy(), bn.running_mean[0], rtol=1e-12)
    np.testing.assert_allclose(net[0].running_var.numpy(), bn.running_var[0], rtol=1e-12)


def test_to_torch_copies_and_leaves_torchs_random_generator_alone():
    torch = _torch()
    model = cr.Sequential(cr.Linear(3, 2, rng=0))
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    net = to_torch(model)
    assert torch.equal(torch.random.get_rng_state(), state)
    with torch.no_grad():
        net[0].weight.zero_()
    assert np.abs(model[0].W.data).sum() > 0  # no memory shared


def test_step_goes_to_torch_and_back():
    torch = _torch()
    net = to_torch(cr.Sequential(cr.Linear(2, 2, rng=0, dtype=np.float64), cr.Step()))
    x = torch.tensor([[-1.0, 2.0], [0.5, -3.0]], dtype=torch.float64)
    model = from_torch(net)
    assert isinstance(model[1], cr.Step)
    np.testing.assert_array_equal(net(x).detach().numpy(), model.predict(x.numpy()))


# -- scikit-learn ------------------------------------------------------------------------------

def _sk_data(kind):
    r = np.random.default_rng(0)
    X = r.normal(size=(80, 5))
    if kind == "binary":
        return X, np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    if kind == "multiclass":
        return X, np.digitize(X[:, 0] - X[:, 2], [-0.5, 0.5]) * 10
    if kind == "multilabel":
        return X, np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5], 1).astype(int)
    if kind == "regression":
        return X, X @ r.normal(size=5) + 3
    return X, np.stack([X @ r.normal(size=5), np.sin(X[:, 0])], 1)  # two targets


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "regression",
                                  "regression2"])
def test_from_sklearn_predicts_as_the_estimator_and_explains(kind, activation):
    pytest.importorskip("sklearn")
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    from chainrule._build import class_probabilities
    X, y = _sk_data(kind)
    Est = MLPRegressor if kind.startswith("regression") else MLPClassifier
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = Est(hidden_layer_sizes=(7, 6), activation=activation, max_iter=200,
                  random_state=0).fit(X, y)
    model, loss = from_sklearn(est)
    assert model.dtype == np.float64 and not model.training
    A = model.predict(X)
    if kind in ("binary", "multiclass"):
        np.testing.assert_allclose(class_probabilities(A), est.predict_proba(X), rtol=1e-6,
                                   atol=1e-9)
        Y = np.searchsorted(est.classes_, y)
        assert isinstance(loss, cr.NLL if kind == "binary" else cr.NLLM)
    elif kind == "multilabel":
        np.testing.assert_allclose(A, est.predict_proba(X), rtol=1e-6, atol=1e-9)
        Y = y
        assert isinstance(loss, cr.NLL)
    else:
        np.testing.assert_allclose(A, est.predict(X).reshape(len(X), -1), rtol=1e-6,
                                   atol=1e-9)
        Y = y.reshape(len(X), -1)
        assert isinstance(loss, cr.SquareLoss)
    explanation = cr.explain(model, loss, X[:16], Y[:16])
    assert [layer["path"] for layer in explanation.layers] == ["modules.4", "modules.2",
                                                               "modules.0"]
    report = cr.gradcheck(model, loss, X[:16], Y[:16])
    assert report.ok, report.errors
    assert not model.training  # explain and gradcheck leave the mode as it was


def test_from_sklearn_keeps_float32():
    pytest.importorskip("sklearn")
    from sklearn.neural_network import MLPRegressor
    X, y = _sk_data("regression")
    est = MLPRegressor(hidden_layer_sizes=(4,), max_iter=20, random_state=0)
    est.fit(X.astype(np.float32), y)
    model, _ = from_sklearn(est)
    assert model.dtype == np.float32
    np.testing.assert_allclose(model.predict(X.astype(np.float32))[:, 0],
                               est.predict(X.astype(np.float32)), rtol=1e-5, atol=1e-5)


def test_from_sklearn_refuses_what_is_not_a_fitted_mlp():
    pytest.importorskip("sklearn")
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.neural_network import MLPRegressor as SkRegressor

    from chainrule.sklearn import MLPRegressor as OurRegressor
    with pytest.raises(cr.ChainruleError, match="fitted MLPClassifier, got one not fitted"):
        from_sklearn(MLPClassifier())
    with pytest.raises(cr.ChainruleError, match="got sklearn.linear_model.*LogisticRegression"):
        from_sklearn(LogisticRegression())
    X, y = _sk_data("regression")
    ours = OurRegressor((3,), epochs=1, random_state=0).fit(X, y)
    with pytest.raises(cr.ChainruleError, match="use .model_"):
        from_sklearn(ours)
    poisson = SkRegressor(loss="poisson", hidden_layer_sizes=(3,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        poisson.fit(X, np.abs(y))
    with pytest.raises(cr.ChainruleError, match="out_activation_ in .* got 'relu' and 'exp'"):
        from_sklearn(poisson)


# -- the command line --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Models saved by ``chainrule train``: a classifier on iris, a regressor on diabetes,
    and the raw CSV features that ``chainrule predict`` reads for each."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_diabetes, load_iris

    from chainrule.cli import main
    folder = tmp_path_factory.mktemp("cli")
    files = {}
    for name, load, label in (("iris", load_iris, "species"),
                              ("diabetes", load_diabetes, "progression")):
        d = load()
        X = d.data[::7]
        names = [f"x{i}" for i in range(X.shape[1])]
        np.savetxt(folder / f"{name}.csv", X, delimiter=",", header=",".join(names),
                   comments="")
        y = d.target_names[d.target] if name == "iris" else d.target
        rows = [",".join([*map(repr, x.tolist()), str(t)]) for x, t in zip(d.data, y)]
        (folder / f"{name}-train.csv").write_text(",".join([*names, label]) + "\n"
                                                   + "\n".join(rows) + "\n")
        model = folder / f"{name}.safetensors"
        assert main(["train", "--data", str(folder / f"{name}-train.csv"), "--epochs", "5",
                     "--hidden", "8", "--batch-norm", "--dropout", "0.1", "--save",
                     str(model), "--no-progress"]) == 0
        files[name] = (model, folder / f"{name}.csv", X.astype(np.float32))
    return folder, files


def _predicted(main, model, csv, capsys):
    capsys.readouterr()
    assert main(["predict", str(model), str(csv)]) == 0
    return capsys.readouterr().out.split("\n")[1:-1]


def test_cli_export_onnx_predicts_what_chainrule_predict_prints(trained, capsys):
    _ort()
    import json

    import onnx

    from chainrule.cli import main
    folder, files = trained
    model, csv, X = files["iris"]
    assert main(["export", str(model), "--onnx", str(folder / "iris.onnx")]) == 0
    A, label = _run_onnx(folder / "iris.onnx", X)  # raw features in, class names out
    assert label.tolist() == _predicted(main, model, csv, capsys)
    props = {p.key: p.value for p in onnx.load(str(folder / "iris.onnx")).metadata_props}
    assert json.loads(props["features"]) == [f"x{i}" for i in range(4)]
    # the probabilities are the model's on the standardised features
    net, info_tensors = cr.load(model), _scaling(model)
    np.testing.assert_allclose(A, net.predict((X - info_tensors[0]) / info_tensors[1]),
                               rtol=1e-5, atol=1e-6)

    model, csv, X = files["diabetes"]
    assert main(["export", str(model), "--onnx", str(folder / "diabetes.onnx")]) == 0
    outputs = _run_onnx(folder / "diabetes.onnx", X)
    assert len(outputs) == 1  # regression: no label
    printed = np.array(_predicted(main, model, csv, capsys), float)
    np.testing.assert_allclose(outputs[0][:, 0], printed, rtol=1e-5)  # in the targets' units


def _scaling(model):
    from chainrule.serialization import load_checkpoint
    _, _, _, tensors = load_checkpoint(model)
    return tensors["mean"], tensors["std"]


def test_cli_export_torch_is_a_weights_only_file_rebuilt_from_torch_nn(trained, capsys):
    torch = _torch()
    from chainrule.cli import main
    folder, files = trained
    for name in ("iris", "diabetes"):
        model, csv, X = files[name]
        path = folder / f"{name}.pt"
        assert main(["export", str(model), "--torch", str(path)]) == 0
        saved = torch.load(path, weights_only=True)  # refuses anything but plain data
        assert saved["format"] == "chainrule-torch-1"
        # the recipe of docs/export.md
        net = torch.nn.Sequential(*(getattr(torch.nn, s["type"])(**s["args"])
                                    for s in saved["architecture"]))
        net.load_state_dict(saved["state_dict"], assign=True)
        net.eval()
        with torch.no_grad():
            x = torch.from_numpy(X.astype(np.float64))
            A = net(((x - saved["input_mean"]) / saved["input_std"]).float()).double()
        printed = _predicted(main, model, csv, capsys)
        if name == "iris":
            assert [saved["classes"][i] for i in A.argmax(1)] == printed
        else:
            values = A[:, 0] * saved["target_scale"] + saved["target_mean"]
            np.testing.assert_allclose(values.numpy(), np.array(printed, float), rtol=1e-5)


def test_cli_export_takes_a_plain_model_file(tmp_path):
    _ort()
    from chainrule.cli import main
    model = cr.Sequential(cr.Linear(3, 2, rng=0, dtype=np.float64), cr.Sigmoid())
    cr.save(model, tmp_path / "m.safetensors")
    assert main(["export", str(tmp_path / "m.safetensors"), "--onnx",
                 str(tmp_path / "m.onnx"), "--opset", "13"]) == 0
    X = np.random.default_rng(0).normal(size=(4, 3))
    outputs = _run_onnx(tmp_path / "m.onnx", X)
    assert len(outputs) == 1
    np.testing.assert_allclose(outputs[0], model.predict(X), rtol=1e-12)


@pytest.mark.parametrize("argv, message", [
    (["export", "{model}"], "expected --onnx PATH, --torch PATH or both, got neither"),
    (["export", "{tmp}/none.safetensors", "--onnx", "{tmp}/m.onnx"], "No such file"),
    (["export", "{model}", "--onnx", "{model}/m.onnx"], "m.safetensors is a file, not a folder"),
    (["export", "{model}", "--onnx", "{model}/sub/m.onnx"], "m.safetensors is a file, not a "
                                                           "folder"),
    (["export", "{model}", "--torch", "{tmp}/no/m.pt"], "folder {tmp}/no does not exist"),
    (["export", "{model}", "--onnx", "{tmp}"], "--onnx {tmp}: expected a file to write, got a "
                                               "directory"),
    (["export", "{model}", "--torch", "."], "--torch .: expected a file to write, got a "
                                            "directory"),
    (["export", "{model}", "--onnx", "{tmp}/fifo"], "expected a regular file to write, got a "
                                                   "special file"),
    # the model file itself, or both targets in one file: refused before anything is written
    (["export", "{model}", "--onnx", "{model}"], "expected a path other than the model file"),
    (["export", "{model}", "--torch", "{tmp}/../{tmpname}/m.safetensors"], "other than the "
                                                                           "model file"),
    (["export", "{model}", "--onnx", "{tmp}/m.onnx", "--torch", "{tmp}/./m.onnx"],
     "--onnx {tmp}/m.onnx and --torch {tmp}/./m.onnx name the same file"),
    (["export", "{model}", "--onnx", "{tmp}/m.onnx", "--opset", "12"], "opset as an int"),
    (["export", "{model}", "--onnx", "{tmp}/m.onnx", "--opset", "x"], "invalid"),
    (["export", "{bad}", "--onnx", "{tmp}/m.onnx"], "bad.safetensors"),
    (["export", "{user}", "--torch", "{tmp}/m.pt"], "cannot write modules.1 (Step)"),
    # the torch half refused: the ONNX half, which could be written, is not written either
    (["export", "{user}", "--onnx", "{tmp}/m.onnx", "--torch", "{tmp}/m.pt"],
     "cannot write modules.1 (Step)"),
    (["export", "{bnstd}", "--onnx", "{tmp}/m.onnx", "--torch", "{tmp}/m.pt"],
     "eps_inside='std'"),
    (["export", "{dropnotes}", "--onnx", "{tmp}/m.onnx", "--torch", "{tmp}/m.pt"],
     "scaling='notes'"),
    # train's metadata, broken: never exported as if the file had no scaling
    (["export", "{broken}", "--onnx", "{tmp}/m.onnx"], "metadata 'cli' expected"),
])
def test_cli_export_bad_arguments_exit_2_with_one_line(argv, message, tmp_path, capsys):
    _ort()
    _torch()
    from chainrule.cli import main
    model, bad, user = tmp_path / "m.safetensors", tmp_path / "bad.safetensors", tmp_path / "s"
    cr.save(cr.Sequential(cr.Linear(2, 1, rng=0)), model)
    cr.save(cr.Sequential(cr.Linear(2, 1, rng=0), cr.Step()), user)
    bad.write_bytes(b"not a model")
    from chainrule.serialization import save_checkpoint
    broken = tmp_path / "broken.safetensors"
    save_checkpoint(broken, cr.Sequential(cr.Linear(2, 1, rng=0)), None,
                    {"cli": {"task": "regression"}}, {"mean": np.zeros(2), "std": np.ones(2)})
    drop, bn = _notes_options()
    bnstd, dropnotes = tmp_path / "bnstd.safetensors", tmp_path / "dropnotes.safetensors"
    cr.save(cr.Sequential(cr.Linear(2, 4, rng=0, dtype=np.float64), bn), bnstd)
    cr.save(cr.Sequential(cr.Linear(2, 2, rng=0), drop), dropnotes)
    argv = [a.format(model=model, tmp=tmp_path, tmpname=tmp_path.name, bad=bad, user=user,
                     broken=broken, bnstd=bnstd, dropnotes=dropnotes) for a in argv]
    message = message.format(tmp=tmp_path)
    os.mkfifo(tmp_path / "fifo")
    model_bytes = model.read_bytes()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.pt").exists()
    assert model.read_bytes() == model_bytes  # the input untouched
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert stat.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode)


def test_cli_export_refuses_a_link_to_the_model_file(tmp_path, capsys):
    """The same file under another name (a symbolic or a hard link) is still the model."""
    from chainrule.cli import main
    model = tmp_path / "m.safetensors"
    cr.save(cr.Sequential(cr.Linear(2, 1, rng=0)), model)
    before = model.read_bytes()
    (tmp_path / "soft.onnx").symlink_to(model)
    os.link(model, tmp_path / "hard.pt")
    for flag, name in (("--onnx", "soft.onnx"), ("--torch", "hard.pt")):
        assert main(["export", str(model), flag, str(tmp_path / name)]) == 2
        assert "expected a path other than the model file" in capsys.readouterr().err
    assert model.read_bytes() == before


def test_the_export_page_runs(tmp_path, monkeypatch, capsys):
    """Every Python block of docs/export.md, in order, beside the files its command lines
    write (on the bundled iris data)."""
    _ort()
    _torch()
    pytest.importorskip("sklearn")
    import re
    from pathlib import Path

    from chainrule.cli import main
    page = (Path(__file__).parents[1] / "docs" / "export.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert len(blocks) == 6
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "iris", "--epochs", "5", "--save", "iris.safetensors",
                 "--no-progress"]) == 0
    assert main(["export", "iris.safetensors", "--onnx", "iris.onnx", "--torch", "iris.pt"]) == 0
    namespace = {}  # shared: the report block goes on from the scikit-learn one
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/export.md block {i + 1}", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "True" in out and "modules.0" in out  # the copies, the explain table
    assert "modules.4" in (tmp_path / "sklearn-iris.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("flag, package", [("--onnx", "onnx"), ("--torch", "torch")])
def test_cli_export_without_the_package_says_what_to_install(flag, package, tmp_path,
                                                             monkeypatch, capsys):
    import sys

    from chainrule.cli import main
    cr.save(cr.Sequential(cr.Linear(2, 1, rng=0)), tmp_path / "m.safetensors")
    monkeypatch.setitem(sys.modules, package, None)  # as if it were not installed
    assert main(["export", str(tmp_path / "m.safetensors"), flag, str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == (f"chainrule: error: export needs the {package} package, which is not "
                   f"installed (pip install {package})\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("k", [2, 3])
def test_onnx_label_output_is_predicts_class_ties_to_the_lower(k, tmp_path):
    """``label`` names the class ``chainrule predict`` prints (``_build.class_indices``),
    for one sigmoid unit (k = 2) and a softmax; a tie goes to the lower class."""
    _ort()
    from chainrule._build import class_indices
    from chainrule.export.onnx_graph import model_proto, write
    n_out, output = (1, cr.Sigmoid()) if k == 2 else (k, cr.Softmax())
    model = cr.Sequential(cr.Linear(3, n_out, rng=0), output)
    model[0].W.data[0] = 0  # rows whose other features are 0 tie exactly
    classes = ["zero", "one", "two"][:k]
    mean, std = np.array([1.0, 2.0, 3.0]), np.array([2.0, 0.5, 1.0])
    write(model_proto(model, standardise=(mean, std), classes=classes), tmp_path / "m.onnx")
    raw = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32) * 3 + 1
    raw[:5, 1:] = mean[1:]  # standardised: (x, 0, 0), a tie
    A, label = _run_onnx(tmp_path / "m.onnx", raw)
    A_ours = model.predict((raw - mean) / std)
    np.testing.assert_allclose(A, A_ours, rtol=1e-5, atol=1e-6)
    assert label.tolist() == [classes[i] for i in class_indices(A_ours)]
    assert set(label[:5]) == {"zero"} and len(set(label)) == k
