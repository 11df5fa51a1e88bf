"""Model files: round trips, hostile files, atomic writes, optimizers and checkpoints.

Hostile files are built here byte by byte (8-byte header length, JSON header, raw tensors),
independently of the code under test; where a case must get past the file's SHA-256 digest
to reach a deeper check, it is re-signed with ``chainrule._files.integrity.digest``.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chainrule as cr
from cases import MODULE_IDS, MODULES, UserModule, mlp, weights
from chainrule import serialization
from chainrule._files.integrity import digest
from chainrule.errors import ChainruleError, ModelFileError
from chainrule.optimizers import OPTIMIZERS, Adam
from chainrule.serialization import load, load_checkpoint, load_optimizer, save, save_checkpoint

DTYPES = [np.float32, np.float64]
_CODES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int32): "I32",
          np.dtype(np.int64): "I64", np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL"}
_TYPES = {code: dtype for dtype, code in _CODES.items()}


# -- models ------------------------------------------------------------------------------------
def every_module_model(dtype=np.float32) -> cr.Sequential:
    """A model with every registry class (and a nested Sequential), its BatchNorm's running
    statistics moved away from 0 and 1 by a few training-mode forwards."""
    model = cr.Sequential(
        cr.Linear(5, 8, init="xavier", rng=0, dtype=dtype),
        cr.BatchNorm(8, eps=1e-3, momentum=0.3, dtype=dtype),
        cr.LeakyReLU(alpha=0.2),
        cr.Dropout(0.25, rng=1),
        cr.Sequential(cr.Linear(8, 6, init="he", rng=2, dtype=dtype), cr.Tanh()),
        cr.Linear(6, 6, rng=3, dtype=dtype), cr.ReLU(),
        cr.Linear(6, 6, rng=4, dtype=dtype), cr.Sigmoid(),
        cr.Linear(6, 6, rng=5, dtype=dtype), cr.Identity(),
        cr.Linear(6, 6, rng=6, dtype=dtype), cr.Step(),
        cr.Linear(6, 3, rng=7, dtype=dtype), cr.Softmax(),
    )
    rng = np.random.default_rng(8)
    for _ in range(3):
        model(rng.normal(2.0, 3.0, (16, 5)))
    return model


def small_model() -> cr.Sequential:
    """Linear(3, 4), BatchNorm(4), LeakyReLU(0.2), Dropout(0.1), Linear(4, 2), Softmax: the
    hostile files below edit this architecture by module index."""
    return mlp((3, 4, 2), act=lambda: cr.LeakyReLU(0.2), batch_norm=True, dropout=0.1)


def stepped(model, opt, steps=2, seed=0):
    """``opt`` after ``steps`` steps on ``model`` with standard-normal gradients drawn from
    ``seed``."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for p in model.parameters():
            p.grad[...] = rng.normal(size=p.data.shape)
        opt.step(model.parameters())
    return opt


def snapshot(module):
    """Class, settings and exact tensors of a module (recursively), for equality checks."""
    if isinstance(module, cr.Sequential):
        return ("Sequential", [snapshot(m) for m in module.modules])
    arrays = {p.name: p.data for p in module.parameters()}
    if isinstance(module, cr.BatchNorm):
        arrays.update(running_mean=module.running_mean, running_var=module.running_var)
    return (type(module).__name__, module.config(),
            {k: (a.dtype.str, a.shape, a.tobytes()) for k, a in arrays.items()})


