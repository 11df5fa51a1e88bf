"""Seeded fuzzing of model files and checkpoints through ``load``, ``load_optimizer`` and
``resume``.

Each test mutates one valid file 1,000 times: raw bytes (flips, truncations, splices), the
safetensors header (dtypes, shapes, byte ranges), the JSON documents in its metadata
(architecture, optimizer, training state: a node replaced by a hostile value, removed,
added, duplicated, swapped or wrapped) and its tensors (dtype, shape, name, NaN, inf,
negative values). Structured mutations are re-signed, since the digest stops no attacker.
Every mutation goes through all three readers, and the only outcomes allowed are a
``ChainruleError`` or a working result: a model whose predictions are finite, an
optimizer, a resumed run that ran no more epochs than asked. The outcome counts are in the
failure message.

The weights' values themselves are the model's: a file with finite weights of 1e30 is a valid
model whose predictions may overflow, so value mutations here use NaN, inf, negative numbers
and zeros, which a file must never be trusted with, not large finite numbers.
"""

from __future__ import annotations

import collections
import json
import math
import os
import struct
import time

import numpy as np
import pytest

import chainrule as cr
from cases import blobs, mlp
from chainrule.errors import ChainruleError
from chainrule.optimizers import OPTIMIZERS
from test_serialization import decode, signed

MUTATIONS = 1000

X, Y = blobs(16, d=5, sep=1.5, rng=0)
VALIDATION = blobs(8, d=5, sep=1.5, rng=1)
EPOCHS = 3  # resume is asked for 3 epochs in all; the checkpoints hold 2

HOSTILE = [None, True, False, 0, -1, 1, 2, 7, 2**31, 2**63, 2**64 + 1, 10**30, 2**300,
           -10**9, 0.5, 1.5, -0.5, 1e-300, 1e308, 1e39, math.inf, -math.inf, math.nan, "",
           "x", "PCG64", "MT19937", "Philox", "Linear", "ReLU", "Sequential", "float16",
           "object", "0" * 100, [], [1], [[]], [None, None], {}, {"a": 1},
           {"class": "ReLU", "config": {}}]
DTYPES = [np.float64, np.float32, np.int64, np.int32, np.uint8, np.bool_]  # encode's
HEADER_DTYPES = ["F32", "F64", "F16", "BF16", "I64", "U8", "BOOL", "F8_E4M3", "X", ""]


def model():
    """Linear(5, 8), BatchNorm(8), ReLU, Dropout(0.2), Linear(8, 3), Softmax."""
    return mlp((5, 8, 3), batch_norm=True, dropout=0.2)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("valid")
    net = model()
    opt = cr.Adam()
    cr.fit(net, cr.NLLM(), X, Y, epochs=1, batch_size=8, optimizer=opt, rng=0, progress=False)
    cr.save(net, folder / "model.safetensors", optimizer=opt)
    for name, es in (("early_stopping", cr.EarlyStopping(patience=4)), ("plain", None)):
        cr.fit(model(), cr.NLLM(), X, Y, epochs=2, batch_size=8, validation_data=VALIDATION,
               early_stopping=es, rng=0, progress=False,
               checkpoint=folder / f"{name}.safetensors")
    return {p.stem: p.read_bytes() for p in folder.iterdir()}


# -- mutations ---------------------------------------------------------------------------------
def pick(rng, options):
    """One of ``options`` (of any types, which ``rng.choice`` would make an array of)."""
    options = list(options)
    return options[rng.integers(len(options))]


def _flip(rng, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.integers(1, 5)):
        b[rng.integers(len(b))] ^= int(rng.integers(1, 256))
    return bytes(b)


def _truncate(rng, data: bytes) -> bytes:
    return data[:rng.integers(len(data))]


def _splice(rng, data: bytes) -> bytes:
    at = int(rng.integers(len(data)))
    if rng.random() < 0.5:
        return data[:at] + rng.bytes(int(rng.integers(1, 64))) + data[at:]
    return data[:at] + data[at + int(rng.integers(1, 64)):]


