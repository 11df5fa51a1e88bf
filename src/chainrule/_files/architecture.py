"""A ``Sequential`` as architecture JSON plus its arrays by path, and back.

The JSON names each module by its registry name with its ``config()``; a nested ``Sequential``
has its own ``modules`` list::

    {"class": "Sequential", "modules": [
        {"class": "Linear", "config": {"m": 64, "n": 32, "init": "gaussian",
                                       "dtype": "float32"}},
        {"class": "ReLU", "config": {}},
        {"class": "Sequential", "modules": [...]}]}

Tensors are named by module path: ``modules.0.W``, ``modules.2.modules.0.W0``, ``modules.3.G``,
``modules.3.running_mean``. Which tensors a module has, and their shapes and dtypes, come from
building it (:mod:`.registry`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import ChainruleError, InputError
from ..layers import BatchNorm, LeakyReLU, Sequential
from . import registry
from .jsontext import short
from .registry import TensorSpec

MAX_DEPTH = 32  # nested Sequential
# Entries of the architecture (modules, nested Sequentials included): far above any real
# model, small enough that a hostile file listing 300,000 ReLUs is refused before it is parsed.
MAX_MODULES = 10_000


def describe(model, fail) -> tuple[dict, dict[str, np.ndarray], dict[str, TensorSpec]]:
    """``(spec, tensors, expected)`` of a model about to be saved: its architecture JSON, its
    arrays by path, and what ``load`` will expect under each path (for ``save`` to check now).

    A model that is not a ``Sequential`` of registry modules raises
    :class:`~chainrule.ChainruleError` naming the class; a config load would refuse raises
    ``fail(problem)``.
    """
    if type(model) is not Sequential:
        raise InputError(f"save expected a chainrule Sequential, got {type(model).__name__}")
    tensors, expected, placed = {}, {}, []
    spec = _describe(model, "", 0, tensors, expected, placed, fail)
    check_settings(placed, model.dtype, fail)
    return spec, tensors, expected


def _describe(module, prefix: str, depth: int, tensors: dict, expected: dict, placed: list,
              fail) -> dict:
    placed.append((prefix, module))
    if len(placed) > MAX_MODULES:
        raise fail(f"more than {MAX_MODULES} modules")
    if type(module) is Sequential:
        if depth >= MAX_DEPTH:
            raise InputError(f"save supports Sequential nested at most {MAX_DEPTH} deep")
        return {"class": "Sequential", "modules": [
            _describe(child, f"{prefix}modules.{i}.", depth + 1, tensors, expected, placed,
                      fail)
            for i, child in enumerate(module.modules)
        ]}
    where = prefix.rstrip(".") or "model"
    name = registry.name_of(module)
    if name is None:
        raise ChainruleError(
            f"save can store only chainrule's own modules ({', '.join(sorted(registry.MODULES))}"
            f", Sequential); module {where} is {type(module).__qualname__}, a user-defined class"
        )
    config = module.config()
    registry.check_config(name, config, where, fail)
    for attr, spec in registry.layout_for(name, config).items():
        expected[prefix + attr] = spec
        tensors[prefix + attr] = np.ascontiguousarray(registry.array(module, attr))
    return {"class": name, "config": config}


class Plan(NamedTuple):
    """New modules for a file's architecture, checked, before its tensors are copied in."""

    spec: dict  # the architecture JSON, checked
    placed: list[tuple[str, object, list[str]]]  # (path prefix, module, its tensors' attributes)
    expected: dict[str, TensorSpec]  # path -> what the file must hold there, in model order


def plan(spec, tensors: dict[str, np.ndarray], fail) -> Plan:
    """Check a file's architecture JSON and build a new module for each of its entries.

    ``tensors`` are the file's: only their sizes are read here, to bound what a hostile
    config can allocate. Any defect raises ``fail(problem)``.
    """
    stored = {}  # numbers per module path: "modules.0." -> sizes of modules.0.W and .W0
    for t, A in tensors.items():
        owner = t.rpartition(".")[0] + "."
        stored[owner] = stored.get(owner, 0) + A.size
    placed, expected = [], {}
    _plan(spec, "", 0, stored, placed, expected, [0], fail)
    return Plan(spec, placed, expected)


