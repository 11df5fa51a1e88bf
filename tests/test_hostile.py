"""Hostile checkpoints and special files: each a clear ModelFileError, quickly, nothing lost.

A checkpoint's digest proves only that it is whole (anyone can recompute it), so the forged
training states here are re-signed: what stops them is the check of every field. Files are
edited through ``decode``/``signed`` of test_serialization, which read and write the
safetensors layout byte by byte, independently of the code under test.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

import chainrule as cr
from cases import assert_same_weights, blobs, mlp
from chainrule._files import container
from chainrule.errors import ModelFileError
from chainrule.serialization import atomic_write_bytes, save_checkpoint
from test_serialization import decode, encode, signed

SECONDS = 5.0  # every hostile input is refused within this, and within MEGABYTES
MEGABYTES = 200


def data(n=40, rng=0):
    return blobs(n, d=5, sep=1.5, rng=rng)


VALIDATION = data(16, rng=1)


def model():
    """Linear(5, 16), BatchNorm(16), ReLU, Dropout(0.2), Linear(16, 3), Softmax."""
    return mlp((5, 16, 3), batch_norm=True, dropout=0.2)


def checkpoint_bytes(tmp_path_factory, early_stopping: bool, rng=3) -> bytes:
    path = tmp_path_factory.mktemp("ck") / "run.safetensors"
    X, y = data()
    es = cr.EarlyStopping(patience=5) if early_stopping else None
    cr.fit(model(), cr.NLLM(), X, y, epochs=3, batch_size=8, validation_data=VALIDATION,
           early_stopping=es, rng=rng, progress=False, checkpoint=path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def with_es(tmp_path_factory) -> bytes:
    """A checkpoint after 3 epochs with early stopping (and so best weights)."""
    return checkpoint_bytes(tmp_path_factory, True)


def resume(path, **kw):
    X, y = data()
    return cr.resume(path, cr.NLLM(), X, y, epochs=kw.pop("epochs", 5), batch_size=8,
                     validation_data=VALIDATION, progress=False, **kw)


def forged(valid: bytes, change) -> bytes:
    """``valid`` with ``change(ck, tensors)`` applied to its training state and re-signed."""
    metadata, tensors = decode(valid)
    metadata.pop("sha256")
    meta = json.loads(metadata["meta"])
    extra = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
    tensors = {k: v for k, v in tensors.items() if not k.startswith("extra.")}
    change(meta["checkpoint"], extra)
    if "__meta__" in extra:  # a change to the whole of meta
        meta = extra.pop("__meta__")
    tensors.update({f"extra.{k}": v for k, v in extra.items()})
    metadata["meta"] = json.dumps(meta)
    return signed(metadata, tensors)


def setter(path: str, value):
    """A change setting the field at dotted ``path`` (within the training state) to value."""
    *parents, last = path.split(".")

    def change(ck, tensors):
        d = ck
        for key in parents:
            d = d[int(key)] if isinstance(d, list) else d[key]
        if isinstance(d, list):
            d[int(last)] = value
        else:
            d[last] = value
    return change


def deleter(path: str):
    *parents, last = path.split(".")

    def change(ck, tensors):
        d = ck
        for key in parents:
            d = d[key]
        del d[last]
    return change


def _rename_best(ck, tensors):
    for i in reversed(range(sum(k.startswith("best.") for k in tensors))):
        tensors[f"best.{i + 1}"] = tensors.pop(f"best.{i}")


def _state_of(bit_generator, **override):
    """A valid state of ``bit_generator`` as stored (arrays as lists), with ``override``."""
    state = {k: v for k, v in bit_generator(0).state.items()}
    state = json.loads(json.dumps(state, default=lambda a: a.tolist()))
    for key, value in override.items():
        target = state["state"] if key in state["state"] else state
        target[key] = value
    return state


# (id, change, the field the message must name); every key of the training state is here.
FORGED = [
    ("meta-extra-key", lambda ck, t: t.update(__meta__={"checkpoint": ck, "x": 1}), "'meta'"),
    ("meta-no-checkpoint", lambda ck, t: t.update(__meta__={"cli": {}}), "'meta'"),
    ("checkpoint-not-object", lambda ck, t: t.update(__meta__={"checkpoint": [1]}),
     "checkpoint expected an object"),
    ("checkpoint-extra-field", setter("code", "x"), "checkpoint expected an object with keys"),
    *[(f"no-{key}", deleter(key), "checkpoint expected an object with keys")
      for key in ("epochs_done", "finished", "rng", "dropout_rngs", "early_stopping",
                  "lr_is_callable", "history")],
    ("epochs-done-infinity", setter("epochs_done", math.inf), "epochs_done"),
    ("epochs-done-negative", setter("epochs_done", -10**9), "epochs_done"),
    ("epochs-done-float", setter("epochs_done", 3.0), "epochs_done"),
    ("epochs-done-bool", setter("epochs_done", True), "epochs_done"),
    ("epochs-done-huge", setter("epochs_done", 10**30), "history"),
    ("epochs-done-mismatch", setter("epochs_done", 2), "history"),
    ("finished-string", setter("finished", "yes"), "finished"),
    ("finished-int", setter("finished", 1), "finished"),
    ("lr-is-callable-null", setter("lr_is_callable", None), "lr_is_callable"),
    ("history-list", setter("history", []), "checkpoint.history"),
    ("history-number", setter("history", 3), "checkpoint.history"),
    ("history-empty", setter("history", {}), "checkpoint.history"),
    ("history-extra-field", setter("history.x", 1), "checkpoint.history"),
    ("history-figures-list", setter("history.history", [1, 2, 3]), "history.history"),
    ("history-loss-short", setter("history.history.loss", [0.5, 0.4]), "history.history"),
    ("history-loss-nan", setter("history.history.loss", [0.5, math.nan, 0.3]),
     "history.history"),
    ("history-loss-inf", setter("history.history.val_loss", [0.5, math.inf, 0.3]),
     "history.history"),
    ("history-loss-strings", setter("history.history.loss", ["a", "b", "c"]),
     "history.history"),
    ("history-loss-nested", setter("history.history.loss", [[1], [2], [3]]), "history.history"),
    ("history-loss-huge-int", setter("history.history.loss", [10**400, 1, 1]),
     "history.history"),
    ("history-no-loss", lambda ck, t: ck["history"]["history"].pop("loss"), "'loss'"),
    ("grad-norms-list", setter("history.grad_norms", []), "grad_norms"),
    ("grad-norms-renamed", lambda ck, t: ck["history"]["grad_norms"].update(
        {"modules.9.W": ck["history"]["grad_norms"].pop("modules.0.W")}), "grad_norms"),
    ("grad-norms-negative", lambda ck, t: ck["history"]["grad_norms"].update(
        {"modules.0.W": [-1.0, 1.0, 1.0]}), "grad_norms"),
    ("grad-norms-short", lambda ck, t: ck["history"]["grad_norms"].update(
        {"modules.0.W": [1.0]}), "grad_norms"),
    ("history-best-epoch-past", setter("history.best_epoch", 3), "history.best_epoch"),
    ("history-best-epoch-negative", setter("history.best_epoch", -1), "history.best_epoch"),
    ("history-best-epoch-string", setter("history.best_epoch", "0"), "history.best_epoch"),
    ("history-stopped-early-string", setter("history.stopped_early", "no"), "stopped_early"),
    ("history-interrupted-int", setter("history.interrupted", 0), "interrupted"),
    ("es-list", setter("early_stopping", [5, 0.0]), "early_stopping"),
    ("es-empty", setter("early_stopping", {}), "early_stopping"),
    ("es-extra-field", setter("early_stopping.x", 1), "early_stopping"),
    ("es-best-string", setter("early_stopping.best", "0.5"), "early_stopping.best"),
    ("es-best-nan", setter("early_stopping.best", math.nan), "early_stopping.best"),
    ("es-best-minus-inf", setter("early_stopping.best", -math.inf), "early_stopping.best"),
    ("es-best-inf-with-epoch", setter("early_stopping.best", math.inf), "early_stopping.best"),
    ("es-patience-negative", setter("early_stopping.patience", -1), "patience"),
    ("es-patience-float", setter("early_stopping.patience", 1.5), "patience"),
    ("es-min-delta-negative", setter("early_stopping.min_delta", -1.0), "min_delta"),
    ("es-min-delta-nan", setter("early_stopping.min_delta", math.nan), "min_delta"),
    ("es-restore-best-int", setter("early_stopping.restore_best", 1), "restore_best"),
    ("es-best-epoch-past", setter("early_stopping.best_epoch", 7), "early_stopping.best_epoch"),
    ("es-best-epoch-null", setter("early_stopping.best_epoch", None), "early_stopping.best"),
    ("es-wait-huge", setter("early_stopping.wait", 10**9), "early_stopping.wait"),
    ("es-wait-negative", setter("early_stopping.wait", -1), "early_stopping.wait"),
    ("best-renumbered", _rename_best, "best-weight tensors"),
    ("best-missing", lambda ck, t: t.pop("best.3"), "best-weight tensors"),
    ("best-extra", lambda ck, t: t.update(x=np.ones(2, np.float32)), "best-weight tensors"),
    ("best-1x1", lambda ck, t: t.update({"best.0": np.ones((1, 1), np.float32)}),
     "'extra.best.0' expected shape (5, 16)"),
    ("best-1x1-finished", lambda ck, t: (ck.update(finished=True), ck["history"].update(
        stopped_early=True), t.update({"best.0": np.ones((1, 1), np.float32)})),
     "'extra.best.0' expected shape (5, 16)"),
    ("best-float64", lambda ck, t: t.update({"best.1": t["best.1"].astype(np.float64)}),
     "'extra.best.1' expected shape"),
    ("best-nan", lambda ck, t: t["best.2"].__setitem__((0, 0), np.nan), "finite"),
    ("no-best-kept", lambda ck, t: t.clear(), "best-weight tensors"),
    ("rng-missing-key", lambda ck, t: ck["rng"].pop("has_uint32"), "checkpoint.rng"),
    ("rng-list", setter("rng", [1, 2]), "checkpoint.rng"),
    ("rng-unknown", setter("rng.bit_generator", "Evil"), "checkpoint.rng"),
    ("rng-bit-generator-list", setter("rng.bit_generator", ["PCG64"]), "checkpoint.rng"),
    ("rng-state-2-300", setter("rng.state.state", 2**300), "checkpoint.rng (PCG64).state.state"),
    ("rng-inc-negative", setter("rng.state.inc", -1), "checkpoint.rng (PCG64).state.inc"),
    ("rng-uinteger-2-70", setter("rng.uinteger", 2**70), "uinteger"),
    ("rng-has-uint32-2", setter("rng.has_uint32", 2), "has_uint32"),
    ("rng-state-float", setter("rng.state.state", 1.5), "state.state"),
    ("rng-mt-key-short", setter("rng", _state_of(np.random.MT19937, key=[1] * 623)),
     "state.key"),
    ("rng-mt-key-big", setter("rng", _state_of(np.random.MT19937, key=[2**33] * 624)),
     "state.key"),
    ("rng-mt-pos", setter("rng", _state_of(np.random.MT19937, pos=700)), "state.pos"),
    ("rng-sfc-short", setter("rng", _state_of(np.random.SFC64, state=[1, 2, 3])),
     "state.state"),
    ("rng-philox-buffer-pos", setter("rng", _state_of(np.random.Philox, buffer_pos=9)),
     "buffer_pos"),
    ("rng-philox-key-negative", setter("rng", _state_of(np.random.Philox, key=[-1, 0])),
     "state.key"),
    ("dropout-rngs-dict", setter("dropout_rngs", {}), "dropout_rngs"),
    ("dropout-rngs-none", setter("dropout_rngs", []), "dropout_rngs"),
    ("dropout-rngs-two", lambda ck, t: ck["dropout_rngs"].append(ck["rng"]), "dropout_rngs"),
    ("dropout-rng-bad", setter("dropout_rngs.0.state.inc", 2**128), "dropout_rngs[0]"),
]


@pytest.mark.parametrize("change, field", [c[1:] for c in FORGED], ids=[c[0] for c in FORGED])
def test_a_forged_training_state_is_refused_naming_the_field(tmp_path, with_es, change,
                                                              field):
    path = tmp_path / "forged.safetensors"
    path.write_bytes(forged(with_es, change))
    cr.load(path)  # the model itself is fine: only the training state is forged
    start = time.perf_counter()
    with pytest.raises(ModelFileError) as info:
        resume(path)
    assert time.perf_counter() - start < SECONDS
    message = str(info.value)
    assert str(path) in message and field in message, message
    assert len(message) < 1000


def _optimizer_change(change):
    def forge(valid: bytes) -> bytes:
        metadata, tensors = decode(valid)
        metadata.pop("sha256")
        spec = json.loads(metadata["optimizer"])
        change(spec, tensors)
        metadata["optimizer"] = json.dumps(spec)
        return signed(metadata, tensors)
    return forge


FORGED_OPTIMIZER = [
    ("class-unknown", lambda o, t: o.update({"class": "Evil"}), "unknown optimizer class"),
    ("t-negative", lambda o, t: o.update(t=-1), "wrong type"),
    ("t-huge", lambda o, t: o.update(t=2**60), "wrong type"),
    ("lr-string", lambda o, t: o["hyper"].update(lr="0.1"), "wrong type"),
    ("lr-negative", lambda o, t: o["hyper"].update(lr=-1.0), "bad Adam state"),
    ("beta-nan", lambda o, t: o["hyper"].update(beta1=math.nan), "bad Adam state"),
    ("state-keys-short", lambda o, t: o["state_keys"].pop(), "parameters"),
    ("state-key-unknown", lambda o, t: (o["state_keys"][0].append("evil"), t.update(
        {"optimizer.state.0.evil": t["optimizer.state.0.exp_avg"]})), "bad Adam state"),
    ("square-negative", lambda o, t: t.update({"optimizer.state.1.exp_avg_sq": -np.ones_like(
        t["optimizer.state.1.exp_avg_sq"])}), "expected values ≥ 0"),
    ("state-nan", lambda o, t: t["optimizer.state.2.exp_avg"].__setitem__((0, 0), np.nan),
     "finite"),
]


@pytest.mark.parametrize("change, fragment", [c[1:] for c in FORGED_OPTIMIZER],
                         ids=[c[0] for c in FORGED_OPTIMIZER])
def test_a_forged_optimizer_in_a_checkpoint_is_refused_before_resume_runs(tmp_path, with_es,
                                                                          change, fragment):
    path = tmp_path / "forged.safetensors"
    path.write_bytes(_optimizer_change(change)(with_es))
    for read in (cr.load_optimizer, resume):
        with pytest.raises(ModelFileError, match=fragment) as info:
            read(path)
        assert str(path) in str(info.value)


def test_the_forged_cases_start_from_a_checkpoint_that_resumes(tmp_path, with_es):
    # Each forged case's error comes from its own change: the same file re-signed unchanged
    # resumes, and runs exactly the epochs left.
    path = tmp_path / "same.safetensors"
    path.write_bytes(forged(with_es, lambda ck, t: None))
    _, history = resume(path, epochs=5)
    assert history.epochs == 5 and len(history.history["val_loss"]) == 5


def test_resume_never_runs_more_epochs_than_it_is_given(tmp_path, with_es):
    path = tmp_path / "ck.safetensors"
    path.write_bytes(with_es)
    for epochs in (0, 2, 3):
        _, history = resume(path, epochs=epochs)
        assert history.epochs == 3  # already done: nothing more runs
    _, history = resume(path, epochs=4)
    assert history.epochs == 4


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.PCG64DXSM,
                                           np.random.Philox, np.random.SFC64,
                                           np.random.MT19937])
def test_every_generator_kind_checkpoints_and_resumes_exactly(tmp_path, bit_generator):
    X, y = data()
    path = tmp_path / "ck.safetensors"
    kw = dict(epochs=3, batch_size=8, validation_data=VALIDATION, progress=False)

    class PauseAfterFirst:
        def on_epoch_end(self, epoch, logs):
            return epoch == 0

    m1 = model()
    h1 = cr.fit(m1, cr.NLLM(), X, y, rng=np.random.Generator(bit_generator(7)), **kw)
    cr.fit(model(), cr.NLLM(), X, y, rng=np.random.Generator(bit_generator(7)),
           callbacks=[PauseAfterFirst()], checkpoint=path, **kw)
    m2, h2 = cr.resume(path, cr.NLLM(), X, y, **kw)
    assert h2.history["loss"] == h1.history["loss"]
    assert_same_weights(m1, m2)


# -- special files, sizes and settings -------------------------------------------------------
def assert_refused_quickly(path, fragment, readers=(cr.load, cr.load_optimizer)):
    """Each reader raises ModelFileError naming ``path`` and saying ``fragment``, within
    SECONDS and MEGABYTES (a reader that blocks fails the test instead of hanging it)."""
    for read in readers:
        outcome = []

        def target(read=read, outcome=outcome):
            tracemalloc.start()
            try:
                read(path)
                outcome.append("loaded")
            except BaseException as e:  # noqa: BLE001 - what happened is the test's subject
                outcome.append(e)
            outcome.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()

        worker = threading.Thread(target=target, daemon=True)
        worker.start()
        worker.join(SECONDS)
        assert not worker.is_alive(), f"{read.__name__}({path}) still running after {SECONDS}s"
        error, peak = outcome
        assert isinstance(error, ModelFileError), error
        assert str(path) in str(error) and fragment in str(error), str(error)
        assert peak < MEGABYTES, f"{peak:.0f} MB"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_without_writer_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    try:
        assert_refused_quickly(fifo, "FIFO")
    finally:  # release a reader blocked in open() (the code before the fix), if any
        with contextlib.suppress(OSError):  # ENXIO: nobody has it open for reading
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_device_is_refused_without_reading_it():
    assert_refused_quickly("/dev/zero", "character device")


def test_a_directory_is_a_model_file_error(tmp_path):
    assert_refused_quickly(tmp_path, "directory")


def test_a_header_of_300000_modules_is_refused_quickly(tmp_path):
    arch = {"class": "Sequential", "modules": [{"class": "ReLU", "config": {}}] * 300_000}
    metadata = {"format": "chainrule", "format_version": "1", "architecture": json.dumps(arch)}
    path = tmp_path / "huge.safetensors"
    path.write_bytes(signed(metadata, {}))
    assert path.stat().st_size > 10 * 2**20
    assert_refused_quickly(path, "more than 10000 modules")


def test_a_sequential_of_many_nested_modules_is_counted_too(tmp_path):
    # The count is of entries, wherever they are: 20,000 ReLUs in 200 nested Sequentials.
    inner = {"class": "Sequential", "modules": [{"class": "ReLU", "config": {}}] * 100}
    arch = {"class": "Sequential", "modules": [inner] * 200}
    text = json.dumps(arch).replace('"class"', '"\\u0063lass"')  # past the quick count
    metadata = {"format": "chainrule", "format_version": "1", "architecture": text}
    path = tmp_path / "nested.safetensors"
    path.write_bytes(signed(metadata, {}))
    assert_refused_quickly(path, "more than 10000 modules")


def test_a_header_of_millions_of_json_values_is_refused_before_parsing(tmp_path):
    header = '{"__metadata__": {"format": "chainrule"}, "x": ' + "[[]," * 3_000_000 + "[]]}"
    path = tmp_path / "lists.safetensors"
    path.write_bytes(encode(None, {}, header=header))
    assert_refused_quickly(path, "JSON values")


def test_a_header_longer_than_the_bound_is_refused_unread(tmp_path):
    path = tmp_path / "long.safetensors"
    n = container.MAX_HEADER + 8
    with open(path, "wb") as f:
        f.write(n.to_bytes(8, "little"))
        f.truncate(8 + n)  # sparse: the bytes are never read
    assert_refused_quickly(path, "header length")


@pytest.mark.parametrize("bound", ["MAX_JSON_VALUES", "MAX_HEADER"])
def test_save_refuses_a_header_beyond_what_load_reads(tmp_path, bound):
    n = getattr(container, bound) + 1
    meta = {"x": [0] * n} if bound == "MAX_JSON_VALUES" else {"x": "x" * n}
    path = tmp_path / "big.safetensors"
    with pytest.raises(cr.ChainruleError, match="header would be"):
        save_checkpoint(path, mlp(), None, meta, {})
    assert os.listdir(tmp_path) == []


def test_bytes_past_the_declared_tensors_are_refused(tmp_path, with_es):
    path = tmp_path / "longer.safetensors"
    path.write_bytes(with_es + b"\0" * 16)
    assert_refused_quickly(path, "declares")


def _with_config(valid: bytes, i: int, **config) -> bytes:
    metadata, tensors = decode(valid)
    metadata.pop("sha256")
    arch = json.loads(metadata["architecture"])
    arch["modules"][i]["config"].update(config)
    metadata["architecture"] = json.dumps(arch)
    return signed(metadata, tensors)


def _saved(model_) -> bytes:
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        cr.save(model_, os.path.join(d, "m.safetensors"))
        with open(os.path.join(d, "m.safetensors"), "rb") as f:
            return f.read()


@pytest.mark.parametrize("dtype, eps", [(np.float32, 0.0), (np.float64, 0.0),
                                        (np.float32, 1e-45), (np.float64, 1e-320)],
                         ids=["f32-zero", "f64-zero", "f32-rounds-to-zero", "f64-subnormal"])
def test_batchnorm_eps_that_divides_by_zero_is_refused(tmp_path, dtype, eps):
    net = cr.Sequential(cr.Linear(2, 2, rng=0, dtype=dtype), cr.BatchNorm(2, dtype=dtype))
    net.modules[1].running_var[...] = 0.0  # a unit that never varied
    path = tmp_path / "bn.safetensors"
    path.write_bytes(_with_config(_saved(net), 1, eps=eps))
    assert_refused_quickly(path, "BatchNorm at modules.1 expected eps")
    net.modules[1].eps = eps
    with pytest.raises(cr.ChainruleError, match="expected eps"):  # nor is it saved
        cr.save(net, tmp_path / "new.safetensors")
    assert not (tmp_path / "new.safetensors").exists()


@pytest.mark.parametrize("eps", [1e39, 1e300], ids=["1e39", "1e300"])
def test_batchnorm_eps_beyond_its_dtype_is_refused_without_a_warning(tmp_path, eps):
    import warnings
    net = cr.Sequential(cr.Linear(2, 2, rng=0), cr.BatchNorm(2))  # float32: eps becomes inf
    path = tmp_path / "bn.safetensors"
    path.write_bytes(_with_config(_saved(net), 1, eps=eps))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_refused_quickly(path, "BatchNorm at modules.1 expected eps")
        net.modules[1].eps = eps
        with pytest.raises(cr.ChainruleError, match="expected eps"):  # nor is it saved
            cr.save(net, tmp_path / "new.safetensors")
    float64 = cr.Sequential(cr.Linear(2, 2, rng=0, dtype=np.float64),
                            cr.BatchNorm(2, eps=1e39, dtype=np.float64))
    cr.save(float64, tmp_path / "f64.safetensors")  # a float64 number: kept
    assert cr.load(tmp_path / "f64.safetensors").modules[1].eps == 1e39


def test_leaky_relu_alpha_beyond_the_models_dtype_is_refused(tmp_path):
    for dtype, ok in ((np.float32, False), (np.float64, True)):
        net = cr.Sequential(cr.Linear(2, 2, rng=0, dtype=dtype), cr.LeakyReLU(0.1))
        path = tmp_path / f"leaky-{np.dtype(dtype)}.safetensors"
        path.write_bytes(_with_config(_saved(net), 1, alpha=1e308))
        if ok:  # 1e308 is a float64: predictions stay finite for ordinary inputs
            A = cr.load(path).predict(np.full((3, 2), -1e-300))
            assert np.isfinite(A).all()
        else:
            assert_refused_quickly(path, "LeakyReLU at modules.1 expected alpha")


def test_negative_squared_optimizer_state_is_refused(tmp_path):
    net = mlp((3, 4, 2))
    opt = cr.Adam()
    for p in net.parameters():
        p.grad[...] = 1.0
    opt.step(net.parameters())
    path = tmp_path / "m.safetensors"
    cr.save(net, path, optimizer=opt)
    metadata, tensors = decode(path.read_bytes())
    metadata.pop("sha256")
    tensors["optimizer.state.0.exp_avg_sq"] = -tensors["optimizer.state.0.exp_avg_sq"]
    path.write_bytes(signed(metadata, tensors))
    assert_refused_quickly(path, "'optimizer.state.0.exp_avg_sq' expected values ≥ 0")


# -- temporary files: kill -9 mid-write, and the write after it --------------------------------
# Writes a 4 MB model file again and again: encoded once, so that nearly all the time is spent
# between creating the temporary file and renaming it, where a kill leaves one behind.
WRITER = """
import sys, chainrule as cr
from chainrule._files import model_file
from chainrule.serialization import atomic_write_bytes
model = cr.Sequential(cr.Linear(512, 1024, rng=0), cr.ReLU(), cr.Linear(1024, 512, rng=1))
data = model_file.encode(model)
print("ready", flush=True)
while True:
    atomic_write_bytes(sys.argv[1], data)
