"""``check_module``: everything a module must do, checked, with problems told in sentences.

For a student's (or anyone's) module written against the protocol of :mod:`chainrule.module`,
``check_module(module, X)`` checks, in this order, on copies (the module is left as it was):

1. the protocol: ``forward``, ``backward``, ``parameters``, ``train``, ``eval``, calling it;
2. ``forward``: a 2-D array with one row per row of ``X``, in the module's dtype (that of its
   parameters; without parameters, the input's), for float32 and float64 input;
3. ``backward``: ``dL/dX`` of ``X``'s shape and the module's dtype, every ``.grad`` of its
   parameter's shape and dtype, all finite;
4. that ``backward`` *overwrites* each ``.grad`` (a second forward and backward on the same
   batch gives the same gradient, not twice it);
5. finite differences, in float64, of ``L = Σ dLdA ∘ module(X)`` with respect to ``X`` and to
   every parameter entry: ``(L(w + ε) − L(w − ε)) / 2ε`` against ``backward``'s gradients;
   again with a second ``dLdA`` where the first makes a square gradient symmetric (its
   transpose would pass unseen). Random sources the module holds (Generators, RandomStates)
   are put back before every forward, so a dropout mask stays the same.

A gradient that fails 5 is compared with the usual mistakes (its transpose, a factor of K =
the number of rows, the wrong sign, ``dLdZ @ W`` for ``dLdZ @ W.T``) so that the sentence can
name the likely one.
``check_loss(loss, A, Y)`` does the same for a loss (``loss(A, Y)`` and ``loss.backward()``).
Finite differences are the library's tool (``gradcheck``), beyond the notes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from ._rng import as_generator
from ._validate import as_float_matrix, is_int
from .errors import InputError
from .gradcheck import OK_BELOW, _numeric, _random_sources, _rel_error, _replayer, _to_float64
from .module import named_parameters

PROTOCOL = ("forward", "backward", "parameters", "train", "eval")
# The default dLdA of a seed s comes from SeedSequence(s, spawn_key=PROBE_KEY), a child stream
# of s, never np.random.default_rng(s) itself: a caller's X drawn from that (the exercises'
# own pattern) would equal dLdA, and Aᵀ dLdA = XᵀX, symmetric, hides a transposed dLdW.
PROBE_KEY = (6390,)
OTHER = {np.dtype(np.float32): np.dtype(np.float64), np.dtype(np.float64): np.dtype(np.float32)}


@dataclass
class CheckReport:
    """What :func:`check_module` (or :func:`check_loss`) found.

    Attributes
    ----------
    name : str
        What was checked, e.g. ``"Linear(3, 2)"``.
    passed : list of str
        The checks that passed, in order.
    problems : list of str
        One sentence per problem found, in order; empty when all is well.
    errors : dict
        Relative finite-difference errors ``‖a − n‖ / max(‖a‖ + ‖n‖, 1e-4)``, keyed
        ``"dLdX"`` and ``"dLd<name>"`` for each parameter (``"dLdW"``).
    """

    name: str = ""
    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    errors: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [f"check of {self.name}: " + ("ok" if self.ok else
                 f"{len(self.problems)} problem{'s' if len(self.problems) > 1 else ''}")]
        lines += [f"  ok    {p}" for p in self.passed]
        lines += [f"  FAIL  {p}" for p in self.problems]
        return "\n".join(lines)


class _Stop(Exception):
    """Raised inside a check when the checks after it cannot run."""


def _call(report: CheckReport, what: str, fn, *args):
    """``fn(*args)``, or a problem saying what it raised (and stop)."""
    try:
        return fn(*args)
    except NotImplementedError as e:
        report.problems.append(f"{what} is not written yet (it raises NotImplementedError"
                               + (f": {e}" if str(e) else "") + ")")
    except Exception as e:  # a student's bug can raise anything: say what and where
        report.problems.append(f"{what} raised {type(e).__name__}: {e}")
    raise _Stop


def _describe(module) -> str:
    try:
        text = repr(module)
    except Exception:
        text = ""
    plain = text and len(text) <= 60 and "\n" not in text and " object at 0x" not in text
    return text if plain else type(module).__name__


def check_module(module, X, *, dLdA=None, rng=0) -> CheckReport:
    """Check ``module``'s protocol, shapes, dtypes and gradients on the batch ``X``.

    Parameters
    ----------
    module : any object written to chainrule's module protocol (see :mod:`chainrule.module`)
    X : array (K, m), the batch to check on (a few rows: finite differences take two
        forwards per entry)
    dLdA : array (K, n), optional
        The gradient of the loss with respect to the module's output that backward gets
        (``L = Σ dLdA ∘ module(X)``); by default drawn from N(0, 1) with ``rng``.
    rng : int, Generator or RandomState
        For the default ``dLdA`` and, where the first ``dLdA`` makes a square gradient
        symmetric (so that its transpose could not be told from it), a second one. An int
        seed ``s`` draws from a child stream of ``s`` (``SeedSequence(s, spawn_key=(6390,))``),
        so ``dLdA`` never equals an ``X`` drawn with ``np.random.default_rng(s)``.

    Returns
    -------
    CheckReport
        ``.ok``, ``.problems`` (sentences), ``.passed``, ``.errors``; ``print(report)``.

    Example
    -------
    >>> import numpy as np, chainrule as cr
    >>> cr.check_module(cr.Linear(3, 2, rng=0), np.ones((4, 3))).ok
    True
    """
    X = as_float_matrix(X, "X", "check_module")
    report = CheckReport(name=_describe(module))
    try:
        _protocol(report, module)
        dtype = _dtype(report, module)
        out = _forward_dtypes(report, module, X, dtype)
        source = _probe_source(rng)
        C = _output_gradient(dLdA, out, source)
        _backward_shapes(report, module, X, dtype, C)
        _overwrites(report, module, X, dtype, C)
        _finite_differences(report, module, X, C, source)
    except _Stop:
        pass
    return report


def _protocol(report: CheckReport, module) -> None:
    missing = [name for name in PROTOCOL if not callable(getattr(module, name, None))]
    if not callable(module):
        missing.append("__call__")
    if missing:
        report.problems.append(
            f"your module has no {', '.join(missing)}: a module needs forward(A), "
            "backward(dLdA), parameters(), train(), eval() and module(A) calling forward "
            "(subclassing chainrule.Module gives all but forward and backward)")
        raise _Stop
    twin = copy.deepcopy(module)
    _call(report, "eval()", twin.eval)
    _call(report, "train()", twin.train)
    params = _call(report, "parameters()", twin.parameters)
    bad = [p for p in params if not (hasattr(p, "data") and hasattr(p, "grad"))]
    if not isinstance(params, (list, tuple)) or bad:
        report.problems.append("parameters() must return a list of chainrule.Parameter (each "
                               f"with .data and .grad), got {params!r}"[:200])
        raise _Stop
    names = ", ".join(getattr(p, "name", "?") for p in params) or "none"
    report.passed.append(f"protocol: forward, backward, parameters ({names}), train, eval")


def _dtype(report: CheckReport, module) -> np.dtype | None:
    """The parameters' dtype (None without parameters); a mix of dtypes is a problem."""
    dtypes = {np.asarray(p.data).dtype for p in module.parameters()}
    if not dtypes:
        return None
    if len(dtypes) > 1:
        report.problems.append(
            "your parameters have different dtypes ("
            + ", ".join(f"{p.name}: {np.asarray(p.data).dtype}" for p in module.parameters())
            + "): make them all with the layer's dtype")
        raise _Stop
    return dtypes.pop()