def _plan(spec, prefix: str, depth: int, stored: dict, placed: list, expected: dict,
          count: list[int], fail):
    where = prefix.rstrip(".") or "model"
    count[0] += 1
    if count[0] > MAX_MODULES:
        raise fail(f"architecture has more than {MAX_MODULES} modules")
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
        raise fail(f"architecture entry {where} must be an object with a 'class' string")
    name = spec["class"]
    if name == "Sequential":
        if set(spec) != {"class", "modules"} or not isinstance(spec["modules"], list):
            raise fail(f"architecture entry {where} (Sequential) must have exactly 'class' "
                       f"and a 'modules' list, got keys {short(sorted(spec))}")
        if depth >= MAX_DEPTH:
            raise fail(f"Sequential nested deeper than {MAX_DEPTH} at {where}")
        for i, child in enumerate(spec["modules"]):
            _plan(child, f"{prefix}modules.{i}.", depth + 1, stored, placed, expected, count,
                  fail)
        return
    if depth == 0:
        raise fail(f"architecture must be a Sequential, got {short(name)}")
    if name not in registry.MODULES:
        raise fail(f"unknown module class {short(name)} at {where} (known: "
                   f"{', '.join(sorted(registry.MODULES))}, Sequential)")
    config = spec.get("config")
    if set(spec) != {"class", "config"} or not isinstance(config, dict):
        raise fail(f"architecture entry {where} ({name}) must have exactly 'class' and a "
                   f"'config' object, got keys {short(sorted(spec))}")
    registry.check_config(name, config, where, fail)
    module = registry.build(name, config, where, stored.get(prefix, 0), fail)
    layout = registry.layout(module)
    placed.append((prefix, module, list(layout)))
    expected.update({prefix + attr: s for attr, s in layout.items()})


def assemble(plan: Plan, tensors: dict[str, np.ndarray], fail) -> Sequential:
    """The model: each checked tensor copied into its new module's array, then the modules
    put into ``Sequential``s (whose weight store takes the values from there), and their
    settings checked against its dtype (:func:`check_settings`)."""
    for prefix, module, attrs in plan.placed:
        for attr in attrs:
            np.copyto(registry.array(module, attr), tensors[prefix + attr])
    model = _assemble(plan.spec, iter([module for _, module, _ in plan.placed]))
    check_settings([(prefix, module) for prefix, module, _ in plan.placed], model.dtype, fail)
    return model


def check_settings(placed: list[tuple[str, object]], dtype, fail) -> None:
    """Refuse settings that each constructor accepts but that make a model of float ``dtype``
    (None: float32, what a model without parameters computes in) predict NaN or inf:

    - ``BatchNorm``'s eps must be a positive normal number in its dtype: with eps = 0 (or one
      that rounds to 0) a unit whose running variance is 0 divides 0 by 0 in eval mode, and
      one beyond the dtype's largest (1e39 in float32) becomes inf there;
    - ``LeakyReLU``'s alpha must be representable in the model's dtype (1e308 becomes inf in
      float32, and inf · 0 = NaN).

    ``placed`` holds ``(path prefix, module)`` pairs; a defect raises ``fail(problem)``.
    """
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    for prefix, module in placed:
        where = prefix.rstrip(".") or "model"
        if isinstance(module, BatchNorm):
            info = np.finfo(module.running_var.dtype)
            tiny, largest = float(info.tiny), float(info.max)  # comparing casts nothing
            if not tiny <= float(module.eps) <= largest:
                raise fail(f"BatchNorm at {where} expected eps in [{tiny:g}, {largest:g}] (a "
                           f"positive normal {info.dtype} number), got {module.eps!r}")
        elif isinstance(module, LeakyReLU):
            largest = float(np.finfo(dtype).max)  # a Python float: comparing casts nothing
            if not abs(module.alpha) <= largest:
                raise fail(f"LeakyReLU at {where} expected alpha within {dtype}'s range "
                           f"(≤ {largest:g}), got {module.alpha!r}")


def _assemble(spec: dict, modules) -> Sequential:
    return Sequential(*[
        _assemble(child, modules) if child["class"] == "Sequential" else next(modules)
        for child in spec["modules"]
    ])