def _header(rng, data: bytes) -> bytes:
    """The safetensors header edited (a tensor's dtype, shape or byte range), length fixed."""
    (n,) = struct.unpack("<Q", data[:8])
    head = json.loads(data[8:8 + n])
    name = str(pick(rng, sorted(k for k in head if k != "__metadata__")))
    entry = head[name]
    op = rng.integers(4)
    if op == 0:
        entry["dtype"] = str(pick(rng, HEADER_DTYPES))
    elif op == 1:
        entry["shape"] = [int(v) for v in pick(rng, [[0], [2**40, 0], [-1, 4], [1, 1, 1],
                                                      entry["shape"][::-1], [3]])]
    elif op == 2:
        start, end = entry["data_offsets"]
        entry["data_offsets"] = [int(v) for v in pick(rng,
            [[end, start], [start, end + 4], [start + 4, end], [0, 2**62], [start, start]])]
    else:
        head[str(pick(rng, ["__metadata__", name]))] = pick(rng, HOSTILE[:20])
    text = json.dumps(head).encode()
    return struct.pack("<Q", len(text)) + text + data[8 + n:]


def _nodes(value, path=()):
    """Every (container, key) in a JSON value, the root's parent included as (None, None)."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nodes(v, path + (i,))


def _json(rng, metadata, tensors) -> bytes:
    """One metadata JSON document with one node changed, re-signed."""
    key = str(pick(rng, [k for k in ("architecture", "optimizer", "meta") if k in metadata]))
    doc = {"root": json.loads(metadata[key])}
    paths = list(_nodes(doc["root"], ("root",)))
    path = paths[rng.integers(len(paths))]
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    last = path[-1]
    op = rng.integers(6)
    if op == 0 or (path == ("root",) and op in (1, 4)):
        parent[last] = HOSTILE[rng.integers(len(HOSTILE))]
    elif op == 1:
        del parent[last]
    elif op == 2:
        target = parent[last]
        if isinstance(target, dict):
            target["x" if rng.random() < 0.5 else "class"] = HOSTILE[rng.integers(len(HOSTILE))]
        elif isinstance(target, list):
            target.append(target[-1] if target else None)
        else:
            parent[last] = [target]
    elif op == 3:
        parent[last] = [parent[last]]
    elif op == 4 and isinstance(parent, list) and len(parent) > 1:
        j = int(rng.integers(len(parent)))
        parent[last], parent[j] = parent[j], parent[last]
    else:
        value = parent[last]
        parent[last] = (-value if type(value) in (int, float) else
                        value[:-1] if isinstance(value, (str, list)) else None)
    metadata = {**metadata, key: json.dumps(doc["root"])}
    return signed(_unsigned(metadata), tensors)


def _json_text(rng, metadata, tensors) -> bytes:
    """A metadata value as broken text: cut, nested too deep, a key given twice, replaced."""
    key = str(pick(rng, [k for k in metadata if k != "sha256"]))
    text = metadata[key]
    op = rng.integers(4)
    if op == 0:
        text = text[:rng.integers(len(text) + 1)]
    elif op == 1:
        text = "[" * 50_000 + text
    elif op == 2 and text.startswith("{"):
        first = text[1:].split(",", 1)[0]
        text = "{" + first + "," + text[1:]
    else:
        text = str(pick(rng, ["", "null", "1", "[]", "{}", '"x"', "NaN", "chainrule", "2"]))
    return signed(_unsigned({**metadata, key: text}), tensors)


def _tensor(rng, metadata, tensors) -> bytes:
    """One tensor changed (dtype, shape, name, values), dropped, or one added; re-signed."""
    tensors = dict(tensors)
    name = str(pick(rng, sorted(tensors)))
    A = tensors[name]
    op = rng.integers(7)
    if op == 0:
        tensors[name] = A.astype(DTYPES[rng.integers(len(DTYPES))])
    elif op == 1:
        tensors[name] = A.reshape(-1) if A.ndim > 1 else A.reshape(1, -1, 1)
    elif op == 2:
        del tensors[name]
    elif op == 3:
        other = str(pick(rng, sorted(tensors)))
        tensors[other if other != name else name + ".x"] = tensors.pop(name)
    elif op == 4 and A.dtype.kind == "f" and A.size:
        A = A.copy()
        A.flat[rng.integers(A.size)] = pick(rng, [np.nan, np.inf, -np.inf, -1.0, 0.0])
        tensors[name] = A
    elif op == 5:
        tensors[name] = np.zeros((0,) + A.shape[1:], A.dtype)
    else:
        suffix = str(pick(rng, ["W", "x", "running_var", "best.9", "exp_avg"]))
        tensors[name.rpartition(".")[0] + "." + suffix] = A
    return signed(_unsigned(metadata), tensors)


def _metadata_key(rng, metadata, tensors) -> bytes:
    metadata = _unsigned(metadata)
    key = str(pick(rng, sorted(metadata) + ["code"]))
    if rng.random() < 0.5 or key == "code":
        metadata[key] = str(pick(rng, ["1", "2", "chainrule", "{}", "x"]))
    else:
        del metadata[key]
    return signed(metadata, tensors)


def _unsigned(metadata: dict) -> dict:
    return {k: v for k, v in metadata.items() if k != "sha256"}


RAW = {"flip": _flip, "truncate": _truncate, "splice": _splice, "header": _header}
STRUCTURED = {"json": _json, "json-text": _json_text, "tensor": _tensor,
              "metadata": _metadata_key}
# How often each kind is drawn: mostly the structured, re-signed ones, which get deepest.
KINDS = ["flip", "truncate", "splice", "header"] + ["json"] * 8 + ["json-text", "tensor",
                                                                   "tensor", "metadata"]


def mutations(valid: bytes, n: int, seed: int):
    rng = np.random.default_rng(seed)
    metadata, tensors = decode(valid)
    for _ in range(n):
        kind = KINDS[rng.integers(len(KINDS))]
        if kind in RAW:
            yield kind, RAW[kind](rng, valid)
        else:
            yield kind, STRUCTURED[kind](rng, metadata, tensors)


# -- outcomes ----------------------------------------------------------------------------------
def _width(net) -> int:
    for p in net.parameters():
        if p.name == "W":
            return p.data.shape[0]
        if p.name == "G":
            return p.data.shape[1]
    return X.shape[1]


def _predicts(net) -> bool:
    rows = np.random.default_rng(0).normal(size=(6, _width(net)))
    return bool(np.isfinite(net.predict(rows)).all())


def _load(path):
    return "model" if _predicts(cr.load(path)) else "NON-FINITE PREDICTIONS"


def _load_optimizer(path):
    optimizer = cr.load_optimizer(path)
    return "optimizer" if type(optimizer) in OPTIMIZERS.values() else (
        f"NOT AN OPTIMIZER {type(optimizer)}")


def _resume(path):
    net, history = cr.resume(path, cr.NLLM(), X, Y, epochs=EPOCHS, batch_size=8,
                             validation_data=VALIDATION, progress=False)
    if history.epochs > EPOCHS:
        return f"RAN {history.epochs} EPOCHS"
    return "resumed" if _predicts(net) else "NON-FINITE PREDICTIONS"


READERS = {"load": _load, "load_optimizer": _load_optimizer, "resume": _resume}


def outcome(read, path) -> str:
    try:
        return read(path)
    except ChainruleError as e:
        return type(e).__name__
    except Exception as e:  # what the test is looking for  # noqa: BLE001
        return f"UNEXPECTED {type(e).__name__}: {str(e)[:200]}"


@pytest.mark.parametrize("name, seed", [("model", 1), ("early_stopping", 2), ("plain", 3)])
def test_mutated_files_give_a_chainrule_error_or_a_working_result(tmp_path, files, name, seed):
    path = tmp_path / "mutated.safetensors"
    counts, bad, slowest = collections.Counter(), [], 0.0
    for i, (kind, data) in enumerate(mutations(files[name], MUTATIONS, seed)):
        path.write_bytes(data)
        for reader, read in READERS.items():
            start = time.perf_counter()
            got = outcome(read, path)
            slowest = max(slowest, time.perf_counter() - start)
            counts[reader, got.split(":")[0]] += 1
            if got.startswith(("UNEXPECTED", "NON", "RAN", "NOT")):
                bad.append(f"#{i} {kind} via {reader}: {got}")
    summary = ", ".join(f"{r} {o}: {c}" for (r, o), c in sorted(counts.items()))
    assert not bad, f"{len(bad)} bad outcomes of {MUTATIONS} mutations of the {name} file " \
                    f"({summary}); first: {bad[:5]}"
    assert slowest < 5.0, f"slowest read {slowest:.1f}s ({summary})"
    worked = sum(c for (r, o), c in counts.items() if o in ("model", "optimizer", "resumed"))
    assert worked > 0 and sum(counts.values()) == 3 * MUTATIONS, summary
    os.remove(path)