"""


def _temporaries(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


@pytest.mark.skipif(os.name != "posix", reason="kill -9")
def test_kill_9_during_writes_never_damages_the_file_and_the_next_write_cleans_up(tmp_path):
    path = tmp_path / "model.safetensors"
    rng = np.random.default_rng(0)
    left = 0
    for _ in range(8):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)],
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.05, 0.3))  # a few writes of 4 MB each, then mid-write
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        left += len(_temporaries(tmp_path))
        if path.exists():  # the old file or the new one, never a partial one
            cr.load(path)
    assert left > 0  # some kill landed mid-write: the test tried what it is about
    cr.save(mlp(), path)  # the next write of the same path removes the dead writers' files
    assert _temporaries(tmp_path) == [] and os.listdir(tmp_path) == [path.name]


@pytest.mark.skipif(os.name != "posix", reason="process ids")
def test_only_the_temporaries_of_dead_processes_are_removed(tmp_path):
    path = tmp_path / "m.safetensors"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid, live_pid = int(dead.stdout), os.getppid()
    stale = tmp_path / f".m.safetensors.{dead_pid}.0123456789ab.tmp"
    running = tmp_path / f".m.safetensors.{live_pid}.0123456789ab.tmp"
    other = tmp_path / f".m.safetensors.5.{dead_pid}.0123456789ab.tmp"  # of "m.safetensors.5"
    for f in (stale, running, other):
        f.write_bytes(b"partial")
    cr.save(mlp(), path)
    assert not stale.exists() and running.exists() and other.exists()
    cr.load(path)


def test_a_failed_write_names_the_file_not_the_temporary(tmp_path, monkeypatch):
    import errno

    from chainrule import serialization

    def too_large(fd):
        raise OSError(errno.EFBIG, "File too large")

    path = tmp_path / "m.safetensors"
    monkeypatch.setattr(serialization.os, "fsync", too_large)
    with pytest.raises(OSError) as info:
        cr.save(mlp(), path)
    assert info.value.filename == str(path) and info.value.errno == errno.EFBIG
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_file_replaced_by_a_fifo_between_checks_is_still_refused(tmp_path, monkeypatch):
    # The mode is checked again on the opened file: a swap after the first check is caught.
    path = tmp_path / "m.safetensors"
    cr.save(mlp(), path)
    real, fifo_mode = os.fstat, stat.S_IFIFO | 0o644

    class Swapped:
        st_mode = fifo_mode

    def swapped(fd):  # only the descriptor open on path looks like a FIFO
        return Swapped() if os.readlink(f"/proc/self/fd/{fd}") == str(path) else real(fd)

    monkeypatch.setattr(container.os, "fstat", swapped)
    with pytest.raises(ModelFileError, match="FIFO"):
        cr.load(path)


# -- Ctrl-C raised inside fit ------------------------------------------------------------------
class InterruptAt:
    """Raises KeyboardInterrupt from ``hook`` ("step" or "epoch") at epoch ``epoch``."""

    def __init__(self, hook, epoch=1, step=2):
        self.hook, self.epoch, self.step = hook, epoch, step

    def on_step_end(self, step, logs):
        if self.hook == "step" and logs["epoch"] == self.epoch and step == self.step:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch, logs):
        if self.hook == "epoch" and epoch == self.epoch:
            raise KeyboardInterrupt


class InterruptedLoss(cr.NLLM):
    """Raises KeyboardInterrupt on its ``n``-th forward (counting from 1), once."""

    def __init__(self, n):
        super().__init__()
        self.n, self.calls = n, 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return super().forward(*args, **kwargs)


def fit_with(tmp_path, *, loss=None, callbacks=(), epochs=4, es=True):
    X, y = data()
    try:
        return cr.fit(model(), loss or cr.NLLM(), X, y, epochs=epochs, batch_size=8,
                      validation_data=VALIDATION, rng=0, progress=False, callbacks=callbacks,
                      early_stopping=cr.EarlyStopping(patience=9) if es else None,
                      checkpoint=tmp_path / "ck.safetensors")
    except KeyboardInterrupt:  # would stop pytest itself: fail this test instead
        pytest.fail("KeyboardInterrupt escaped fit")


def assert_consistent(history, epochs):
    assert history.interrupted and history.epochs == epochs
    assert all(len(v) == epochs for v in history.history.values())
    assert all(len(v) == epochs for v in history.grad_norms.values())


def test_keyboard_interrupt_in_on_epoch_end_returns_the_history_and_writes_the_checkpoint(
        tmp_path):
    history = fit_with(tmp_path, callbacks=[InterruptAt("epoch", 1)])
    assert_consistent(history, 2)
    _, resumed = resume(tmp_path / "ck.safetensors", epochs=4)  # that epoch's checkpoint
    assert resumed.epochs == 4


def test_keyboard_interrupt_in_validation_finishes_the_epoch(tmp_path):
    steps = -(-len(data()[0]) // 8)
    history = fit_with(tmp_path, loss=InterruptedLoss(steps + 1))  # epoch 0's validation
    assert_consistent(history, 1)
    assert np.isfinite(history.history["val_loss"]).all()


def test_keyboard_interrupt_while_the_checkpoint_is_written(tmp_path, monkeypatch):
    from chainrule import training
    real, calls = training.write_checkpoint, []

    def interrupted_once(*args):
        calls.append(1)
        if len(calls) == 2:  # epoch 1's first try
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(training, "write_checkpoint", interrupted_once)
    history = fit_with(tmp_path)
    assert_consistent(history, 2)
    assert len(calls) == 3
    monkeypatch.undo()
    _, resumed = resume(tmp_path / "ck.safetensors", epochs=2)
    assert resumed.epochs == 2  # the checkpoint of epoch 1 was written after all


def test_keyboard_interrupt_in_a_step_undoes_that_step(tmp_path):
    # The loss's 8th forward is epoch 1's 2nd step (epoch 0 took 5 and its validation 1):
    # that step is undone, epoch 1 is recorded as far as it got (1 whole step), and the
    # weights are those of a run stopped right after that step.
    history = fit_with(tmp_path, loss=InterruptedLoss(8), es=False)
    assert history.interrupted and history.epochs == 2

    class StopAfter:
        def on_step_end(self, step, logs):
            if (logs["epoch"], step) == (1, 0):
                raise KeyboardInterrupt

    X, y = data()
    weights = []
    for loss, callbacks in ((InterruptedLoss(8), []), (cr.NLLM(), [StopAfter()])):
        net = model()
        cr.fit(net, loss, X, y, epochs=4, batch_size=8, validation_data=VALIDATION, rng=0,
               progress=False, callbacks=callbacks)
        weights.append([p.data.copy() for p in net.parameters()])
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_keyboard_interrupt_in_a_step_callback_keeps_whole_steps(tmp_path):
    history = fit_with(tmp_path, callbacks=[InterruptAt("step", 1, step=2)], es=False)
    assert history.interrupted and history.epochs == 2  # epoch 1 recorded as far as it got


class InterruptingRows:
    """An array-like X (shape, dtype and row slicing: fit reads it a window at a time, as an
    h5py or zarr array) whose reads raise KeyboardInterrupt once ``armed``, as a data
    library's own signal handling may."""

    def __init__(self, A):
        self.A, self.armed = A, False
        self.shape, self.dtype, self.ndim = A.shape, A.dtype, A.ndim

    def __getitem__(self, rows):
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        return self.A[rows]


