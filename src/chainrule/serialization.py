"""Model files: a ``Sequential`` (and optionally its optimizer) as one ``.safetensors`` file.

Never pickle: the file holds only arrays and JSON text, and ``load`` rebuilds modules from a
fixed registry of chainrule's own classes, so opening a file can never run code.

What a file holds (safetensors: an 8-byte little-endian header length, a JSON header, then the
raw little-endian tensor bytes):

=============================  ==============================================================
tensor                         what
=============================  ==============================================================
``modules.0.W``, ``.W0``       a ``Linear``'s parameters (nested: ``modules.2.modules.0.W``)
``modules.3.G``, ``.B``,       a ``BatchNorm``'s parameters and running statistics
``.running_mean``,
``.running_var``
``optimizer.state.4.exp_avg``  optimizer state of parameter 4 (``model.parameters()`` order)
``extra.<name>``               a checkpoint's extra tensors
=============================  ==============================================================

================== ==========================================================================
metadata key       value (all strings)
================== ==========================================================================
``format``         ``"chainrule"``
``format_version`` ``"1"``
``architecture``   JSON: ``{"class": "Sequential", "modules": [{"class": "Linear",
                   "config": {"m": 64, "n": 32, "init": "gaussian", "dtype": "float32"}},
                   {"class": "ReLU", "config": {}}, ...]}``
``optimizer``      JSON, optional: ``{"class": "Adam", "hyper": {...}, "t": 12,
                   "state_keys": [["exp_avg", "exp_avg_sq"], ...]}``
``meta``           JSON, checkpoints only: whatever the training loop stores
``sha256``         digest of every other metadata entry and every tensor (name, dtype,
                   shape, bytes), so a flipped bit anywhere is caught rather than loaded
================== ==========================================================================

Writes are atomic (temporary file in the same folder, fsync, ``os.replace``; see
:func:`atomic_write_bytes`, which the checkpoint and command-line code use too). Reading trusts
nothing: any defect raises :class:`~chainrule.ModelFileError` naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import secrets
import struct

import numpy as np
import safetensors.numpy

from .errors import ChainruleError, InputError, ModelFileError
from .layers import (
    BatchNorm,
    Dropout,
    Identity,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Step,
    Tanh,
)
from .parameter import Parameter

FORMAT = "chainrule"
FORMAT_VERSION = "1"
_MAX_HEADER = 100 * 2**20  # safetensors' own limit; a real header is a few kB
_MAX_DEPTH = 32  # nested Sequential
_TENSOR_DTYPES = frozenset(np.dtype(t) for t in (
    np.float64, np.float32, np.float16, np.int64, np.uint64, np.int32, np.uint32, np.int16,
    np.uint16, np.int8, np.uint8, np.bool_))


# -- the registry: the only classes a file may name ----------------------------------------
def _is_int(v) -> bool:
    return type(v) is int


def _is_real(v) -> bool:
    return type(v) in (int, float)


def _is_str(v) -> bool:
    return type(v) is str


def _is_dtype(v) -> bool:
    return v in ("float32", "float64")


def _row(c: dict) -> tuple:
    return (1, c["n"])


# class name -> (class, {config key: type check}, {tensor name: shape from config})
_MODULES = {
    "Linear": (Linear, {"m": _is_int, "n": _is_int, "init": _is_str, "dtype": _is_dtype},
               {"W": lambda c: (c["m"], c["n"]), "W0": _row}),
    "BatchNorm": (BatchNorm, {"n": _is_int, "eps": _is_real, "momentum": _is_real,
                              "dtype": _is_dtype},
                  {"G": _row, "B": _row, "running_mean": _row, "running_var": _row}),
    "Dropout": (Dropout, {"p": _is_real}, {}),
    "LeakyReLU": (LeakyReLU, {"alpha": _is_real}, {}),
    **{cls.__name__: (cls, {}, {}) for cls in (Step, ReLU, Sigmoid, Tanh, Identity, Softmax)},
}
_NAMES = {entry[0]: name for name, entry in _MODULES.items()}


# -- public API ------------------------------------------------------------------------------
def save(model: Sequential, path: str | os.PathLike, *, optimizer=None) -> None:
    """Write ``model`` (and ``optimizer``, if given) to one ``.safetensors`` file, atomically.

    The file stores every module by class name with its settings (``Linear`` m, n, init and
    dtype; ``BatchNorm`` eps, momentum and dtype; ``Dropout`` p; ``LeakyReLU`` alpha), every
    parameter and ``BatchNorm``'s running statistics, so :func:`load` gives back a model whose
    predictions are bit-identical. With ``optimizer``, also its class, hyper-parameters, step
    count ``t`` and per-parameter state (a callable ``lr`` is not stored), for
    :func:`load_optimizer`. An existing file is replaced only once the new one is complete.

    Only chainrule's own modules can be saved (``Linear``, the activations, ``Dropout``,
    ``BatchNorm`` and nested ``Sequential``): a user-defined module (or a subclass) raises
    :class:`~chainrule.ChainruleError` naming its class. A ``Dropout``'s random generator is
    not stored (a loaded model's masks are freshly random).

    Example
    -------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import chainrule as cr
    >>> model = cr.Sequential(cr.Linear(4, 8, rng=0), cr.LeakyReLU(0.2), cr.Linear(8, 1, rng=1))
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> cr.save(model, path, optimizer=cr.Adam(lr=0.01))
    >>> X = np.ones((3, 4), np.float32)
    >>> bool(np.array_equal(cr.load(path).predict(X), model.predict(X)))
    True
    >>> cr.load_optimizer(path).lr
    0.01
    """
    atomic_write_bytes(path, _serialize(model, optimizer))


def load(path: str | os.PathLike) -> Sequential:
    """Read a model written by :func:`save` (or :func:`save_checkpoint`) as a ``Sequential``.

    Modules are rebuilt only from chainrule's own classes; every tensor's presence, shape and
    dtype is checked against the architecture, and a SHA-256 digest of the whole content
    against the one stored, so a truncated, corrupted or hostile file raises
    :class:`~chainrule.ModelFileError` (naming the file and the problem) and executes nothing.
    The loaded model is in training mode, like a new one. A missing file raises the usual
    ``FileNotFoundError``.

    Example
    -------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import chainrule as cr
    >>> model = cr.Sequential(cr.Linear(3, 5, rng=0, dtype=np.float64), cr.BatchNorm(5,
    ...                       dtype=np.float64), cr.ReLU(), cr.Linear(5, 2, rng=1,
    ...                       dtype=np.float64), cr.Softmax())
    >>> X = np.arange(12.0).reshape(4, 3)
    >>> _ = model(X)  # a training forward moves BatchNorm's running statistics
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> cr.save(model, path)
    >>> copy = cr.load(path)
    >>> [type(m).__name__ for m in copy.modules]
    ['Linear', 'BatchNorm', 'ReLU', 'Linear', 'Softmax']
    >>> bool(np.array_equal(copy.predict(X), model.predict(X)))
    True
    """
    return _read(path).model


def load_optimizer(path: str | os.PathLike):
    """The optimizer stored by ``save(model, path, optimizer=...)``, with its state restored.

    Its class comes from ``chainrule.optimizers.OPTIMIZERS`` only; hyper-parameters are
    checked against that class's constructor. A callable ``lr`` was not stored: the result
    has the class default, so set it again. A file without an optimizer raises
    :class:`~chainrule.ModelFileError`.
    """
    contents = _read(path, build_optimizer=True)
    if contents.optimizer is None:
        raise ModelFileError(f"{os.fspath(path)}: the file stores no optimizer")
    return contents.optimizer


def save_checkpoint(path: str | os.PathLike, model: Sequential, optimizer, meta: dict,
                    tensors: dict[str, np.ndarray]) -> None:
    """Write a training checkpoint atomically: model, optimizer, ``meta`` and extra tensors.

    ``meta`` is any JSON-serialisable dict with string keys (Python ints of any size, such as
    a PCG64 state, round-trip exactly; numpy scalars are stored as Python numbers; tuples come
    back as lists; inf and NaN are kept). ``tensors`` maps names to arrays (stored as
    ``extra.<name>``). ``optimizer`` may be None.
    """
    if not isinstance(meta, dict):
        raise InputError(f"save_checkpoint expected meta as a dict, got {type(meta).__name__}")
    if not isinstance(tensors, dict):
        raise InputError(
            f"save_checkpoint expected tensors as a dict of arrays, got {type(tensors).__name__}"
        )
    extra = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise InputError(f"save_checkpoint expected tensor names as strings, got {name!r}")
        extra[f"extra.{name}"] = _as_tensor(value, f"tensors[{name!r}]")
    data = _serialize(model, optimizer, meta=_dumps(meta, "save_checkpoint meta"), extra=extra)
    atomic_write_bytes(path, data)


def load_checkpoint(path: str | os.PathLike):
    """Read a file written by :func:`save_checkpoint`.

    Returns ``(model, optimizer_or_None, meta, tensors)``, with the same checks as :func:`load`;
    a plain model file (no ``meta``) raises :class:`~chainrule.ModelFileError`.
    """
    contents = _read(path, build_optimizer=True)
    if contents.meta is None:
        raise ModelFileError(
            f"{os.fspath(path)}: not a checkpoint (a model file without 'meta' metadata)"
        )
    return contents.model, contents.optimizer, contents.meta, contents.extra


# -- writing ---------------------------------------------------------------------------------
def _serialize(model, optimizer, *, meta: str | None = None, extra=None) -> bytes:
    """The bytes of a model file (architecture, tensors, optimizer, meta, digest)."""
    if type(model) is not Sequential:
        raise InputError(f"save expected a chainrule Sequential, got {type(model).__name__}")
    spec, tensors = _describe(model, "", 0)

    def fail(problem: str):
        return InputError(f"save cannot write a file that would not load: {problem}")

    # The checks load will make, made now: e.g. a W0 whose dtype differs from its W's.
    expected = {}
    _plan(spec, "", 0, expected, [], fail)
    _check_tensors(expected, tensors, fail)
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "architecture": _dumps(spec, "architecture")}
    if optimizer is not None:
        params = model.parameters()
        described, state = _describe_optimizer(optimizer, params)
        metadata["optimizer"] = _dumps(described, "optimizer state")
        tensors.update(state)
    if meta is not None:
        metadata["meta"] = meta
    tensors.update(extra or {})
    metadata["sha256"] = _digest(metadata, tensors)
    return safetensors.numpy.save(tensors, metadata=metadata)


def _describe(module, prefix: str, depth: int) -> tuple[dict, dict]:
    """``(spec, tensors)`` of a module: its JSON description and its arrays by path."""
    if type(module) is Sequential:
        if depth >= _MAX_DEPTH:
            raise InputError(f"save supports Sequential nested at most {_MAX_DEPTH} deep")
        spec, tensors = {"class": "Sequential", "modules": []}, {}
        for i, child in enumerate(module.modules):
            child_spec, child_tensors = _describe(child, f"{prefix}modules.{i}.", depth + 1)
            spec["modules"].append(child_spec)
            tensors.update(child_tensors)
        return spec, tensors
    name = _NAMES.get(type(module))
    if name is None:
        raise ChainruleError(
            f"save can store only chainrule's own modules ({', '.join(sorted(_MODULES))}, "
            f"Sequential); module {prefix.rstrip('.') or 'model'} is "
            f"{type(module).__qualname__}, a user-defined class"
        )
    config = module.config()
    tensors = {prefix + t: np.ascontiguousarray(_array(getattr(module, t)))
               for t in _MODULES[name][2]}
    return {"class": name, "config": config}, tensors


def _describe_optimizer(optimizer, params: list) -> tuple[dict, dict]:
    from .optimizers import OPTIMIZERS

    name = type(optimizer).__name__
    if OPTIMIZERS.get(name) is not type(optimizer):
        raise ChainruleError(
            f"save can store only chainrule's optimizers ({', '.join(sorted(OPTIMIZERS))}), "
            f"got {type(optimizer).__qualname__}"
        )
    d = optimizer.state_dict()
    state = list(d["state"])
    if len(state) not in (0, len(params)):
        raise InputError(
            f"save expected an optimizer with state for the model's {len(params)} parameters, "
            f"got state for {len(state)}"
        )
    tensors, keys = {}, []
    for i, entry in enumerate(state):
        keys.append(sorted(entry))
        for key, value in entry.items():
            tensors[f"optimizer.state.{i}.{key}"] = _as_tensor(value, f"optimizer state {key}")
    # A callable lr (a schedule) is not stored: the user passes it again.
    hyper = {k: None if callable(v) else v for k, v in d["hyper"].items()}
    described = {"class": name, "hyper": hyper, "t": int(d["t"]),
                 "state_keys": keys}
    return described, tensors


def _array(x) -> np.ndarray:
    return x.data if isinstance(x, Parameter) else x


def _as_tensor(value, what: str) -> np.ndarray:
    A = np.ascontiguousarray(value)
    if A.dtype not in _TENSOR_DTYPES:
        raise InputError(
            f"save expected {what} as a numeric or boolean array, got array of dtype {A.dtype}"
        )
    return A


def _json_default(x):
    if isinstance(x, np.generic) and x.dtype.kind in "biuf":
        return x.item()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def _check_keys(obj, what: str) -> None:
    # json.dumps would silently turn int keys into strings: refuse instead.
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise InputError(f"{what} expected string keys, got key {k!r}")
            _check_keys(v, what)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _check_keys(v, what)


def _dumps(obj, what: str) -> str:
    _check_keys(obj, what)
    try:
        return json.dumps(obj, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError, RecursionError) as e:
        raise InputError(f"{what} must be JSON-serialisable: {e}") from None


def _digest(metadata: dict[str, str], tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 over every metadata entry but ``sha256`` and every tensor's name, dtype, shape
    and little-endian bytes, each length-prefixed so no two contents share an encoding."""
    h = hashlib.sha256()

    def put(b: bytes | memoryview) -> None:
        h.update(struct.pack("<Q", len(b)))
        h.update(b)

    for key in sorted(metadata):
        if key != "sha256":
            put(key.encode())
            put(metadata[key].encode())
    for name in sorted(tensors):
        A = tensors[name]
        A = np.ascontiguousarray(A, dtype=A.dtype.newbyteorder("<"))
        put(name.encode())
        put(A.dtype.str.encode())
        put(json.dumps(A.shape).encode())
        put(A.reshape(-1).view(np.uint8).data)
    return h.hexdigest()


def _fspath(path) -> str:
    try:
        return os.fspath(path)
    except TypeError:
        raise InputError(
            f"expected path as str or os.PathLike, got {type(path).__name__}"
        ) from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either the old file or the new one.

    A temporary file in the same folder is written, flushed and fsync'ed, then renamed over
    ``path`` with ``os.replace`` (atomic on one file system). On any failure, including
    ``KeyboardInterrupt``, the temporary file is removed and an existing ``path`` is untouched.
    """
    path = _fspath(path)
    folder, base = os.path.split(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f".{base[:200]}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for a plain open()
            break
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):  # make the rename durable (POSIX)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


_atomic_write_bytes = atomic_write_bytes  # the name the checkpoint code was briefed with


# -- reading ---------------------------------------------------------------------------------
class _Contents:
    __slots__ = ("model", "optimizer", "meta", "extra")

    def __init__(self, model, optimizer, meta, extra):
        self.model, self.optimizer, self.meta, self.extra = model, optimizer, meta, extra


def _read(path, *, build_optimizer: bool = False) -> _Contents:
    """Parse and check a whole file; every defect becomes a ModelFileError naming the file."""
    name = _fspath(path)
    with open(name, "rb") as f:
        data = f.read()

    def fail(problem: str):
        if len(problem) > 1000:  # messages quote the file; a hostile one may quote megabytes
            problem = problem[:1000] + " ..."
        return ModelFileError(f"{name}: {problem}")

    metadata = _read_metadata(data, fail)
    try:
        tensors = safetensors.numpy.load(data)
    except Exception as e:  # SafetensorError, an unknown dtype's KeyError, ...
        raise fail(f"not a valid safetensors file ({e})") from None
    if metadata.get("format") != FORMAT:
        raise fail(f"not a chainrule model file (format {_short(metadata.get('format'))}, "
                   f"expected {FORMAT!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise fail(f"unsupported format_version {_short(metadata.get('format_version'))} "
                   f"(this chainrule reads {FORMAT_VERSION!r})")
    if "sha256" not in metadata:
        raise fail("missing metadata 'sha256'")
    if _digest(metadata, tensors) != metadata["sha256"]:
        raise fail("corrupted: the content does not match its SHA-256 digest")
    unknown = set(metadata) - {"format", "format_version", "architecture", "optimizer",
                               "meta", "sha256"}
    if unknown:
        raise fail(f"unexpected metadata {_short(sorted(unknown))}")

    spec = _loads(metadata, "architecture", fail)
    expected, builders = {}, []
    _plan(spec, "", 0, expected, builders, fail)
    params = [(path_, shape, dtype) for path_, (shape, dtype, is_param) in expected.items()
              if is_param]
    opt_spec = None
    if "optimizer" in metadata:
        opt_spec = _loads(metadata, "optimizer", fail)
        _plan_optimizer(opt_spec, params, expected, fail)
    meta = _loads(metadata, "meta", fail) if "meta" in metadata else None
    if meta is not None and not isinstance(meta, dict):
        raise fail(f"metadata 'meta' must be a JSON object, got {type(meta).__name__}")

    extra = {}
    for t in sorted(set(tensors) - set(expected)):
        if meta is None or not t.startswith("extra."):
            raise fail(f"unexpected tensor {_short(t)}")
        extra[t[len("extra."):]] = tensors[t]
    _check_tensors(expected, tensors, fail)

    modules = [build(tensors) for build in builders]
    model = _assemble(spec, iter(modules))
    optimizer = None
    if build_optimizer and opt_spec is not None:
        optimizer = _build_optimizer(opt_spec, tensors, fail)
    return _Contents(model, optimizer, meta, extra)


def _check_tensors(expected: dict, tensors: dict, fail) -> None:
    """Each expected tensor is present with its shape and dtype, finite, and (running
    variances) not negative."""
    for t, (shape, dtype, _) in expected.items():
        if t not in tensors:
            raise fail(f"missing tensor {t!r}")
        A = tensors[t]
        if A.shape != shape or A.dtype != dtype:
            raise fail(f"tensor {t!r} expected shape {shape} and dtype {dtype}, "
                       f"got shape {A.shape} and dtype {A.dtype}")
        if A.dtype.kind == "f" and not np.isfinite(A).all():  # NaN would reach predictions
            raise fail(f"tensor {t!r} expected finite values, got NaN or inf")
        if t.endswith("running_var") and A.size and A.min() < 0:
            raise fail(f"tensor {t!r} expected variances ≥ 0, got {A.min():g}")


def _read_metadata(data: bytes, fail) -> dict[str, str]:
    """The header's ``__metadata__``, after checking the header length against the file."""
    if len(data) < 8:
        raise fail(f"truncated: {len(data)} bytes, not even a safetensors header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(len(data) - 8, _MAX_HEADER):
        raise fail(f"not a safetensors file: header length {n} exceeds the file's "
                   f"{len(data) - 8} remaining bytes (or the {_MAX_HEADER}-byte limit)")
    header = _parse_json(data[8:8 + n], fail, "header")
    if not isinstance(header, dict):
        raise fail("header is not a JSON object")
    metadata = header.get("__metadata__")
    if metadata is None:
        raise fail("missing metadata (no '__metadata__' in the header)")
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise fail("'__metadata__' must map strings to strings")
    return metadata


def _short(value) -> str:
    """``repr(value)``, cut to a length fit for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _unique(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {_short(k)}")
        d[k] = v
    return d


def _parse_json(text, fail, what: str):
    try:
        return json.loads(text, object_pairs_hook=_unique)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise fail(f"malformed JSON in {what} ({e})") from None


def _loads(metadata: dict, key: str, fail):
    if key not in metadata:
        raise fail(f"missing metadata {key!r}")
    return _parse_json(metadata[key], fail, f"metadata {key!r}")


def _plan(spec, prefix: str, depth: int, expected: dict, builders: list, fail) -> None:
    """Check one architecture entry; record its tensors and how to build it (in order)."""
    where = prefix.rstrip(".") or "model"
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
        raise fail(f"architecture entry {where} must be an object with a 'class' string")
    name = spec["class"]
    if name == "Sequential":
        if set(spec) != {"class", "modules"} or not isinstance(spec["modules"], list):
            raise fail(f"architecture entry {where} (Sequential) must have exactly 'class' "
                       f"and a 'modules' list, got keys {_short(sorted(spec))}")
        if depth >= _MAX_DEPTH:
            raise fail(f"Sequential nested deeper than {_MAX_DEPTH} at {where}")
        for i, child in enumerate(spec["modules"]):
            _plan(child, f"{prefix}modules.{i}.", depth + 1, expected, builders, fail)
        return
    if depth == 0:
        raise fail(f"architecture must be a Sequential, got {_short(name)}")
    if name not in _MODULES:
        raise fail(f"unknown module class {_short(name)} at {where} (known: "
                   f"{', '.join(sorted(_MODULES))}, Sequential)")
    cls, checks, shapes = _MODULES[name]
    config = spec.get("config")
    if set(spec) != {"class", "config"} or not isinstance(config, dict):
        raise fail(f"architecture entry {where} ({name}) must have exactly 'class' and a "
                   f"'config' object, got keys {_short(sorted(spec))}")
    if set(config) != set(checks):
        raise fail(f"{name} config at {where} expected keys {sorted(checks)}, "
                   f"got {_short(sorted(config))}")
    for key, ok in checks.items():
        if not ok(config[key]):
            raise fail(f"{name} config at {where} has a bad value {key}={_short(config[key])}")
    dtype = np.dtype(config["dtype"]) if "dtype" in config else None
    for t, shape in shapes.items():
        expected[prefix + t] = (shape(config), dtype, t in cls._params)

    def build(tensors, cls=cls, config=config, prefix=prefix):
        try:
            module = cls(**config, **({"rng": 0} if cls is Linear else {}))
        except Exception as e:  # the constructor's own checks (InputError, ...)
            raise fail(f"bad {name} config at {where}: {e}") from None
        for t in shapes:
            np.copyto(_array(getattr(module, t)), tensors[prefix + t])
        return module

    builders.append(build)


def _assemble(spec: dict, modules) -> Sequential:
    return Sequential(*[
        _assemble(child, modules) if child["class"] == "Sequential" else next(modules)
        for child in spec["modules"]
    ])


def _plan_optimizer(spec, params: list, expected: dict, fail) -> None:
    """Check the optimizer's JSON and record its state tensors (shaped like the parameters)."""
    if not isinstance(spec, dict) or set(spec) != {"class", "hyper", "t", "state_keys"}:
        raise fail("metadata 'optimizer' must be an object with exactly 'class', 'hyper', "
                   "'t' and 'state_keys'")
    ok = (isinstance(spec["class"], str) and isinstance(spec["hyper"], dict)
          and _is_int(spec["t"]) and spec["t"] >= 0 and isinstance(spec["state_keys"], list)
          and all(type(v) in (int, float, bool) or v is None for v in spec["hyper"].values()))
    if not ok:
        raise fail("metadata 'optimizer' has a value of the wrong type")
    keys = spec["state_keys"]
    if len(keys) not in (0, len(params)):
        raise fail(f"optimizer state for {len(keys)} parameters, the model has {len(params)}")
    for i, (entry, (_, shape, dtype)) in enumerate(zip(keys, params, strict=False)):
        if not isinstance(entry, list) or not all(_is_str(k) and k for k in entry):
            raise fail(f"optimizer state_keys[{i}] must be a list of names")
        for key in entry:
            expected[f"optimizer.state.{i}.{key}"] = (shape, dtype, False)


def _build_optimizer(spec: dict, tensors: dict, fail):
    from .optimizers import OPTIMIZERS

    cls = OPTIMIZERS.get(spec["class"])
    if cls is None:
        raise fail(f"unknown optimizer class {_short(spec['class'])} "
                   f"(known: {', '.join(sorted(OPTIMIZERS))})")
    hyper = spec["hyper"]
    allowed = {p.name for p in inspect.signature(cls).parameters.values()
               if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not set(hyper) <= allowed:
        raise fail(f"{spec['class']} hyper-parameters expected keys among {sorted(allowed)}, "
                   f"got {_short(sorted(hyper))}")
    state = [{k: tensors[f"optimizer.state.{i}.{k}"].copy() for k in entry}
             for i, entry in enumerate(spec["state_keys"])]
    try:
        optimizer = cls(**{k: v for k, v in hyper.items() if v is not None})
        optimizer.load_state_dict({"hyper": hyper, "t": spec["t"], "state": state})
    except Exception as e:
        raise fail(f"bad {spec['class']} state: {e}") from None
    return optimizer
