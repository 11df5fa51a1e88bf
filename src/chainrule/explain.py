"""``explain``: one forward and backward pass, laid out as the notes' chain rule, layer by layer.

A *layer* ℓ is a ``Linear`` and the modules after it up to the next ``Linear``
(an activation, maybe ``BatchNorm`` or ``Dropout``). A ``Sequential`` inside the model (as
``chainrule.export.from_torch`` makes) is walked into, in order, its modules' paths being
``modules.0.modules.1``. With ``Aˡ⁻¹`` the layer's input
(notes' Notation 16–17, rows are samples)::

    Zˡ = Aˡ⁻¹ Wˡ + W0ˡ                 Aˡ = fˡ(Zˡ)
    ∂L/∂Zˡ   = ∂L/∂Aˡ · ∂Aˡ/∂Zˡ       (= ∂L/∂Aˡ * f′(Zˡ) for an elementwise f)
    ∂L/∂Wˡ   = Aˡ⁻¹ᵀ ∂L/∂Zˡ            ∂L/∂W0ˡ = Σ_rows ∂L/∂Zˡ
    ∂L/∂Aˡ⁻¹ = ∂L/∂Zˡ Wˡᵀ              which is ∂L/∂A of layer ℓ − 1

With ``layout="notes"`` the same quantities are shown (and kept) in the notes' column form,
one column per sample: ``Zˡ = Wˡᵀ Aˡ⁻¹ + W0ˡ`` with ``Zˡ`` of shape ``(n, K)``,
``∂L/∂Wˡ = Aˡ⁻¹ (∂L/∂Zˡ)ᵀ`` and ``∂L/∂Aˡ⁻¹ = Wˡ ∂L/∂Zˡ``; ``W`` has the same shape in both.

The flags follow the long chain rule of the notes' 6.7.3: back-propagation multiplies
``∂L/∂Zᴸ`` by one factor per layer (``Wᵀ`` and the diagonal ``f′(Z)``) on its way to layer ℓ,
so ``r = ‖∂L/∂Zˡ‖ / ‖∂L/∂Zᴸ‖`` is how far that product has shrunk (``"vanishing"``,
r < ``vanishing_below``) or grown (``"exploding"``, r > ``exploding_above``). Where
``∂L/∂Zᴸ`` is exactly 0 (the loss is flat at this batch's output) nothing flows back to any
layer: r is undefined (NaN; None in ``to_dict()``), no layer is flagged, and the printed walk
says so.

>>> import numpy as np, chainrule as cr
>>> from chainrule.explain import explain
>>> model = cr.Sequential(cr.Linear(4, 8, rng=0), cr.ReLU(), cr.Linear(8, 3, rng=1),
...                       cr.Softmax())
>>> report = explain(model, cr.NLLM(), np.ones((5, 4)), np.arange(5) % 3)
>>> [layer["path"] for layer in report.layers]       # last layer first
['modules.2', 'modules.0']
>>> report.layers[0]["values"]["Z"].shape
(5, 3)
>>> print(report)                                     # doctest: +SKIP
"""

from __future__ import annotations

import copy
import numbers
from dataclasses import dataclass, field

import numpy as np

from ._validate import as_float_matrix, check_same_length
from .errors import InputError
from .layers import Identity, LeakyReLU, Linear, ReLU, Sequential, Sigmoid, Step, Tanh

# r = ‖∂L/∂Zˡ‖ / ‖∂L/∂Zᴸ‖ below this: "vanishing"; above EXPLODING_ABOVE: "exploding". The
# notes' 6.7.3 names the two cases; these thresholds are chainrule's (beyond the notes).
VANISHING_BELOW = 1e-3
EXPLODING_ABOVE = 1e2
ZERO = 1e-6        # f′(z) at or below this passes (numerically) no gradient
PRINTED = 12       # arrays of at most this many numbers are printed in full
ELEMENTWISE = (Identity, Step, ReLU, LeakyReLU, Sigmoid, Tanh)
KEYS = ("A_prev", "Z", "A", "dLdA", "dLdZ", "dLdW", "dLdW0", "dLdA_prev")
LAYOUTS = ("rows", "notes")