def test_keyboard_interrupt_while_reading_the_data_returns_the_history(tmp_path):
    X, y = data()
    rows = InterruptingRows(X)

    class ArmAt:
        def on_step_end(self, step, logs):
            rows.armed = rows.armed or (logs["epoch"], step) == (1, 1)

    try:
        history = cr.fit(model(), cr.NLLM(), rows, y, epochs=4, batch_size=8, rng=0,
                         progress=False, callbacks=[ArmAt()])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped fit")
    assert history.interrupted and history.epochs in (1, 2)
    assert all(len(v) == history.epochs for v in history.history.values())


def test_keyboard_interrupt_anywhere_else_in_the_loop_returns_the_history(tmp_path,
                                                                         monkeypatch):
    from chainrule import training
    real, tallies = training._Tally, []

    def tally(*args):  # the start of each epoch's bookkeeping: epoch 2's raises
        tallies.append(1)
        if len(tallies) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(training, "_Tally", tally)
    net = model()
    before = [p.data.copy() for p in net.parameters()]
    X, y = data()
    try:
        history = cr.fit(net, cr.NLLM(), X, y, epochs=4, batch_size=8, rng=0, progress=False)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped fit")
    assert history.interrupted and history.epochs == 2
    assert any(not np.array_equal(a, p.data) for a, p in zip(before, net.parameters()))


