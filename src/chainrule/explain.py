"""``explain``: one forward and backward pass, laid out as the notes' chain rule, layer by layer.

A *layer* ℓ is a ``Linear`` and the modules after it up to the next ``Linear``
(an activation, maybe ``BatchNorm`` or ``Dropout``). With ``Aˡ⁻¹`` the layer's input
(notes' Notation 16–17, rows are samples)::

    Zˡ = Aˡ⁻¹ Wˡ + W0ˡ                 Aˡ = fˡ(Zˡ)
    ∂L/∂Zˡ   = ∂L/∂Aˡ · ∂Aˡ/∂Zˡ       (= ∂L/∂Aˡ * f′(Zˡ) for an elementwise f)
    ∂L/∂Wˡ   = Aˡ⁻¹ᵀ ∂L/∂Zˡ            ∂L/∂W0ˡ = Σ_rows ∂L/∂Zˡ
    ∂L/∂Aˡ⁻¹ = ∂L/∂Zˡ Wˡᵀ              which is ∂L/∂A of layer ℓ − 1

>>> import numpy as np, chainrule as cr
>>> from chainrule.explain import explain
>>> model = cr.Sequential(cr.Linear(4, 8, rng=0), cr.ReLU(), cr.Linear(8, 3, rng=1),
...                       cr.Softmax())
>>> report = explain(model, cr.NLLM(), np.ones((5, 4)), np.arange(5) % 3)
>>> [layer["path"] for layer in report.layers]       # last layer first
['modules.2', 'modules.0']
>>> print(report)                                     # doctest: +SKIP
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from ._validate import as_float_matrix, check_same_length
from .errors import InputError
from .layers import Identity, LeakyReLU, Linear, ReLU, Sigmoid, Step, Tanh

VANISHING = 1e-6   # ‖∂L/∂Wˡ‖ below this times the last layer's: flagged "vanishing"
EXPLODING = 1e3    # above this times the last layer's: flagged "exploding"
ZERO = 1e-6        # f′(z) at or below this passes (numerically) no gradient
ELEMENTWISE = (Identity, Step, ReLU, LeakyReLU, Sigmoid, Tanh)
KEYS = ("A_prev", "Z", "A", "dLdA", "dLdZ", "dLdW", "dLdW0", "dLdA_prev")


@dataclass
class Explanation:
    """What :func:`explain` found, as data and (``str()``) as a readable table.

    Attributes
    ----------
    layers : list of dict, last layer first
        ``"path"`` (the ``Linear``'s path, ``"modules.0"``), ``"shapes"`` and ``"norms"``
        (dicts keyed ``"A_prev"``, ``"Z"``, ``"A"``, ``"dLdA"``, ``"dLdZ"``, ``"dLdW"``,
        ``"dLdW0"``, ``"dLdA_prev"``: shape tuples and L2 norms), ``"dAdZ"``
        (``{"mean": ..., "zero_fraction": ...}`` of the diagonal f′(z) when the layer has one
        elementwise activation, else ``None``) and ``"flag"`` (``"vanishing"``,
        ``"exploding"`` or ``None``).
    loss : float
        The loss of this forward pass.
    n_samples : int
    names : list of str
        Per layer (same order), its modules, e.g. ``"Linear(64, 32) → ReLU"``.
    """

    layers: list[dict] = field(default_factory=list)
    loss: float = float("nan")
    loss_name: str = ""
    n_samples: int = 0
    names: list[str] = field(default_factory=list)
    fused: bool = False

    def ratio(self, layer: dict) -> float:
        """``‖∂L/∂Wˡ‖ / ‖∂L/∂Wᴸ‖``: this layer's weight gradient against the last layer's."""
        ref = self.layers[0]["norms"]["dLdW"]
        return layer["norms"]["dLdW"] / ref if ref > 0 else float("nan")

    def summary(self) -> str:
        """One row per layer: gradient norm, ratio to the last layer, f′ statistics, flag."""
        head = ("layer", "path", "modules", "‖∂L/∂W‖", "÷ last", "mean f′", "f′ = 0", "flag")
        rows = [head]
        for number, layer, name in zip(self._numbers(), self.layers, self.names):
            d = layer["dAdZ"]
            rows.append((str(number), layer["path"], name, f"{layer['norms']['dLdW']:.2e}",
                         f"{self.ratio(layer):.1e}",
                         "—" if d is None else f"{d['mean']:.3g}",
                         "—" if d is None else f"{d['zero_fraction']:.0%}",
                         layer["flag"] or ""))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                         for r in rows)

    def _numbers(self) -> list[int]:
        return list(range(len(self.layers), 0, -1))

    def __str__(self) -> str:
        lines = [f"explain: {self.loss_name} loss {self.loss:.6g} on {self.n_samples} samples; "
                 "the chain rule from the loss back to layer 1 (notes' Notation 16–17)",
                 "shapes are (rows, columns); ‖·‖ is the L2 (Frobenius) norm", ""]
        for number, layer, name in zip(self._numbers(), self.layers, self.names):
            lines += [f"layer {number} ({layer['path']}: {name})"]
            lines += _walk(number, layer, self.fused and number == len(self.layers))
            lines.append("")
        lines += ["summary (flag: ‖∂L/∂W‖ below 1e-6 or above 1e3 times the last layer's)",
                  self.summary()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Plain data (lists for shapes), e.g. for JSON."""
        return {"loss": self.loss, "loss_name": self.loss_name, "n_samples": self.n_samples,
                "layers": [{**layer, "name": name,
                            "shapes": {k: list(v) for k, v in layer["shapes"].items()}}
                           for layer, name in zip(self.layers, self.names)]}


def _sup(n: int | str) -> str:
    return str(n).translate(str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻"))


def formulas(n: int, fused: bool = False) -> dict[str, str]:
    """Each quantity of layer ``n`` as the formula that computes it, e.g. for ``n = 2``
    ``{"dLdW": "∂L/∂W² = A¹ᵀ ∂L/∂Z²", ...}`` (keys: ``KEYS`` and ``"dAdZ"``)."""
    p, q = _sup(n - 1), _sup(n)
    return {
        "A_prev": f"A{p}  (layer input)",
        "Z": f"Z{q} = A{p} W{q} + W0{q}",
        "A": f"A{q} = f(Z{q})",
        "dLdA": f"∂L/∂A{q}",
        "dAdZ": f"∂A{q}/∂Z{q}",
        "dLdZ": f"∂L/∂Z{q} = ∂L/∂A{q} · ∂A{q}/∂Z{q}" + ("  (fused: (A − Y)/n)" if fused else ""),
        "dLdW": f"∂L/∂W{q} = A{p}ᵀ ∂L/∂Z{q}",
        "dLdW0": f"∂L/∂W0{q} = Σ_rows ∂L/∂Z{q}",
        "dLdA_prev": f"∂L/∂A{p} = ∂L/∂Z{q} W{q}ᵀ",
    }


def describe_diagonal(d: dict | None) -> str:
    """The ``"dAdZ"`` entry in words."""
    if d is None:
        return "not one elementwise activation: no diagonal"
    return f"diag f′(z): mean {d['mean']:.3g}, {d['zero_fraction']:.0%} zeros"


def _walk(n: int, layer: dict, fused: bool) -> list[str]:
    """The rows of one layer's block: each quantity, its formula, shape and norm."""
    text = formulas(n, fused)
    width = max(len(f) for f in text.values()) + 2
    rows = []
    for key in KEYS:
        rows.append(f"  {text[key]:<{width}}{str(layer['shapes'][key]):<12}"
                    f"‖·‖ = {layer['norms'][key]:.3e}")
        if key == "dLdA":
            rows.append(f"  {text['dAdZ']:<{width}}{describe_diagonal(layer['dAdZ'])}")
    if layer["flag"]:
        rows.append(f"  !! {layer['flag']} gradient: ‖∂L/∂W{_sup(n)}‖ is "
                    f"{'far below' if layer['flag'] == 'vanishing' else 'far above'} "
                    "the last layer's")
    return rows


def _is_linear(module) -> bool:
    return isinstance(module, Linear)


def _norm(A: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(A, dtype=np.float64)))


def _name(module) -> str:
    text = repr(module)
    return text if len(text) <= 24 else type(module).__name__


def explain(model, loss, X, Y) -> Explanation:
    """Run one forward and backward pass of ``model`` on ``(X, Y)`` and report each layer.

    The pass runs on a deep copy in the model's current mode (training mode uses dropout
    masks and batch statistics, as ``fit`` would), so the model's weights, gradients, mode,
    running statistics and random generators are left as they were.

    Parameters
    ----------
    model : Sequential with at least one ``Linear``
    loss : a chainrule loss (``SquareLoss()``, ``NLL()``, ``NLLM()``, ...)
    X : array (n_samples, n_features); Y : targets as the loss accepts them

    Returns
    -------
    Explanation
        ``.layers`` (last layer first) holds shapes and norms of ``A_prev``, ``Z``, ``A``,
        ``dLdA``, ``dLdZ``, ``dLdW``, ``dLdW0``, ``dLdA_prev``, the diagonal ``dAdZ`` and a
        ``flag`` where ‖∂L/∂Wˡ‖ is < 1e-6 (``"vanishing"``) or > 1e3 (``"exploding"``) times
        the last layer's. ``print(explanation)`` shows the walk as a table.
    """
    modules = getattr(model, "modules", None)
    if modules is None or not any(_is_linear(m) for m in modules):
        raise InputError("explain expected a Sequential with at least one Linear layer, got "
                         f"{type(model).__name__}")
    X = as_float_matrix(X, "X", "explain", getattr(model, "dtype", None))
    Y = np.asarray(Y)
    check_same_length(X, Y, "explain")
    model, loss = copy.deepcopy(model), copy.deepcopy(loss)
    modules = model.modules
    starts = [i for i, m in enumerate(modules) if _is_linear(m)]

    outs, grads, value, fused = _passes(modules, loss, X, Y)
    layers, names = _layers(modules, starts, outs, grads)
    _flag(layers)
    return Explanation(layers=layers, loss=float(value), loss_name=type(loss).__name__,
                       n_samples=len(X), names=names, fused=fused)

def _passes(modules: list, loss, X: np.ndarray, Y):
    """One forward and backward pass that keeps every module boundary's array and gradient:
    ``(outs, grads, loss value, fused)``, with ``outs[i]`` module i's input, ``outs[i + 1]``
    its output and ``grads[i] = ∂L/∂outs[i]``."""
    outs = [X]
    for module in modules:
        outs.append(module(outs[-1]))
    value = loss(outs[-1], Y)

    # Backward, keeping the gradient at every module boundary: grads[i] = ∂L/∂outs[i].
    grads: list = [None] * (len(modules) + 1)
    grads[-1] = loss.backward()
    last = modules[-1]
    fused = getattr(loss, "fused_backward", None) is not None and isinstance(
        last, loss.fuses_with)
    if fused:  # notes' Concept 19: ∂L/∂Zᴸ = (Aᴸ − Y)/n skips the output activation
        grads[-2] = loss.fused_backward()
        todo = range(len(modules) - 2, -1, -1)
    else:
        todo = range(len(modules) - 1, -1, -1)
    for i in todo:
        grads[i] = modules[i].backward(grads[i + 1])

    return outs, grads, value, fused


def _layers(modules: list, starts: list[int], outs: list, grads: list):
    """Per layer (a Linear and the modules up to the next), last layer first: the dict of
    ``Explanation.layers`` without its flag, and the layer's name."""
    layers, names = [], []
    ends = [*starts[1:], len(modules)]
    for s, e in zip(starts, ends):
        linear = modules[s]
        arrays = {"A_prev": outs[s], "Z": outs[s + 1], "A": outs[e], "dLdA": grads[e],
                  "dLdZ": grads[s + 1], "dLdW": linear.W.grad, "dLdW0": linear.W0.grad,
                  "dLdA_prev": grads[s]}
        layers.append({
            "path": f"modules.{s}",
            "shapes": {k: tuple(int(d) for d in np.shape(v)) for k, v in arrays.items()},
            "norms": {k: _norm(v) for k, v in arrays.items()},
            "dAdZ": _diagonal(modules[s + 1:e], outs[s + 1]),
            "flag": None,
        })
        names.append(" → ".join(_name(m) for m in modules[s:e]))
    layers.reverse()
    names.reverse()
    return layers, names


def _flag(layers: list[dict]) -> None:
    """Flag each layer whose ‖∂L/∂W‖ is far below or above the last layer's."""
    ref = layers[0]["norms"]["dLdW"]
    for layer in layers[1:]:
        if ref > 0:
            norm = layer["norms"]["dLdW"]
            layer["flag"] = ("vanishing" if norm < VANISHING * ref else
                             "exploding" if norm > EXPLODING * ref else None)



def _diagonal(after: list, Z: np.ndarray) -> dict | None:
    """``{"mean", "zero_fraction"}`` of f′(Z) when ``after`` is one elementwise activation.

    f′(Z) is the activation's own backward applied to ones (its cache is this pass's), so it
    is exactly the diagonal back-propagation multiplies by. A ``Dropout`` after the activation
    keeps the Jacobian diagonal and is allowed; its mask is not part of f′.
    """
    acts = [m for m in after if isinstance(m, ELEMENTWISE)]
    others = [m for m in after if not isinstance(m, ELEMENTWISE)
              and type(m).__name__ != "Dropout"]
    if len(acts) != 1 or others or after[0] is not acts[0]:
        return None
    d = np.asarray(acts[0].backward(np.ones_like(Z)), dtype=np.float64)
    return {"mean": float(d.mean()), "zero_fraction": float(np.mean(np.abs(d) <= ZERO))}