@dataclass
class Explanation:
    """What :func:`explain` found, as data and (``str()``) as a readable table.

    Attributes
    ----------
    layers : list of dict, last layer first
        ``"path"`` (the ``Linear``'s path, ``"modules.0"``); ``"shapes"``, ``"norms"`` and
        ``"values"``, dicts keyed ``"A_prev"``, ``"Z"``, ``"A"``, ``"dLdA"``, ``"dLdZ"``,
        ``"dLdW"``, ``"dLdW0"``, ``"dLdA_prev"``: shape tuples, L2 norms and signed copies
        of the arrays (``"values"`` also has ``"dAdZ"``: the diagonal f′(z) as an array of
        Z's shape, or None); ``"dAdZ"`` (``{"mean": ..., "zero_fraction": ...}`` of that
        diagonal when the layer has one elementwise activation, else ``None``), ``"r"``
        (``‖∂L/∂Zˡ‖ / ‖∂L/∂Zᴸ‖``; NaN, undefined, where ``‖∂L/∂Zᴸ‖`` is 0 or not finite)
        and ``"flag"`` (``"vanishing"``, ``"exploding"`` or ``None``; None where r is
        undefined). Shapes and values follow
        ``layout``: ``(K, n)`` for ``"rows"``, the notes' ``(n, K)`` for ``"notes"``.
    loss : float
        The loss of this forward pass.
    n_samples : int
    names : list of str
        Per layer (same order), its modules, e.g. ``"Linear(64, 32) → ReLU"``.
    layout : "rows" or "notes"
    vanishing_below, exploding_above : float
        The thresholds the flags used.
    """

    layers: list[dict] = field(default_factory=list)
    loss: float = float("nan")
    loss_name: str = ""
    n_samples: int = 0
    names: list[str] = field(default_factory=list)
    fused: bool = False
    layout: str = "rows"
    vanishing_below: float = VANISHING_BELOW
    exploding_above: float = EXPLODING_ABOVE

    @property
    def zero_gradient(self) -> bool:
        """Whether the last layer's ``∂L/∂Zᴸ`` is exactly 0: the loss is flat at this batch's
        output, so no gradient reaches any layer and r is undefined."""
        return bool(self.layers) and self.layers[0]["norms"]["dLdZ"] == 0

    def ratio(self, layer: dict, key: str = "dLdW") -> float:
        """``‖keyˡ‖ / ‖keyᴸ‖``: this layer's norm of ``key`` against the last layer's.

        ``ratio(layer, "dLdZ")`` is the r the flags use (the notes' long chain rule, 6.7.3);
        the default compares the weight gradients ``‖∂L/∂Wˡ‖ / ‖∂L/∂Wᴸ‖``.
        """
        ref = self.layers[0]["norms"][key]
        return layer["norms"][key] / ref if ref > 0 else float("nan")

    def summary(self) -> str:
        """One row per layer: r, gradient norms, f′ statistics, flag."""
        head = ("layer", "path", "modules", "‖∂L/∂Z‖", "r = ÷ last", "‖∂L/∂W‖", "mean f′",
                "f′ = 0", "flag")
        rows = [head]
        for number, layer, name in zip(self._numbers(), self.layers, self.names):
            d = layer["dAdZ"]
            r = "undefined" if np.isnan(layer["r"]) else f"{layer['r']:.3g}"
            rows.append((str(number), layer["path"], name, f"{layer['norms']['dLdZ']:.3g}",
                         r, f"{layer['norms']['dLdW']:.3g}",
                         "—" if d is None else f"{d['mean']:.3g}",
                         "—" if d is None else f"{d['zero_fraction']:.0%}",
                         layer["flag"] or ""))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                         for r in rows)

    def _numbers(self) -> list[int]:
        return list(range(len(self.layers), 0, -1))

    def __str__(self) -> str:
        form = ("one column per sample (the notes' layout)" if self.layout == "notes"
                else "one row per sample")
        lines = [f"explain: {self.loss_name} loss {self.loss:.6g} on {self.n_samples} samples; "
                 "the chain rule from the loss back to layer 1 (notes' Notation 16–17)",
                 f"{form}; shapes (rows, columns); ‖·‖ the L2 (Frobenius) norm; values "
                 f"shown for arrays of at most {PRINTED} numbers", ""]
        if self.zero_gradient:
            lines[-1:-1] = [
                "‖∂L/∂Zᴸ‖ = 0: the last layer's gradient is exactly zero on this batch (the "
                "loss is flat at this output), so no gradient flows back to any layer; r is "
                "undefined and no layer is flagged"]
        elif self.layers and np.isnan(self.layers[0]["r"]):
            lines[-1:-1] = [f"‖∂L/∂Zᴸ‖ = {self.layers[0]['norms']['dLdZ']:g}: r is undefined "
                            "and no layer is flagged"]
        for number, layer, name in zip(self._numbers(), self.layers, self.names):
            lines += [f"layer {number} ({layer['path']}: {name})"]
            limit = (f"below {self.vanishing_below:g}" if layer["flag"] == "vanishing" else
                     f"above {self.exploding_above:g}")
            lines += _walk(number, layer, self.fused and number == len(self.layers),
                           self.layout, limit)
            lines.append("")
        lines += [f"summary (r = ‖∂L/∂Zˡ‖ / ‖∂L/∂Zᴸ‖; flag: vanishing where r < "
                  f"{self.vanishing_below:g}, exploding where r > {self.exploding_above:g})",
                  self.summary()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Plain data (lists for shapes and values) for strict JSON: every number that is not
        finite (an undefined r, a NaN or inf loss, norm or value) is None, so
        ``json.dumps(explanation.to_dict(), allow_nan=False)`` always works."""
        return _plain({"loss": self.loss, "loss_name": self.loss_name,
                       "n_samples": self.n_samples, "layout": self.layout,
                       "zero_gradient": self.zero_gradient,
                       "layers": [{**layer, "name": name} for layer, name in
                                  zip(self.layers, self.names)]})


def _plain(x):
    """``x`` as JSON's types: dicts, lists, str, bool, int, finite float, None for the rest."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            return np.where(np.isfinite(x), x, None).tolist()
        return x.tolist()
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, numbers.Real):
        return float(x) if np.isfinite(x) else None
    return x


