"""The modules a model file may name, and the tensors a file stores for each.

``MODULES`` maps a class name to the class and a check of each key of its ``config()`` (JSON
types only: ranges are the constructor's to check). It is all that ``load`` will construct, so
opening a file never runs code the file names. Everything else comes from building the module
from its config: the tensors a file stores for a module are the parameters and arrays of a new
one, with their shapes and dtypes (:func:`layout`). A new layer needs one entry here.

Settings checked as ints are taken to be sizes (``Linear``'s m and n, ``BatchNorm``'s n): a
module holds at least their product of numbers, which is how :func:`build` bounds what a
hostile file can make ``load`` allocate.
"""

from __future__ import annotations

import functools
import json
import math
from typing import NamedTuple

import numpy as np

from ..layers import (
    BatchNorm,
    Dropout,
    Identity,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    Softmax,
    Step,
    Tanh,
)
from ..parameter import Parameter
from .jsontext import short


def _is_int(v) -> bool:
    return type(v) is int  # not bool, not 3.0


def _is_real(v) -> bool:
    return type(v) in (int, float)


def _is_str(v) -> bool:
    return type(v) is str


def _is_dtype(v) -> bool:
    return v in ("float32", "float64")


# class name -> (class, {config key: check of its JSON value})
MODULES = {
    "Linear": (Linear, {"m": _is_int, "n": _is_int, "init": _is_str, "offsets": _is_str,
                        "dtype": _is_dtype}),
    "BatchNorm": (BatchNorm, {"n": _is_int, "eps": _is_real, "momentum": _is_real,
                              "eps_inside": _is_str, "dtype": _is_dtype}),
    "Dropout": (Dropout, {"p": _is_real, "scaling": _is_str}),
    "LeakyReLU": (LeakyReLU, {"alpha": _is_real}),
    **{cls.__name__: (cls, {}) for cls in (Step, ReLU, Sigmoid, Tanh, Identity, Softmax)},
}
_NAMES = {cls: name for name, (cls, _) in MODULES.items()}

# Config keys added after files were first written: a file may lack them, and then the
# constructor's default (the behaviour those files were written with) applies.
ADDED = {"Linear": {"offsets"}, "BatchNorm": {"eps_inside"}, "Dropout": {"scaling"}}


class TensorSpec(NamedTuple):
    """What a file must hold under one tensor name."""

    shape: tuple[int, ...]
    dtype: np.dtype
    is_param: bool  # a Parameter, which optimizer state is shaped like (not a running statistic)


def name_of(module) -> str | None:
    """The registry name of ``module``'s exact class; None for any other class, a subclass
    included (it may behave differently from the class a file would name)."""
    return _NAMES.get(type(module))


def check_config(name: str, config: dict, where: str, fail) -> None:
    """``config`` has exactly the registry's keys for ``name`` (those of ``ADDED`` may be
    missing), each with a JSON value of the right type; otherwise ``fail(problem)`` is raised."""
    checks = MODULES[name][1]
    if not set(checks) - ADDED.get(name, set()) <= set(config) <= set(checks):
        raise fail(f"{name} config at {where} expected keys {sorted(checks)}, "
                   f"got {short(sorted(config))}")
    for key, ok in checks.items():
        if key in config and not ok(config[key]):
            raise fail(f"{name} config at {where} has a bad value {key}={short(config[key])}")


def build(name: str, config: dict, where: str, numbers_stored: int, fail):
    """A new ``name`` module built from a checked ``config``, for a file that stores
    ``numbers_stored`` numbers under its path.

    A config whose sizes multiply to more numbers than that is refused before anything is
    allocated (a 1 kB file could otherwise ask for terabytes); the constructor's own errors
    (a ``p`` of 1.5) become ``fail(problem)`` too.
    """
    sizes = [config[key] for key, ok in MODULES[name][1].items() if ok is _is_int]
    if sizes and math.prod(sizes) > numbers_stored:
        raise fail(f"tensors of {where} expected shapes for {name} {short(config)}: at least "
                   f"as many numbers as its sizes multiply to, got {numbers_stored}")
    try:
        return MODULES[name][0](**config)
    except Exception as e:  # InputError from the constructor's checks, MemoryError, ...
        raise fail(f"bad {name} config at {where}: {e}") from None


def layout(module) -> dict[str, TensorSpec]:
    """The tensors a file stores for a module *just built*, by attribute name: its parameters
    (in ``parameters()`` order, which optimizer state follows), then every other array it holds
    (``BatchNorm``'s running statistics). A new module has no forward caches yet, so every
    array it holds is state."""
    specs = {}
    for attr in module._params:
        A = getattr(module, attr).data
        specs[attr] = TensorSpec(A.shape, A.dtype, True)
    for attr, A in vars(module).items():
        if isinstance(A, np.ndarray):
            specs[attr] = TensorSpec(A.shape, A.dtype, False)
    return specs


def layout_for(name: str, config: dict) -> dict[str, TensorSpec]:
    """:func:`layout` of a ``name`` module built from a valid ``config``: what ``save`` checks
    a live module's arrays against."""
    return dict(_layout_for(name, json.dumps(config, sort_keys=True)))


@functools.lru_cache(maxsize=256)
def _layout_for(name: str, config_json: str) -> tuple:
    # Cached: building draws random weights, which a checkpoint written after every epoch
    # would otherwise pay for each time.
    return tuple(layout(MODULES[name][0](**json.loads(config_json))).items())


def array(module, attr: str) -> np.ndarray:
    """The array a module holds under ``attr``: a parameter's ``.data`` or the array itself.

    Read it when needed rather than keeping it: once a ``Sequential`` holds the module, a
    parameter's ``.data`` is a view into the model's weight store.
    """
    A = getattr(module, attr)
    return A.data if isinstance(A, Parameter) else A