def _forward_dtypes(report: CheckReport, module, X, dtype) -> np.ndarray:
    """Run forward on float32 and float64 copies of X; return the output for X in the module's
    dtype (float64 for a module without parameters)."""
    main = dtype or np.dtype(np.float64)
    outs = {}
    for dt in (main, OTHER[main]):
        twin = copy.deepcopy(module)
        Xd = X.astype(dt)
        out = _call(report, "forward", twin.forward, Xd)
        if not isinstance(out, np.ndarray):
            report.problems.append(f"your forward returned {type(out).__name__}, expected a "
                                   "NumPy array")
            raise _Stop
        if out.ndim != 2 or out.shape[0] != len(X):
            report.problems.append(
                f"your forward returned shape {out.shape} for {len(X)} samples: rows are "
                f"samples, expected ({len(X)}, n)")
            raise _Stop
        if not np.array_equal(Xd, X.astype(dt)):
            report.problems.append("your forward changed its input in place: compute a new "
                                   "array instead (the caller still needs its A)")
            raise _Stop
        outs[dt] = out
    for dt, out in outs.items():
        want = dtype or dt
        if out.dtype != want:
            why = (f"the dtype of its parameters: cast the input (A.astype({want}))"
                   " and make every array with the parameters' dtype" if dtype is not None
                   else "the input's: make new arrays with dtype=A.dtype")
            report.problems.append(f"for {dt} input your forward returned {out.dtype}, "
                                   f"expected {want}, {why}")
    if not np.isfinite(outs[main]).all():
        report.problems.append("your forward returned NaN or inf on this (finite) input")
        raise _Stop
    if not report.problems:
        report.passed.append(f"forward: {X.shape} -> {outs[main].shape}, "
                             f"{'float32 and float64 kept' if dtype is None else dtype}")
    return outs[main]