def _sup(n: int | str) -> str:
    return str(n).translate(str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻"))


def formulas(n: int, fused: bool = False, layout: str = "rows") -> dict[str, str]:
    """Each quantity of layer ``n`` as the formula that computes it, e.g. for ``n = 2``
    ``{"dLdW": "∂L/∂W² = A¹ᵀ ∂L/∂Z²", ...}`` (keys: ``KEYS`` and ``"dAdZ"``); with
    ``layout="notes"`` the notes' column form, ``"∂L/∂W² = A¹ (∂L/∂Z²)ᵀ"``."""
    p, q = _sup(n - 1), _sup(n)
    fuse = "  (fused: (A − Y)/n)" if fused else ""
    if layout == "notes":
        return {
            "A_prev": f"A{p}  (layer input)",
            "Z": f"Z{q} = W{q}ᵀ A{p} + W0{q}",
            "A": f"A{q} = f(Z{q})",
            "dLdA": f"∂L/∂A{q}",
            "dAdZ": f"∂A{q}/∂Z{q}",
            "dLdZ": f"∂L/∂Z{q} = ∂A{q}/∂Z{q} · ∂L/∂A{q}" + fuse,
            "dLdW": f"∂L/∂W{q} = A{p} (∂L/∂Z{q})ᵀ",
            "dLdW0": f"∂L/∂W0{q} = Σ_columns ∂L/∂Z{q}",
            "dLdA_prev": f"∂L/∂A{p} = W{q} ∂L/∂Z{q}",
        }
    return {
        "A_prev": f"A{p}  (layer input)",
        "Z": f"Z{q} = A{p} W{q} + W0{q}",
        "A": f"A{q} = f(Z{q})",
        "dLdA": f"∂L/∂A{q}",
        "dAdZ": f"∂A{q}/∂Z{q}",
        "dLdZ": f"∂L/∂Z{q} = ∂L/∂A{q} · ∂A{q}/∂Z{q}" + fuse,
        "dLdW": f"∂L/∂W{q} = A{p}ᵀ ∂L/∂Z{q}",
        "dLdW0": f"∂L/∂W0{q} = Σ_rows ∂L/∂Z{q}",
        "dLdA_prev": f"∂L/∂A{p} = ∂L/∂Z{q} W{q}ᵀ",
    }


def describe_diagonal(d: dict | None) -> str:
    """The ``"dAdZ"`` entry in words."""
    if d is None:
        return "not one elementwise activation: no diagonal"
    return f"diag f′(z): mean {d['mean']:.3g}, {d['zero_fraction']:.0%} zeros"


def show(A: np.ndarray | None) -> str:
    """``A``'s signed values when it has at most ``PRINTED`` numbers (``"value -0.5188"``, or
    ``"values [[...], ...]"`` row by row), else ``""``."""
    if A is None or A.size > PRINTED:
        return ""
    if A.size == 1:
        return f"value {A.item():.4g}"
    return "values [" + ", ".join("[" + ", ".join(f"{v:.4g}" for v in row) + "]"
                                  for row in np.asarray(A, np.float64)) + "]"


def _walk(n: int, layer: dict, fused: bool, layout: str, limit: str) -> list[str]:
    """The rows of one layer's block: each quantity, its formula, shape, norm and values."""
    text = formulas(n, fused, layout)
    width = max(len(f) for f in text.values()) + 2
    values = layer["values"]
    rows = []
    for key in KEYS:
        printed = show(values[key])
        rows.append(f"  {text[key]:<{width}}{str(layer['shapes'][key]):<12}"
                    f"‖·‖ = {layer['norms'][key]:<9.4g}  {printed}".rstrip())
        if key == "dLdA":
            printed = show(values["dAdZ"])
            rows.append(f"  {text['dAdZ']:<{width}}{describe_diagonal(layer['dAdZ'])}"
                        + (f"; f′(z): {printed}" if printed else ""))
    if layer["flag"]:
        rows.append(f"  !! {layer['flag']} gradient: r = ‖∂L/∂Z{_sup(n)}‖ / ‖∂L/∂Zᴸ‖ = "
                    f"{layer['r']:.3g}, {limit}")
    return rows


def _is_linear(module) -> bool:
    return isinstance(module, Linear)


def _norm(A: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(A, dtype=np.float64)))