# -- files byte by byte ----------------------------------------------------------------------
def encode(metadata, tensors, *, header=None) -> bytes:
    """safetensors bytes: ``<u64 header length><JSON header><tensor bytes>``."""
    head = {} if metadata is None else {"__metadata__": metadata}
    offset, chunks = 0, []
    for name, A in tensors.items():
        data = np.ascontiguousarray(A).tobytes()
        head[name] = {"dtype": _CODES[A.dtype], "shape": list(A.shape),
                      "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        chunks.append(data)
    text = (json.dumps(head) if header is None else header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def decode(data: bytes):
    """``(metadata, tensors)`` of a valid file, parsed without the code under test."""
    (n,) = struct.unpack("<Q", data[:8])
    head = json.loads(data[8:8 + n])
    metadata = head.pop("__metadata__")
    body = data[8 + n:]
    tensors = {}
    for name, info in head.items():
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(body[start:end], _TYPES[info["dtype"]]).reshape(
            info["shape"]).copy()
    return metadata, tensors


def signed(metadata, tensors) -> bytes:
    metadata = dict(metadata)
    metadata["sha256"] = digest(metadata, tensors)
    return encode(metadata, tensors)


@pytest.fixture(scope="module")
def valid_file() -> bytes:
    model = small_model()
    model(np.random.default_rng(0).normal(size=(6, 3)))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.safetensors")
        save(model, path, optimizer=stepped(model, Adam()))
        return Path(path).read_bytes()


# -- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("as_path", [str, Path], ids=["str", "Path"])
def test_round_trip_is_bit_identical(tmp_path, dtype, as_path):
    model = every_module_model(dtype)
    bn = model.modules[1]
    assert not np.allclose(bn.running_mean, 0) and not np.allclose(bn.running_var, 1)
    path = as_path(tmp_path / "model.safetensors")
    save(model, path)
    copy = load(path)
    assert isinstance(copy, cr.Sequential)
    assert snapshot(copy) == snapshot(model)
    assert copy.modules[2].alpha == 0.2 and copy.modules[3].p == 0.25
    assert (copy.modules[1].eps, copy.modules[1].momentum) == (1e-3, 0.3)
    X = np.random.default_rng(9).normal(size=(20, 5))
    A = copy.predict(X)
    assert A.dtype == dtype
    np.testing.assert_array_equal(A, model.predict(X))
    assert copy.training and all(m.training for m in copy.modules)
    assert os.listdir(tmp_path) == ["model.safetensors"]


@pytest.mark.parametrize("case", MODULES, ids=MODULE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_every_module_row_saves_and_loads(tmp_path, case, dtype):
    module = case.make(dtype)
    model = module if case.is_network else cr.Sequential(module)
    save(model, tmp_path / "m.safetensors")
    copy = load(tmp_path / "m.safetensors")
    assert snapshot(copy) == snapshot(model)
    X = case.inputs(7, dtype)
    np.testing.assert_array_equal(copy.predict(X), model.predict(X))


def test_loaded_arrays_are_owned_and_writable(tmp_path):
    save(small_model(), tmp_path / "m.safetensors")
    copy = load(tmp_path / "m.safetensors")
    for p in copy.parameters():
        assert p.data.flags.writeable and p.data.flags.c_contiguous
        # owned by the array itself or by the model's flat weight buffer, never the file's bytes
        assert p.data.base is None or p.data.base.flags.owndata
        assert p.grad.shape == p.data.shape and not p.grad.any()
    copy(np.ones((4, 3)))  # BatchNorm updates its running statistics in place
    stepped(copy, Adam())  # optimizers update parameters in place


def test_file_names_tensors_by_module_path(tmp_path):
    model = every_module_model()
    save(model, tmp_path / "m.safetensors", optimizer=stepped(model, Adam()))
    metadata, tensors = decode((tmp_path / "m.safetensors").read_bytes())
    assert {"modules.0.W", "modules.0.W0", "modules.1.G", "modules.1.running_mean",
            "modules.4.modules.0.W", "optimizer.state.0.exp_avg"} <= set(tensors)
    assert (metadata["format"], metadata["format_version"]) == ("chainrule", "1")
    arch = json.loads(metadata["architecture"])
    assert arch["modules"][2] == {"class": "LeakyReLU", "config": {"alpha": 0.2}}
    assert arch["modules"][4]["class"] == "Sequential"
    assert json.loads(metadata["optimizer"])["class"] == "Adam"


class MyLayer(UserModule):
    def forward(self, A):
        return A

    def backward(self, dLdA):
        return dLdA


class MyReLU(cr.ReLU):
    """A subclass may behave differently: it is not a ReLU as far as files go."""


@pytest.mark.parametrize("module", [MyLayer(), MyReLU(), cr.Sequential(MyLayer())],
                         ids=["duck-typed", "subclass", "nested"])
def test_user_defined_modules_cannot_be_saved(tmp_path, module):
    model = cr.Sequential(cr.Linear(2, 2, rng=0), module)
    with pytest.raises(ChainruleError, match="MyLayer|MyReLU"):
        save(model, tmp_path / "m.safetensors")
    assert os.listdir(tmp_path) == []


# -- hostile files ---------------------------------------------------------------------------
EXECUTED = []


def _mark_executed():  # what a pickle payload would run
    EXECUTED.append(True)


class Payload:
    def __reduce__(self):
        return (_mark_executed, ())


def _arch(metadata):
    return json.loads(metadata["architecture"])


def _with_arch(metadata, tensors, change):
    arch = _arch(metadata)
    change(arch)
    return signed({**metadata, "architecture": json.dumps(arch)}, tensors)


def _with_opt(metadata, tensors, change):
    opt = json.loads(metadata["optimizer"])
    change(opt)
    return signed({**metadata, "optimizer": json.dumps(opt)}, tensors)


def _edit_arch(metadata, tensors, old, new, *, sign=True):
    assert old in metadata["architecture"]
    metadata = {**metadata, "architecture": metadata["architecture"].replace(old, new)}
    return signed(metadata, tensors) if sign else encode(metadata, tensors)


def _set_config(i, **config):
    return lambda m, t: _with_arch(m, t, lambda a: a["modules"][i]["config"].update(config))


def _nest(depth):
    def change(arch):
        inner = arch
        for _ in range(depth):
            inner["modules"] = [{"class": "Sequential", "modules": []}]
            inner = inner["modules"][0]
    return change


# (id, build(metadata, tensors) -> bytes, what the message must say)
HOSTILE = [
    ("pickle", lambda m, t: pickle.dumps(Payload()), "header length"),
    ("pickle-protocol-0", lambda m, t: pickle.dumps(Payload(), protocol=0), "header length"),
    ("empty", lambda m, t: b"", "truncated"),
    ("seven-bytes", lambda m, t: signed(m, t)[:7], "truncated"),
    ("truncated-header", lambda m, t: signed(m, t)[:100], "header length"),
    ("truncated-data", lambda m, t: signed(m, t)[:-3], "safetensors"),
    ("random-bytes", lambda m, t: np.random.default_rng(0).bytes(500), "header length"),
    ("huge-header-length", lambda m, t: struct.pack("<Q", 2**63) + b"{}", "header length"),
    ("header-length-past-end",
     lambda m, t: struct.pack("<Q", 50 * 2**20) + signed(m, t)[8:], "header length"),
    ("malformed-header", lambda m, t: encode(None, {}, header='{"__metadata__": {'), "JSON"),
    ("header-not-object", lambda m, t: encode(None, {}, header="[1, 2]"), "object"),
    ("duplicate-key", lambda m, t: encode(None, {}, header='{"a": 1, "a": 2}'), "duplicate"),
    ("missing-metadata", lambda m, t: encode(None, t), "missing metadata"),
    ("metadata-not-strings",
     lambda m, t: encode(None, {}, header='{"__metadata__": {"format": 1}}'), "strings"),
    ("wrong-format", lambda m, t: signed({**m, "format": "pytorch"}, t), "format"),
    ("wrong-version", lambda m, t: signed({**m, "format_version": "99"}, t), "format_version"),
    ("missing-digest", lambda m, t: encode({k: v for k, v in m.items() if k != "sha256"}, t),
     "sha256"),
    ("flipped-data-bit", lambda m, t: encode(m, {**t, "modules.0.W": -t["modules.0.W"]}),
     "digest"),
    ("edited-architecture", lambda m, t: _edit_arch(m, t, "0.2", "0.3", sign=False),
     "digest"),
    ("unknown-metadata", lambda m, t: signed({**m, "code": "print(1)"}, t), "unexpected metadata"),
    ("missing-architecture",
     lambda m, t: signed({k: v for k, v in m.items() if k != "architecture"}, t),
     "missing metadata 'architecture'"),
    ("malformed-architecture", lambda m, t: signed({**m, "architecture": "{'class':"}, t),
     "malformed JSON"),
    ("deeply-nested-json", lambda m, t: signed({**m, "architecture": "[" * 100_000}, t),
     "malformed JSON"),
    ("architecture-not-sequential",
     lambda m, t: signed({**m, "architecture": '{"class": "ReLU", "config": {}}'}, t),
     "must be a Sequential"),
    ("unknown-class",
     lambda m, t: _with_arch(m, t, lambda a: a["modules"][2].update({"class": "Evil"})),
     "unknown module class 'Evil'"),
    ("dotted-class", lambda m, t: _with_arch(
        m, t, lambda a: a["modules"][2].update({"class": "os.system"})), "unknown module class"),
    ("config-extra-key", _set_config(2, __class__="os.system"), "expected keys"),
    ("config-missing-key",
     lambda m, t: _with_arch(m, t, lambda a: a["modules"][0]["config"].pop("init")),
     "expected keys"),
    ("config-wrong-type", _set_config(0, m="3"), "bad value m='3'"),
    ("config-bool", _set_config(3, p=True), "bad value p=True"),
    ("config-bad-dtype", _set_config(0, dtype="object"), "bad value dtype"),
    ("config-out-of-range", _set_config(3, p=1.5), "bad Dropout config"),
    ("config-unknown-init", _set_config(0, init="evil"), "bad Linear config"),
    ("config-huge-layer", _set_config(0, m=10**9, n=10**9), "expected shape"),
    ("config-huge-int", lambda m, t: _edit_arch(m, t, '"m":3', '"m":1' + "0" * 5000),
     "malformed JSON"),
    ("entry-extra-key", lambda m, t: _with_arch(
        m, t, lambda a: a["modules"][2].update({"code": "x"})), "exactly 'class'"),
    ("modules-not-list", lambda m, t: _with_arch(m, t, lambda a: a.update({"modules": {}})),
     "exactly 'class'"),
    ("nested-too-deep", lambda m, t: _with_arch(m, t, _nest(40)), "nested deeper"),
    ("wrong-shape", lambda m, t: signed(m, {**t, "modules.0.W": np.zeros((4, 3), np.float32)}),
     "'modules.0.W' expected shape (3, 4)"),
    ("wrong-dtype", lambda m, t: signed(m, {**t, "modules.0.W": t["modules.0.W"].astype(
        np.float64)}), "dtype float32"),
    ("integer-tensor", lambda m, t: signed(m, {**t, "modules.1.running_var": np.ones(
        (1, 4), np.int32)}), "dtype float32"),
    ("zero-size-huge-dims", lambda m, t: signed(m, {**t, "modules.0.W0": np.zeros(
        (0, 2**40), np.float32)}), "expected shape"),
    ("missing-tensor", lambda m, t: signed(
        m, {k: v for k, v in t.items() if k != "modules.1.running_mean"}),
     "missing tensor 'modules.1.running_mean'"),
    ("extra-tensor", lambda m, t: signed(m, {**t, "extra.x": np.ones(2, np.float32)}),
     "unexpected tensor 'extra.x'"),
    ("missing-optimizer-state", lambda m, t: signed(
        m, {k: v for k, v in t.items() if k != "optimizer.state.0.exp_avg"}),
     "missing tensor 'optimizer.state.0.exp_avg'"),
    ("optimizer-state-wrong-shape", lambda m, t: signed(
        m, {**t, "optimizer.state.1.exp_avg_sq": np.ones((2, 2), np.float32)}),
     "expected shape"),
    ("optimizer-extra-field", lambda m, t: _with_opt(m, t, lambda o: o.update(x=1)),
     "exactly 'class'"),
    ("optimizer-bad-t", lambda m, t: _with_opt(m, t, lambda o: o.update(t="1")), "wrong type"),
    ("optimizer-state-count", lambda m, t: _with_opt(m, t, lambda o: o["state_keys"].pop()),
     "parameters"),
    ("optimizer-not-json", lambda m, t: signed({**m, "optimizer": "{"}, t), "malformed JSON"),
]


@pytest.mark.parametrize("build, fragment", [c[1:] for c in HOSTILE],
                         ids=[c[0] for c in HOSTILE])
def test_hostile_file_raises_model_file_error(tmp_path, valid_file, build, fragment):
    metadata, tensors = decode(valid_file)
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(build(metadata, tensors))
    for read in (load, load_optimizer):
        with pytest.raises(ModelFileError) as info:
            read(path)
        assert str(path) in str(info.value)
        assert fragment in str(info.value)
    assert isinstance(info.value, ValueError) and not EXECUTED


@pytest.mark.parametrize("build, fragment", [
    (lambda o: o.update({"class": "Evil"}), "unknown optimizer class 'Evil'"),
    (lambda o: o["hyper"].update(__init__=1), "hyper-parameters expected keys"),
    (lambda o: o["hyper"].update(lr=-1.0), "bad Adam state"),
    (lambda o: o["hyper"].update(beta1=None), "bad Adam state"),
], ids=["unknown-class", "unknown-hyper", "hyper-out-of-range", "hyper-missing"])
def test_hostile_optimizer_raises_on_load_optimizer(tmp_path, valid_file, build, fragment):
    metadata, tensors = decode(valid_file)
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(_with_opt(metadata, tensors, build))
    with pytest.raises(ModelFileError, match=fragment) as info:
        load_optimizer(path)
    assert str(path) in str(info.value)


def test_the_byte_builder_reproduces_valid_files(tmp_path, valid_file):
    # Guards the hostile cases: re-encoding an untouched file must load fine, so each case's
    # error comes from its own defect.
    metadata, tensors = decode(valid_file)
    path = tmp_path / "same.safetensors"
    path.write_bytes(signed(metadata, tensors))
    load(path)
    load_optimizer(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.safetensors")


# -- atomic writes -------------------------------------------------------------------------------
def _fail(*args, **kwargs):
    raise OSError("disk full")


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("target, fault", [
    ("replace", _fail), ("fsync", _fail), ("replace", _interrupt),
], ids=["replace-fails", "fsync-fails", "interrupted"])
def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch, target, fault):
    path = tmp_path / "model.safetensors"
    save(small_model(), path)
    old = path.read_bytes()
    monkeypatch.setattr(serialization.os, target, fault)
    with pytest.raises((OSError, KeyboardInterrupt)):
        save(every_module_model(), path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["model.safetensors"]
    load(path)


def test_checkpoint_write_is_atomic_too(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, small_model(), None, {"epoch": 1}, {})
    old = path.read_bytes()
    monkeypatch.setattr(serialization.os, "replace", _fail)
    with pytest.raises(OSError):
        save_checkpoint(path, small_model(), None, {"epoch": 2}, {})
    monkeypatch.undo()
    assert path.read_bytes() == old and os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_new_file_gets_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    save(small_model(), tmp_path / "m.safetensors")
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


# -- optimizers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_optimizer_round_trip_continues_identically(tmp_path, name, dtype):
    model = mlp((3, 4, 2), act=cr.Tanh, batch_norm=True, out=None, dtype=dtype)
    opt = stepped(model, OPTIMIZERS[name](lr=0.05, weight_decay=0.01), seed=42)
    path = tmp_path / "m.safetensors"
    save(model, path, optimizer=opt)
    model2, opt2 = load(path), load_optimizer(path)
    assert type(opt2) is type(opt) and opt2.t == opt.t == 2
    assert opt2.hyperparameters() == opt.hyperparameters()
    stepped(model, opt, 3, seed=42)
    stepped(model2, opt2, 3, seed=42)
    for a, b in zip(weights(model), weights(model2), strict=True):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(a, b)


def test_unstepped_optimizer_and_schedule(tmp_path):
    path = tmp_path / "m.safetensors"
    save(small_model(), path, optimizer=Adam(lr=lambda t: 0.1 / t, beta1=0.8))
    opt = load_optimizer(path)
    assert (opt.t, opt.lr, opt.beta1) == (0, Adam().lr, 0.8)  # a schedule is not stored


def test_load_optimizer_without_optimizer(tmp_path):
    save(small_model(), tmp_path / "m.safetensors")
    with pytest.raises(ModelFileError, match="no optimizer"):
        load_optimizer(tmp_path / "m.safetensors")


# -- checkpoints -------------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path):
    model = every_module_model(np.float64)
    opt = stepped(model, Adam())
    gen = np.random.default_rng(2**70)
    gen.random(5)
    dropout = model.modules[3]
    meta = {
        "epoch": 7, "rng": gen.bit_generator.state,
        "dropout_rngs": [dropout.rng.bit_generator.state],
        "early_stopping": {"best": float("inf"), "wait": np.int64(2), "best_epoch": None},
        "history": {"loss": [np.float32(0.5), 0.25], "val_loss": [0.75, 0.5]},
        "flags": (True, False),
    }
    best = {"modules.0.W": model.modules[0].W.data * 2, "mask": np.array([True, False])}
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, opt, meta, best)
    model2, opt2, meta2, tensors2 = load_checkpoint(path)
    assert snapshot(model2) == snapshot(model)
    assert isinstance(opt2, Adam) and opt2.t == opt.t
    state = meta2["rng"]["state"]
    assert state == gen.bit_generator.state["state"] and state["state"] > 2**64  # big ints
    restored = np.random.default_rng()
    restored.bit_generator.state = meta2["rng"]
    np.testing.assert_array_equal(restored.random(4), gen.random(4))
    assert meta2["early_stopping"] == {"best": float("inf"), "wait": 2, "best_epoch": None}
    assert meta2["history"]["loss"] == [0.5, 0.25] and meta2["flags"] == [True, False]
    assert sorted(tensors2) == ["mask", "modules.0.W"]
    for k, A in best.items():
        assert tensors2[k].dtype == A.dtype
        np.testing.assert_array_equal(tensors2[k], A)
    # load() reads a checkpoint's model; a checkpoint without optimizer gives None
    assert snapshot(load(path)) == snapshot(model)
    save_checkpoint(path, model, None, {}, {})
    assert load_checkpoint(path)[1:] == (None, {}, {})


def test_plain_model_file_is_not_a_checkpoint(tmp_path):
    save(small_model(), tmp_path / "m.safetensors")
    with pytest.raises(ModelFileError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "m.safetensors")


@pytest.mark.parametrize("meta, tensors, match", [
    ({1: "int key"}, {}, "string keys"),
    ({"x": object()}, {}, "JSON-serialisable"),
    ({"x": np.zeros(3)}, {}, "JSON-serialisable"),
    ([1, 2], {}, "meta as a dict"),
    ({}, {"x": np.array(["a"])}, "numeric or boolean"),
    ({}, {"": np.zeros(1)}, "tensor names"),
], ids=["int-key", "object", "array-in-meta", "list", "string-tensor", "empty-name"])
def test_save_checkpoint_rejects_what_would_not_round_trip(tmp_path, meta, tensors, match):
    with pytest.raises(cr.ChainruleError, match=match):
        save_checkpoint(tmp_path / "c.safetensors", small_model(), None, meta, tensors)
    assert os.listdir(tmp_path) == []


# -- corruption, at random -----------------------------------------------------------------------
def _checkpoint_bytes() -> bytes:
    model = small_model()
    model(np.random.default_rng(1).normal(size=(5, 3)))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.safetensors")
        save_checkpoint(path, model, stepped(model, Adam()), {"epoch": 3, "loss": [0.5]},
                        {"best": np.arange(4.0)})
        return Path(path).read_bytes()


_VALID = _checkpoint_bytes()


def _contents(path):
    model, opt, meta, tensors = load_checkpoint(path)
    opt_state = opt.state_dict()
    return (snapshot(model), meta, {k: a.tobytes() for k, a in tensors.items()}, opt_state["t"],
            [{k: a.tobytes() for k, a in s.items()} for s in opt_state["state"]])


_HEADER_END = 8 + struct.unpack("<Q", _VALID[:8])[0]
# Hypothesis favours small integers, so draw header and tensor positions separately: both
# regions get hit (a flip in the tensor bytes is what only the digest can catch).
_POSITION = st.one_of(st.integers(0, _HEADER_END - 1), st.integers(_HEADER_END, len(_VALID) - 1))
_DAMAGE = st.one_of(
    _POSITION.map(lambda n: ("truncate", n)),
    st.lists(st.tuples(_POSITION, st.integers(1, 255)), min_size=1, max_size=4)
    .map(lambda flips: ("flip", flips)),
)


@settings(max_examples=150, deadline=None)
@given(damage=_DAMAGE)
def test_damaged_file_loads_identically_or_raises_model_file_error(damage):
    kind, arg = damage
    data = bytearray(_VALID)
    if kind == "truncate":
        del data[arg:]
    else:
        for i, xor in arg:
            data[i] ^= xor
    with tempfile.TemporaryDirectory() as d:
        good, bad = os.path.join(d, "good.safetensors"), os.path.join(d, "bad.safetensors")
        Path(good).write_bytes(_VALID)
        Path(bad).write_bytes(bytes(data))
        try:
            got = _contents(bad)
        except ModelFileError as e:
            assert bad in str(e)
        else:  # only harmless changes (e.g. the header's padding spaces) may load
            assert got == _contents(good)


def test_save_refuses_a_model_that_would_not_load(tmp_path):
    layer = cr.Linear(2, 3, rng=0)
    layer.W0.data = layer.W0.data.astype(np.float64)  # W stays float32
    with pytest.raises(ChainruleError, match="'modules.0.W0' expected shape .* dtype float32"):
        save(cr.Sequential(layer), tmp_path / "m.safetensors")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("where, value", [("modules.0.W", np.nan), ("modules.0.W0", np.inf)])
def test_non_finite_weights_are_neither_saved_nor_loaded(tmp_path, where, value):
    model = cr.Sequential(cr.Linear(3, 2, rng=0), cr.BatchNorm(2))
    dict(model.named_parameters())[where].data.flat[0] = value
    with pytest.raises(cr.ChainruleError, match="finite"):
        save(model, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_a_negative_running_variance_is_refused(tmp_path):
    model = cr.Sequential(cr.Linear(3, 2, rng=0), cr.BatchNorm(2))
    model.modules[1].running_var[0, 0] = -1.0
    with pytest.raises(cr.ChainruleError, match="variances"):
        save(model, tmp_path / "m.safetensors")


def test_a_signed_file_with_nan_weights_is_refused_on_load(tmp_path, valid_file):
    metadata, tensors = decode(valid_file)
    metadata.pop("sha256")
    name = next(t for t in tensors if t.endswith(".W"))
    tensors[name] = tensors[name].copy()
    tensors[name].flat[0] = np.nan
    path = tmp_path / "nan.safetensors"
    path.write_bytes(signed(metadata, tensors))  # a valid digest: only the values are wrong
    with pytest.raises(ModelFileError, match="finite"):
        load(path)


def test_optimizer_state_is_saved_in_the_models_order_whatever_order_it_was_stepped(tmp_path):
    model = cr.Sequential(cr.Linear(3, 4, rng=0), cr.ReLU(), cr.Linear(4, 2, rng=1))
    params = model.parameters()
    opt = cr.Adam()
    for p in params:
        p.grad[...] = np.random.default_rng(0).normal(size=p.grad.shape)
    opt.step(params[2:])  # the head first, then everything
    opt.step(params)
    cr.save(model, tmp_path / "m.safetensors", optimizer=opt)
    expected = opt.state_dict(params)["state"]  # entry i: the state of model parameter i
    got = cr.load_optimizer(tmp_path / "m.safetensors").state_dict()["state"]
    for e, g in zip(expected, got, strict=True):
        assert e.keys() == g.keys() == {"exp_avg", "exp_avg_sq"}
        for k in e:
            np.testing.assert_array_equal(e[k], g[k])


def test_json_text_of_long_lists_is_what_json_dumps_writes():
    """Long lists of numbers are encoded once per number and kept (for checkpoints written
    every epoch); the text is still exactly ``json.dumps``'s, after growing and changing."""
    import json

    from chainrule._files import jsontext

    def plain(obj):
        return json.dumps(obj, separators=(",", ":"), default=jsontext._number)

    values = [0.1, 2, np.float32(0.3), np.float64(1e300), float("inf"), True, None] * 100
    meta = {"a": {"long": values, "nested": [[1, 2]] * 300, "é": "x"}, "b": 1.5}
    assert jsontext.dumps(meta, "meta") == plain(meta)
    values += [7.25] * 10  # grown at the end
    assert jsontext.dumps(meta, "meta") == plain(meta)
    values[3] = -1.0  # changed before the end
    assert jsontext.dumps(meta, "meta") == plain(meta)
    values.append({1: "x"})  # a non-string key inside a long list is still refused
    with pytest.raises(cr.ChainruleError, match="string keys"):
        jsontext.dumps(meta, "meta")