def _probe_source(rng) -> np.random.Generator:
    """The Generator the default ``dLdA`` is drawn from (see ``PROBE_KEY``)."""
    if is_int(rng) and rng >= 0:
        return np.random.default_rng(np.random.SeedSequence(int(rng), spawn_key=PROBE_KEY))
    return as_generator(rng)


def _output_gradient(dLdA, out: np.ndarray, source: np.random.Generator) -> np.ndarray:
    if dLdA is None:
        return source.standard_normal(out.shape)
    C = as_float_matrix(dLdA, "dLdA", "check_module")
    if C.shape != out.shape:
        raise InputError(f"check_module expected dLdA of the output's shape {out.shape}, got "
                         f"array of shape {C.shape}")
    return C


def _grads(module) -> list[tuple[str, object]]:
    """``[(name, parameter)]``: ``"dLdW"`` for a parameter named W, ``"dLdW of modules.0.W"``
    inside a container."""
    return [(f"dLd{p.name}" if path == p.name else f"dLd{p.name} of {path}", p)
            for path, p in named_parameters(module)]


def _backward_shapes(report: CheckReport, module, X, dtype, C) -> None:
    twin = copy.deepcopy(module)
    main = dtype or np.dtype(np.float64)
    _call(report, "forward", twin.forward, X.astype(main))
    dLdX = _call(report, "backward", twin.backward, C.astype(main))
    found = []
    if dLdX is None:
        found.append("your backward returned None: it must return the gradient with respect "
                     f"to its input (dL/dX, shape {X.shape})")
    elif not isinstance(dLdX, np.ndarray) or dLdX.shape != X.shape:
        shape = getattr(dLdX, "shape", type(dLdX).__name__)
        hint = ": did you transpose?" if shape == X.shape[::-1] else ""
        found.append(f"your backward returned shape {shape}, expected {X.shape}, the shape of "
                     f"the input{hint}")
    elif dLdX.dtype != main:
        found.append(f"your backward returned {dLdX.dtype}, expected {main}"
                     + (", the dtype of the parameters" if dtype is not None else
                        ", the input's"))
    elif not np.isfinite(dLdX).all():
        found.append("your backward returned NaN or inf")
    for name, p in _grads(twin):
        data = np.asarray(p.data)
        g = p.grad
        if g is None or not hasattr(g, "shape"):
            found.append(f"your {name} (.grad of {p.name}) is {type(g).__name__}, not an array of "
                         f"{p.name}'s shape: backward must set it")
        elif g.shape != data.shape:
            hint = ": did you transpose?" if g.shape == data.shape[::-1] else ""
            found.append(f"your {name} has shape {g.shape}, expected {data.shape} "
                         f"(the shape of {p.name}){hint}")
        elif g.dtype != data.dtype:
            found.append(f"your {name} is {g.dtype} but {p.name} is {data.dtype}: write into "
                         f"{p.name}.grad[...] or make it with {p.name}'s dtype")
        elif not np.isfinite(g).all():
            found.append(f"your {name} has NaN or inf")
    if found:
        report.problems += found
        raise _Stop
    report.passed.append(f"backward: dL/dX {X.shape}"
                         + "".join(f", {name} {np.shape(p.grad)}" for name, p in _grads(twin))
                         + f", {main}")


