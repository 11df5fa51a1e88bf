"""How many lines of chainrule's Python a reader has to follow: distinct source lines run.

    python benchmarks/lines_followed.py            # the chainrule on sys.path
    PYTHONPATH=other/src python benchmarks/lines_followed.py

Traces (``sys.settrace``) one ``fit`` epoch of a small MLP with the default Adam, after one
warm-up epoch, and reports, for the whole epoch and for the optimizer step alone (whatever
runs inside the step's entry points: ``ParameterBuffer.propose`` and ``.commit``, or
``Optimizer.step`` in a chainrule without a parameter store), the distinct lines of
``src/chainrule`` that ran, per file, and the whole length of the functions entered
(docstrings included): the first is what a reader must follow, the second what they open.
"""

from __future__ import annotations

import collections
import inspect
import os
import sys

import numpy as np

import chainrule as cr

ROOT = os.path.dirname(cr.__file__)
STEP_ENTRIES = {"propose", "commit", "step"}  # the step's entry points, by function name


def trace(run) -> tuple[dict, dict]:
    """What ``run()`` executed of chainrule, for the whole call and inside the step's entry
    points: per file, the distinct lines run and the functions entered."""
    lines = {"all": collections.defaultdict(set), "step": collections.defaultdict(set)}
    functions = {"all": set(), "step": set()}
    depth = [0]

    def is_entry(code) -> bool:
        return code.co_name in STEP_ENTRIES and os.path.basename(code.co_filename) in (
            "optimizers.py", "buffer.py")

    def local(frame, event, arg):
        if event == "line":
            path = os.path.relpath(frame.f_code.co_filename, ROOT)
            for scope in ("all", "step") if depth[0] else ("all",):
                lines[scope][path].add(frame.f_lineno)
        elif event == "return" and is_entry(frame.f_code):
            depth[0] -= 1
        return local

    def call(frame, event, arg):
        code = frame.f_code
        if not code.co_filename.startswith(ROOT):
            return None
        if is_entry(code):
            depth[0] += 1
        for scope in ("all", "step") if depth[0] else ("all",):
            functions[scope].add(code)
        return local

    sys.settrace(call)
    try:
        run()
    finally:
        sys.settrace(None)
    return lines, functions


def function_lines(codes) -> int:
    """The whole length (def to last line, docstring included) of each function entered."""
    return sum(len(inspect.getsourcelines(code)[0]) for code in codes
               if code.co_name != "<module>")


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 20)).astype(np.float32)
    y = rng.integers(0, 4, 256)
    model = cr.Sequential(cr.Linear(20, 32, rng=0), cr.ReLU(), cr.Linear(32, 4, rng=1),
                          cr.Softmax())
    opt = cr.Adam()
    cr.fit(model, cr.NLLM(), X, y, optimizer=opt, epochs=1, rng=0, progress=False)
    lines, functions = trace(lambda: cr.fit(model, cr.NLLM(), X, y, optimizer=opt, epochs=1,
                                            rng=1, progress=False))
    # what a call without epochs runs (checks of the arguments and data, set-up) is not the
    # epoch's: the epoch's lines are those of a one-epoch call that a zero-epoch call lacks
    setup, _ = trace(lambda: cr.fit(model, cr.NLLM(), X, y, optimizer=opt, epochs=0, rng=1,
                                    progress=False))
    lines["epoch"] = {path: run - setup["all"].get(path, set())
                      for path, run in lines["all"].items()}
    lines["epoch"] = {path: run for path, run in lines["epoch"].items() if run}
    print(f"chainrule at {ROOT}")
    for scope, title in (("all", "one fit call of one epoch"),
                         ("epoch", "one fit epoch (without the call's checks and set-up)"),
                         ("step", "one Adam step inside fit")):
        found = lines[scope]
        opened = (f", in {len(functions[scope])} functions of "
                  f"{function_lines(functions[scope])} lines" if scope in functions else "")
        print(f"\n{title}: {sum(len(v) for v in found.values())} distinct lines run{opened}")
        for path, run in sorted(found.items(), key=lambda kv: -len(kv[1])):
            print(f"  {len(run):4d}  {path}")


if __name__ == "__main__":
    main()