# -- writing to a link, a FIFO or a folder -----------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_a_write_through_a_symbolic_link_keeps_the_link(tmp_path):
    real, link = tmp_path / "real.safetensors", tmp_path / "link.safetensors"
    cr.save(mlp(), real)
    os.symlink(real, link)
    cr.save(mlp((4, 2, 3)), link)
    assert link.is_symlink() and cr.load(real).modules[0].W.data.shape == (4, 2)
    assert sorted(os.listdir(tmp_path)) == ["link.safetensors", "real.safetensors"]


def _without_waiting(write, fifo):
    """Run ``write()`` in a thread; the error it raises, or a failure if it waits on ``fifo``."""
    raised = []

    def run():
        try:
            write()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            raised.append(e)
        else:
            raised.append(None)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(SECONDS)
    if worker.is_alive():  # the code before the fix waits for a reader: release it, fail
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        worker.join(SECONDS)
        pytest.fail(f"the write waited on the FIFO {fifo}")
    return raised[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("how", ["atomic_write_bytes", "save", "fit-checkpoint", "link"])
def test_a_fifo_target_is_refused_without_waiting(tmp_path, how):
    fifo = tmp_path / "out.safetensors"
    os.mkfifo(fifo)
    target = fifo
    if how == "link":
        target = tmp_path / "link.safetensors"
        os.symlink(fifo, target)
    X, y = data()
    write = {
        "atomic_write_bytes": lambda: atomic_write_bytes(target, b"prediction\n1\n"),
        "save": lambda: cr.save(model(), target),
        "fit-checkpoint": lambda: cr.fit(model(), cr.NLLM(), X, y, epochs=1, rng=0,
                                         progress=False, checkpoint=target),
        "link": lambda: cr.save(model(), target),
    }[how]
    error = _without_waiting(write, fifo)
    assert isinstance(error, cr.ChainruleError), repr(error)
    assert "expected a regular file to write, got a FIFO" in str(error)
    assert str(target) in str(error)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == sorted({fifo.name, target.name})


def test_a_write_to_a_folder_names_it(tmp_path):
    with pytest.raises(IsADirectoryError) as info:
        cr.save(mlp(), tmp_path)
    assert info.value.filename == str(tmp_path) and os.listdir(tmp_path) == []