def _name(module) -> str:
    text = repr(module)
    return text if len(text) <= 24 else type(module).__name__


def _threshold(name: str, value) -> float:
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and 0 < value < np.inf):
        raise InputError(f"explain expected {name} to be a positive finite number, "
                         f"got {value!r}")
    return float(value)


def explain(model, loss, X, Y, *, layout: str = "rows", vanishing_below: float = VANISHING_BELOW,
            exploding_above: float = EXPLODING_ABOVE) -> Explanation:
    """Run one forward and backward pass of ``model`` on ``(X, Y)`` and report each layer.

    The pass runs on a deep copy in the model's current mode (training mode uses dropout
    masks and batch statistics, as ``fit`` would), so the model's weights, gradients, mode,
    running statistics and random generators are left as they were.

    Parameters
    ----------
    model : Sequential with at least one ``Linear``
    loss : a chainrule loss (``SquareLoss()``, ``NLL()``, ``NLLM()``, ...)
    X : array (n_samples, n_features); Y : targets as the loss accepts them
    layout : {"rows", "notes"}, default "rows"
        ``"rows"``: chainrule's layout, one row per sample (``Z = A W + W0``, ``Z`` of shape
        ``(K, n)``). ``"notes"``: the notes' column form (``Z = Wᵀ A + W0``, ``(n, K)``),
        in the printed walk and in ``shapes`` and ``values`` (every array but ``dLdW``
        transposed).
    vanishing_below, exploding_above : float, defaults 1e-3 and 1e2
        Thresholds on r = ‖∂L/∂Zˡ‖ / ‖∂L/∂Zᴸ‖, how much the chain of ∂L/∂Z has shrunk or
        grown from the last layer L back to layer ℓ (the notes' long chain rule, 6.7.3).

    Returns
    -------
    Explanation
        ``.layers`` (last layer first) holds the shapes, norms and signed values of
        ``A_prev``, ``Z``, ``A``, ``dLdA``, ``dLdZ``, ``dLdW``, ``dLdW0``, ``dLdA_prev``, the
        diagonal ``dAdZ`` and a ``flag`` (``"vanishing"`` where r < ``vanishing_below``,
        ``"exploding"`` where r > ``exploding_above``). ``print(explanation)`` shows the walk.
    """
    modules = getattr(model, "modules", None)
    if modules is None or not any(_is_linear(m) for _, m, _ in _flatten(model)):
        raise InputError("explain expected a Sequential with at least one Linear layer, got "
                         f"{type(model).__name__}")
    if layout not in LAYOUTS:
        raise InputError(f"explain expected layout in {list(LAYOUTS)}, got {layout!r}")
    vanishing_below = _threshold("vanishing_below", vanishing_below)
    exploding_above = _threshold("exploding_above", exploding_above)
    if vanishing_below >= exploding_above:
        raise InputError(f"explain expected vanishing_below < exploding_above, got "
                         f"{vanishing_below!r} and {exploding_above!r}")
    X = as_float_matrix(X, "X", "explain", getattr(model, "dtype", None))
    Y = np.asarray(Y)
    check_same_length(X, Y, "explain")
    model, loss = copy.deepcopy(model), copy.deepcopy(loss)
    flat = _flatten(model)
    paths, modules = [p for p, _, _ in flat], [m for _, m, _ in flat]
    starts = [i for i, m in enumerate(modules) if _is_linear(m)]

    outs, grads, value, fused = _passes(flat, model.modules[-1], loss, X, Y)
    layers, names = _layers(modules, paths, starts, outs, grads, layout)
    _flag(layers, vanishing_below, exploding_above)
    return Explanation(layers=layers, loss=float(value), loss_name=type(loss).__name__,
                       n_samples=len(X), names=names, fused=fused, layout=layout,
                       vanishing_below=vanishing_below, exploding_above=exploding_above)