def _overwrites(report: CheckReport, module, X, dtype, C) -> None:
    twin = copy.deepcopy(module)
    params = _grads(twin)
    if not params:
        return
    main = dtype or np.dtype(np.float64)
    rewind = _replayer(_random_sources(twin))  # each forward draws the same dropout mask
    firsts = []
    for _ in range(2):
        rewind()
        twin.forward(X.astype(main))
        twin.backward(C.astype(main))
        firsts.append([np.array(p.grad, np.float64) for _, p in params])
    once, twice = firsts
    doubled = []
    for (name, _), g1, g2 in zip(params, once, twice):
        scale = max(float(np.abs(g1).max()), 1e-30)
        if np.abs(g1).max() > 0 and np.allclose(g2, 2 * g1, rtol=1e-3, atol=1e-6 * scale):
            doubled.append(name)
        elif not np.allclose(g2, g1, rtol=1e-3, atol=1e-6 * scale):
            report.problems.append(
                f"a second forward and backward on the same batch changed {name}: "
                "backward must overwrite .grad with this batch's gradient")
    if doubled:
        report.problems.append(
            f"your backward adds to .grad ({', '.join(doubled)}: a second backward on the same "
            "batch gave twice the gradient): overwrite it, p.grad[...] = ..., not +=")
    if not report.problems:
        report.passed.append("backward overwrites .grad (the same gradient twice, not twice "
                             "the gradient)")


def _differences(module, X, C) -> tuple[list, dict, list]:
    """Backward's gradients of ``L = Σ C ∘ module(X)`` and their central differences, in
    float64 on a copy: ``([(key, analytic, label)], {key: numeric}, squares)``, squares
    as :func:`_diagnose` takes them."""
    twin = copy.deepcopy(module)
    replay = _replayer(_to_float64(twin))  # each forward draws the same dropout mask
    X64 = np.array(X, dtype=np.float64)

    def L() -> float:
        replay()
        return float(np.sum(C * twin.forward(X64)))

    L()
    dLdX = np.array(twin.backward(C), np.float64)
    analytic = [("dLdX", dLdX, "dL/dX (what backward returns)")]
    analytic += [(name, np.array(p.grad, np.float64), name) for name, p in _grads(twin)]
    numeric = {"dLdX": _numeric(L, X64, 1e-6)}
    for name, p in _grads(twin):
        numeric[name] = _numeric(L, p.data, 1e-6)
    squares = [(p.name, np.array(p.data, np.float64)) for _, p in _grads(twin)
               if np.ndim(p.data) == 2 and p.data.shape == (X.shape[1], X.shape[1])]
    return analytic, numeric, squares


def _blind(n: np.ndarray) -> bool:
    """A square gradient that is (numerically) symmetric: its transpose would pass too."""
    return (n.ndim == 2 and n.shape[0] == n.shape[1] > 1 and bool(np.any(n))
            and _rel_error(n.T, n) < OK_BELOW)


def _finite_differences(report: CheckReport, module, X, C, source) -> None:
    analytic, numeric, squares = _differences(module, X, C)
    again = ""
    if any(_blind(n) for n in numeric.values()):  # redo with a dLdA that shows a transpose
        C2 = source.standard_normal(C.shape)
        analytic, numeric, squares = _differences(module, X, C2)
        again = " (with a second dLdA: the first made a square gradient symmetric)"
    K = len(X)
    bad = []
    for key, a, label in analytic:
        err = report.errors[key] = _rel_error(a, numeric[key])
        if err >= OK_BELOW:
            bad.append(_diagnose(label, a, numeric[key], K, err,
                                 squares if key == "dLdX" else []))
    if bad:
        report.problems += bad
    else:
        worst = max(report.errors.values())
        report.passed.append(f"finite differences of L = Σ dLdA ∘ module(X), float64: "
                             f"{', '.join(report.errors)} agree (max relative error "
                             f"{worst:.1e}){again}")


