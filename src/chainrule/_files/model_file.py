"""A whole model file: what it holds, how it is written, and what reading it checks.

A model file is a safetensors container (:mod:`.container`) holding only arrays and JSON
text, so reading one never unpickles and never runs code:

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
``architecture``   JSON (:mod:`.architecture`)
``optimizer``      JSON, optional (:mod:`.optimizer_state`)
``meta``           JSON, checkpoints only: whatever the training loop stores
``sha256``         digest of every other metadata entry and every tensor (name, dtype,
                   shape, bytes), so a flipped bit anywhere is caught rather than loaded
================== ==========================================================================

Reading trusts nothing: any defect raises :class:`~chainrule.ModelFileError` naming the file
and the problem, and ``save`` makes the same checks before writing, so it never writes a file
that would not load. In order: a regular file with a bounded header (:mod:`.container`), the
format, version and digest, the architecture (:mod:`.architecture`, at most
:data:`~.architecture.MAX_MODULES` modules), the tensors against the modules built from it, the
optimizer's state, then the modules' settings against the model's dtype. The digest only
proves a file whole: anyone can recompute it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import InputError, ModelFileError
from . import architecture, container, jsontext, optimizer_state
from .integrity import digest, fspath
from .registry import TensorSpec

FORMAT = "chainrule"
FORMAT_VERSION = "1"
_METADATA = frozenset({"format", "format_version", "architecture", "optimizer", "meta", "sha256"})


def encode(model, optimizer=None, *, meta: str | None = None,
           extra: dict[str, np.ndarray] | None = None) -> bytes:
    """The bytes of a model file: ``model``, ``optimizer`` (optional), ``meta`` (JSON text,
    optional) and ``extra`` tensors (named ``extra.<name>`` already), with their digest."""
    def fail(problem: str):
        return InputError(f"save cannot write a file that would not load: {problem}")

    spec, tensors, expected = architecture.describe(model, fail)
    check_tensors(expected, tensors, fail)  # e.g. a W0 whose dtype differs from its W's
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "architecture": jsontext.dumps(spec, "architecture")}
    if optimizer is not None:
        described, state = optimizer_state.describe(optimizer, model.parameters())
        optimizer_state.check_values(state, fail)
        metadata["optimizer"] = jsontext.dumps(described, "optimizer state")
        tensors.update(state)
    if meta is not None:
        metadata["meta"] = meta
    tensors.update(extra or {})
    metadata["sha256"] = digest(metadata, tensors)
    return container.write(metadata, tensors, fail)


class Contents(NamedTuple):
    """What a file holds: ``meta`` is None for a plain model file, ``optimizer`` when it
    stores none (or was not asked for); ``extra`` maps names without ``extra.`` to arrays."""

    model: object
    optimizer: object
    meta: dict | None
    extra: dict[str, np.ndarray]


def decode(path, *, build_optimizer: bool = False) -> Contents:
    """Read and check a whole file; every defect raises ModelFileError naming the file."""
    name = fspath(path)

    def fail(problem: str):
        if len(problem) > 1000:  # messages quote the file; a hostile one may quote megabytes
            problem = problem[:1000] + " ..."
        return ModelFileError(f"{name}: {problem}")

    metadata, tensors = container.read_file(name, fail)
    _check_metadata(metadata, tensors, fail)
    if metadata.get("architecture", "").count('"class"') > architecture.MAX_MODULES:
        raise fail(f"architecture has more than {architecture.MAX_MODULES} modules")
    plan = architecture.plan(_loads(metadata, "architecture", fail), tensors, fail)
    expected, opt_spec = dict(plan.expected), None
    if "optimizer" in metadata:
        opt_spec = _loads(metadata, "optimizer", fail)
        params = [s for s in plan.expected.values() if s.is_param]
        expected.update(optimizer_state.plan(opt_spec, params, fail))
    meta = _loads(metadata, "meta", fail) if "meta" in metadata else None
    if meta is not None and not isinstance(meta, dict):
        raise fail(f"metadata 'meta' must be a JSON object, got {type(meta).__name__}")
    extra = _extra(tensors, expected, meta is not None, fail)
    check_tensors(expected, tensors, fail)
    optimizer_state.check_values(tensors, fail)
    model = architecture.assemble(plan, tensors, fail)
    build = build_optimizer and opt_spec is not None
    optimizer = optimizer_state.build(opt_spec, tensors, fail) if build else None
    return Contents(model, optimizer, meta, extra)


def _extra(tensors: dict[str, np.ndarray], expected: dict, is_checkpoint: bool, fail) -> dict:
    """The tensors nothing expects: a checkpoint's ``extra.<name>`` ones by ``name``; any
    other raises ``fail(problem)``."""
    extra = {}
    for t in sorted(set(tensors) - set(expected)):
        if not is_checkpoint or not t.startswith("extra."):
            raise fail(f"unexpected tensor {jsontext.short(t)}")
        extra[t[len("extra."):]] = tensors[t]
    return extra


def check_tensors(expected: dict[str, TensorSpec], tensors: dict[str, np.ndarray],
                  fail) -> None:
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


def _check_metadata(metadata: dict[str, str], tensors: dict[str, np.ndarray], fail) -> None:
    """The format, its version, the digest over everything, and no unknown metadata keys."""
    if metadata.get("format") != FORMAT:
        raise fail(f"not a chainrule model file (format {jsontext.short(metadata.get('format'))}"
                   f", expected {FORMAT!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise fail(f"unsupported format_version {jsontext.short(metadata.get('format_version'))}"
                   f" (this chainrule reads {FORMAT_VERSION!r})")
    if "sha256" not in metadata:
        raise fail("missing metadata 'sha256'")
    if digest(metadata, tensors) != metadata["sha256"]:
        raise fail("corrupted: the content does not match its SHA-256 digest")
    unknown = set(metadata) - _METADATA
    if unknown:
        raise fail(f"unexpected metadata {jsontext.short(sorted(unknown))}")


def _loads(metadata: dict[str, str], key: str, fail):
    if key not in metadata:
        raise fail(f"missing metadata {key!r}")
    return jsontext.parse(metadata[key], fail, f"metadata {key!r}")