def _flatten(model, prefix: str = "") -> list[tuple[str, object, np.dtype | None]]:
    """``[(path, module, dtype)]``: the modules of ``model`` in the order they run, a
    ``Sequential`` inside it walked into (paths ``"modules.0.modules.1"``); ``dtype`` is what
    an inner Sequential casts its input to before this, its first module (else None)."""
    flat = []
    for i, module in enumerate(model.modules):
        path = f"{prefix}modules.{i}"
        if isinstance(module, Sequential) and module.modules:
            inner = _flatten(module, path + ".")
            inner[0] = (*inner[0][:2], inner[0][2] or module.dtype)
            flat += inner
        elif not isinstance(module, Sequential):
            flat.append((path, module, None))
    return flat


def _passes(flat: list, last, loss, X: np.ndarray, Y):
    """One forward and backward pass that keeps every module boundary's array and gradient:
    ``(outs, grads, loss value, fused)``, with ``outs[i]`` module i's input, ``outs[i + 1]``
    its output and ``grads[i] = ∂L/∂outs[i]``. ``last`` is the model's own last module: the
    loss's gradient is fused with it as ``backward_from`` would."""
    modules = [m for _, m, _ in flat]
    outs = [X]
    for _, module, dtype in flat:
        A = outs[-1]
        if dtype is not None and A.dtype != dtype:  # as the inner Sequential's forward does
            A = outs[-1] = A.astype(dtype)
        outs.append(module(A))
    value = loss(outs[-1], Y)

    # Backward, keeping the gradient at every module boundary: grads[i] = ∂L/∂outs[i].
    grads: list = [None] * (len(modules) + 1)
    grads[-1] = loss.backward()
    fused = getattr(loss, "fused_backward", None) is not None and isinstance(
        last, loss.fuses_with)
    if fused:  # ∂L/∂Zᴸ = (Aᴸ − Y)/n computed directly, skipping the output activation
        grads[-2] = loss.fused_backward()
        todo = range(len(modules) - 2, -1, -1)
    else:
        todo = range(len(modules) - 1, -1, -1)
    for i in todo:
        grads[i] = modules[i].backward(grads[i + 1])

    return outs, grads, value, fused