def _diagnose(label: str, a: np.ndarray, n: np.ndarray, K: int, err: float,
              squares: list = ()) -> str:
    """A sentence naming the likely mistake when ``a`` (backward's) is not ``n`` (finite
    differences).

    ``squares`` are ``(name, W)`` for the module's square weights ``(m, m)``, m the input's
    width: for ``dL/dX``, ``a = D W`` where ``n = D Wᵀ`` (D the gradient at W's output,
    found from ``n``) is the backward that forgot to transpose W.
    """
    head = f"your {label} does not match finite differences (relative error {err:.2g})"
    if not np.any(n) and np.any(a):
        return f"{head}: it should be 0 (the output does not depend on it)"
    if not np.any(a):
        return f"{head}: yours is all zeros; did backward compute it?"
    if a.ndim == 2 and a.shape[0] == a.shape[1] and _rel_error(a.T, n) < OK_BELOW:
        return f"{head}: it is the transpose of the right one; did you transpose?"
    for name, W in squares:
        D = n @ np.linalg.pinv(W.T)  # the gradient at W's output, if n = D Wᵀ
        if _rel_error(D @ W.T, n) < 1e-6 and _rel_error(a, D @ W) < OK_BELOW:
            return (f"{head}: it is ∂L/∂Z {name} where it should be ∂L/∂Z {name}ᵀ: "
                    f"did you forget to transpose {name}?")
    c = float(np.vdot(a, n) / np.vdot(n, n))
    if _rel_error(a, c * n) < 1e-3:
        if abs(c + 1) < 1e-3:
            return f"{head}: it has the wrong sign"
        if K > 1 and abs(c - K) < 1e-3 * K:
            return (f"{head}: it is {K} times too large, and {K} = K, the number of samples: "
                    "missing 1/K? (a mean over the K samples divides its gradient by K too)")
        if K > 1 and abs(c * K - 1) < 1e-3:
            return (f"{head}: it is {K} times too small, and {K} = K, the number of samples: "
                    "a 1/K too many?")
        return f"{head}: it is {c:.3g} times the right one"
    return f"{head}: check the chain rule for it"


def check_loss(loss, A, Y) -> CheckReport:
    """Check a loss: ``loss(A, Y)`` gives a finite number, ``loss.backward()`` an array of
    ``A``'s shape and dtype equal to finite differences of the loss with respect to ``A``.

    ``A`` must be valid outputs for the loss (probabilities for ``NLL``/``NLLM``).
    """
    A = as_float_matrix(A, "A", "check_loss")
    report = CheckReport(name=_describe(loss))
    try:
        missing = [n for n in ("backward",) if not callable(getattr(loss, n, None))]
        if not callable(loss) or missing:
            report.problems.append("your loss needs loss(A, Y) (returning the loss) and "
                                   "backward() (returning dL/dA)")
            raise _Stop
        twin = copy.deepcopy(loss)
        for dt in (np.dtype(np.float32), np.dtype(np.float64)):
            value = _call(report, "the loss", twin, A.astype(dt), Y)
            if not np.isscalar(value) and np.ndim(value) != 0 or not np.isfinite(value):
                report.problems.append(f"your loss returned {value!r}, expected one finite "
                                       "number")
                raise _Stop
            grad = _call(report, "backward", twin.backward)
            if not isinstance(grad, np.ndarray) or grad.shape != A.shape:
                report.problems.append(f"your backward returned shape {np.shape(grad)}, "
                                       f"expected {A.shape}, the shape of A")
                raise _Stop
            if grad.dtype != dt:
                report.problems.append(f"for {dt} A your backward returned {grad.dtype}, "
                                       f"expected {dt}, A's dtype")
        if report.problems:
            raise _Stop
        report.passed.append(f"loss(A, Y) is a number; backward() is {A.shape}, A's dtype")
        A64 = np.array(A, np.float64)
        twin(A64, Y)
        a = np.array(twin.backward(), np.float64)
        n = _numeric(lambda: float(twin(A64, Y)), A64, 1e-6)
        err = report.errors["dLdA"] = _rel_error(a, n)
        if err >= OK_BELOW:
            report.problems.append(_diagnose("dL/dA (what backward returns)", a, n, len(A),
                                             err))
        else:
            report.passed.append(f"finite differences of the loss, float64: dLdA agrees "
                                 f"(relative error {err:.1e})")
    except _Stop:
        pass
    return report
