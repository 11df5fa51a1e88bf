"""An optimizer as JSON plus its per-parameter state tensors, and back.

The JSON is ``{"class": "Adam", "hyper": {...}, "t": 12, "state_keys": [["exp_avg",
"exp_avg_sq"], ...]}``, with one list of state names per parameter in ``model.parameters()``
order (or none at all, before the first step); parameter ``i``'s state ``exp_avg`` is the
tensor ``optimizer.state.<i>.exp_avg``, shaped like the parameter. Only the classes in
``chainrule.optimizers.OPTIMIZERS`` are written or read.
"""

from __future__ import annotations

import inspect

import numpy as np

from ..errors import ChainruleError, InputError
from ..optimizers import OPTIMIZERS
from .container import as_tensor
from .jsontext import short
from .registry import TensorSpec

MAX_STEPS = 2**53  # a step count t beyond any run, and still exact as a float
# State names of the optimizers' running sums and averages of squares (Adagrad, RMSprop,
# Adadelta, Adam): numbers ≥ 0.
SQUARES = frozenset({"sum_sq", "square_avg", "acc_delta", "exp_avg_sq"})


def describe(optimizer, params: list) -> tuple[dict, dict[str, np.ndarray]]:
    """``(spec, tensors)`` of an optimizer about to be saved with a model whose parameters are
    ``params``. A callable ``lr`` (a schedule) is stored as None: the user passes it again."""
    name = type(optimizer).__name__
    if OPTIMIZERS.get(name) is not type(optimizer):
        raise ChainruleError(
            f"save can store only chainrule's optimizers ({', '.join(sorted(OPTIMIZERS))}), "
            f"got {type(optimizer).__qualname__}"
        )
    d = optimizer.state_dict(params)  # in the model's order, whatever order it was stepped in
    state = list(d["state"]) if any(d["state"]) else []
    if len(state) not in (0, len(params)):
        raise InputError(
            f"save expected an optimizer with state for the model's {len(params)} parameters, "
            f"got state for {len(state)}"
        )
    tensors, keys = {}, []
    for i, entry in enumerate(state):
        keys.append(sorted(entry))
        for key, value in entry.items():
            tensors[f"optimizer.state.{i}.{key}"] = as_tensor(value, f"optimizer state {key}")
    hyper = {k: None if callable(v) else v for k, v in d["hyper"].items()}
    return {"class": name, "hyper": hyper, "t": int(d["t"]), "state_keys": keys}, tensors


def plan(spec, params: list[TensorSpec], fail) -> dict[str, TensorSpec]:
    """Check an optimizer's JSON read from a file; return the state tensors it names, each
    shaped like its parameter (``params``, in model order). Defects raise ``fail(problem)``."""
    if not isinstance(spec, dict) or set(spec) != {"class", "hyper", "t", "state_keys"}:
        raise fail("metadata 'optimizer' must be an object with exactly 'class', 'hyper', "
                   "'t' and 'state_keys'")
    ok = (isinstance(spec["class"], str) and isinstance(spec["hyper"], dict)
          and type(spec["t"]) is int and 0 <= spec["t"] <= MAX_STEPS
          and isinstance(spec["state_keys"], list)
          and all(type(v) in (int, float, bool) or v is None for v in spec["hyper"].values()))
    if not ok:
        raise fail("metadata 'optimizer' has a value of the wrong type")
    keys = spec["state_keys"]
    if len(keys) not in (0, len(params)):
        raise fail(f"optimizer state for {len(keys)} parameters, the model has {len(params)}")
    expected = {}
    for i, (entry, param) in enumerate(zip(keys, params, strict=False)):
        if not isinstance(entry, list) or not all(type(k) is str and k for k in entry):
            raise fail(f"optimizer state_keys[{i}] must be a list of names")
        for key in entry:
            expected[f"optimizer.state.{i}.{key}"] = TensorSpec(param.shape, param.dtype, False)
    return expected


def check_values(tensors: dict[str, np.ndarray], fail) -> None:
    """Optimizer state that sums or averages squares is never negative: a negative one would
    put the square root of a negative number into the next step."""
    for t, A in tensors.items():
        if (t.startswith("optimizer.state.") and t.rpartition(".")[2] in SQUARES
                and A.size and A.min() < 0):
            raise fail(f"tensor {t!r} expected values ≥ 0 (it accumulates squares), "
                       f"got {A.min():g}")


def build(spec: dict, tensors: dict[str, np.ndarray], fail):
    """The optimizer a checked ``spec`` describes, with its state from the checked ``tensors``;
    its class comes from ``OPTIMIZERS`` only, its hyper-parameters are checked against that
    class's constructor, and its own checks' errors become ``fail(problem)``."""
    cls = OPTIMIZERS.get(spec["class"])
    if cls is None:
        raise fail(f"unknown optimizer class {short(spec['class'])} "
                   f"(known: {', '.join(sorted(OPTIMIZERS))})")
    hyper = spec["hyper"]
    allowed = {p.name for p in inspect.signature(cls).parameters.values()
               if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not set(hyper) <= allowed:
        raise fail(f"{spec['class']} hyper-parameters expected keys among {sorted(allowed)}, "
                   f"got {short(sorted(hyper))}")
    state = [{k: tensors[f"optimizer.state.{i}.{k}"].copy() for k in entry}
             for i, entry in enumerate(spec["state_keys"])]
    try:
        optimizer = cls(**{k: v for k, v in hyper.items() if v is not None})
        optimizer.load_state_dict({"hyper": hyper, "t": spec["t"], "state": state})
    except Exception as e:
        raise fail(f"bad {spec['class']} state: {e}") from None
    return optimizer