def _layers(modules: list, paths: list[str], starts: list[int], outs: list, grads: list,
            layout: str):
    """Per layer (a Linear and the modules up to the next), last layer first: the dict of
    ``Explanation.layers`` without its flag, and the layer's name."""
    layers, names = [], []
    ends = [*starts[1:], len(modules)]
    for s, e in zip(starts, ends):
        linear = modules[s]
        arrays = {"A_prev": outs[s], "Z": outs[s + 1], "A": outs[e], "dLdA": grads[e],
                  "dLdZ": grads[s + 1], "dLdW": linear.W.grad, "dLdW0": linear.W0.grad,
                  "dLdA_prev": grads[s]}
        diagonal = _diagonal(modules[s + 1:e], outs[s + 1])
        values = {k: np.array(v) for k, v in arrays.items()}  # copies: grads are reused
        values["dAdZ"] = diagonal
        if layout == "notes":  # one column per sample; W keeps its (m, n) shape
            values = {k: v if k == "dLdW" or v is None else v.T for k, v in values.items()}
        layers.append({
            "path": paths[s],
            "shapes": {k: tuple(int(d) for d in values[k].shape) for k in KEYS},
            "norms": {k: _norm(values[k]) for k in KEYS},
            "values": values,
            "dAdZ": None if diagonal is None else {
                "mean": float(diagonal.mean()),
                "zero_fraction": float(np.mean(np.abs(diagonal) <= ZERO))},
            "flag": None,
        })
        names.append(" → ".join(_name(m) for m in modules[s:e]))
    layers.reverse()
    names.reverse()
    return layers, names


def _flag(layers: list[dict], vanishing_below: float, exploding_above: float) -> None:
    """Give each layer its r = ‖∂L/∂Zˡ‖ / ‖∂L/∂Zᴸ‖ (key ``"r"``) and flag it where r is below
    ``vanishing_below`` or above ``exploding_above``: the product of the chain rule's
    factors from layer L back to layer ℓ has shrunk or grown that much."""
    ref = layers[0]["norms"]["dLdZ"]
    defined = 0 < ref < np.inf  # ∂L/∂Zᴸ = 0: nothing flows back, nothing to compare with
    for layer in layers:
        r = layer["norms"]["dLdZ"] / ref if defined else float("nan")
        layer["r"] = r
        layer["flag"] = ("vanishing" if r < vanishing_below else
                         "exploding" if r > exploding_above else None)


def _diagonal(after: list, Z: np.ndarray) -> np.ndarray | None:
    """The diagonal f′(Z) (an array of Z's shape) when ``after`` is one elementwise
    activation, else None.

    f′(Z) is the activation's own backward applied to ones (its cache is this pass's), so it
    is exactly the diagonal back-propagation multiplies by. A ``Dropout`` after the activation
    keeps the Jacobian diagonal and is allowed; its mask is not part of f′.
    """
    acts = [m for m in after if isinstance(m, ELEMENTWISE)]
    others = [m for m in after if not isinstance(m, ELEMENTWISE)
              and type(m).__name__ != "Dropout"]
    if len(acts) != 1 or others or after[0] is not acts[0]:
        return None
    return np.array(acts[0].backward(np.ones_like(Z)))
