"""``write_report``: one self-contained HTML page about a training run.

``chainrule train --report run.html`` writes it. The page has the run's settings, the final
metrics, the loss and accuracy curves, the per-layer gradient norms, the ``explain`` table
(the chain rule walked layer by layer on a batch of training rows) and the model. Plots are
embedded as base64 PNG and the styles are inline: the file makes no network request (its
Content-Security-Policy forbids any), so it can be mailed, archived or opened offline.
"""

from __future__ import annotations

import base64
import datetime
import html

import numpy as np

from ._build import OPTIMIZERS, default_lr, standardise, target_scale
from .errors import ChainruleError
from .explain import KEYS, describe_diagonal, explain, formulas
from .layers import Linear
from .serialization import atomic_write_bytes

EXPLAIN_ROWS = 256  # training rows the explain pass uses
SECTIONS = {"summary": "Summary", "metrics": "Final metrics", "settings": "Settings",
            "curves": "Training curves", "gradients": "Gradient norms per layer",
            "explain": "Back-propagation, layer by layer", "model": "Model"}
METRIC_NAMES = {"accuracy": "test accuracy", "r2": "test R²", "mse": "test MSE"}
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 1.5em; color: #1d232b; line-height: 1.45; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 2px solid #d8dee6; padding-bottom: 0.2em; }
nav a { margin-right: 1em; } .muted { color: #5b6573; }
section { margin: 2em 0; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.93em; }
th, td { border: 1px solid #d8dee6; padding: 0.3em 0.7em; text-align: left; }
th { background: #f1f4f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.columns { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }
.metrics { display: flex; gap: 1em; flex-wrap: wrap; }
.metric { background: #f1f4f8; border-radius: 8px; padding: 0.8em 1.2em; }
.metric .value { font-size: 1.8em; font-weight: 600; }
img { max-width: 100%; height: auto; border: 1px solid #e3e7ed; }
tr.vanishing td { background: #fff4d6; } tr.exploding td { background: #ffe0e0; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.92em; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; }
details { margin: 0.4em 0; } summary { cursor: pointer; }
"""


def write_report(path, *, model, loss, data, history, settings: dict, metrics: dict) -> None:
    """Write the HTML report of one training run to ``path`` (atomically).

    Parameters
    ----------
    path : str or os.PathLike
    model : the trained Sequential
    loss : the loss it was trained with
    data : chainrule.datasets.Dataset (X_train, y_train, X_test, y_test, task, classes, name)
    history : the History that ``fit`` returned
    settings : the run's options (``vars(args)`` on the command line)
    metrics : final test metrics, e.g. ``{"accuracy": 0.97}`` or ``{"r2": ..., "mse": ...}``
    """
    body = [_summary(model, loss, data, history), _metrics(metrics),
            _settings(settings, model, data), _curves(history), _gradients(history),
            _explain(model, loss, data), _model(model)]
    title = f"chainrule training report: {data.name}"
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{_e(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class="muted">Written {datetime.datetime.now().strftime("%Y-%m-%d %H:%M")} by
chainrule {_version()}. Every plot and style is inside this file.</p>
<nav>{"".join(f'<a href="#{k}">{v}</a>' for k, v in SECTIONS.items())}</nav>
{"".join(body)}
</body>
</html>
"""
    atomic_write_bytes(path, page.encode("utf-8"))


def _e(value) -> str:
    return html.escape(str(value))


def _version() -> str:
    from . import __version__
    return __version__


def _section(key: str, inner: str) -> str:
    return f'<section id="{key}">\n<h2>{SECTIONS[key]}</h2>\n{inner}\n</section>\n'


def _table(head: list[str], rows: list[list], classes: list[str] | None = None,
           css: str = "") -> str:
    """An HTML table; numbers are right-aligned, every cell escaped."""
    out = [f'<table class="{css}">' if css else "<table>", "<thead><tr>",
           *(f"<th>{_e(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = classes[i] if classes and classes[i] else ""
        out.append(f'<tr class="{cls}">' if cls else "<tr>")
        for cell in row:
            num = isinstance(cell, (int, float, np.number)) and not isinstance(cell, bool)
            out.append(f'<td class="num">{_fmt(cell)}</td>' if num else f"<td>{_e(cell)}</td>")
        out.append("</tr>")
    return "".join(out) + "</tbody></table>"


def _fmt(x) -> str:
    return f"{x:.4g}" if isinstance(x, (float, np.floating)) else str(x)


def _png(fig) -> str:
    from .plotting import figure_bytes
    return base64.b64encode(figure_bytes(fig, "png")).decode("ascii")


def _plot(make, alt: str) -> str:
    """``make()`` as an embedded PNG, or a note when matplotlib is missing."""
    try:
        fig = make()
    except ChainruleError as e:  # no matplotlib: the rest of the report still helps
        return f'<p class="muted">{_e(e)}</p>'
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{_png(fig)}">'


# -- the sections --------------------------------------------------------------------------

def _summary(model, loss, data, history) -> str:
    n_params = sum(int(np.prod(p.data.shape)) for p in model.parameters())
    kind = (f"classification into {len(data.classes)} classes" if data.task == "classification"
            else "regression")
    epochs = history.epochs
    lines = [f"<b>Data</b>: {_e(data.name)}, {kind}; {len(data.y_train)} training rows, "
             f"{len(data.y_test)} test rows, {data.X_train.shape[1]} features.",
             f"<b>Model</b>: {len(model.modules)} modules, {n_params:,} parameters; "
             f"loss {_e(type(loss).__name__)}.",
             f"<b>Training</b>: {epochs} epoch{'s' * (epochs != 1)}; best epoch "
             f"{history.best_epoch} (0-based, lowest "
             f"{'validation' if history.history.get('val_loss') else 'training'} loss)"
             + ("; stopped early" if history.stopped_early else "")
             + ("; interrupted" if history.interrupted else "") + "."]
    return _section("summary", "".join(f"<p>{line}</p>" for line in lines))


def _metrics(metrics: dict) -> str:
    cards = "".join(
        f'<div class="metric"><div class="muted">{_e(METRIC_NAMES.get(k, k))}</div>'
        f'<div class="value">{_fmt(float(v))}</div></div>' for k, v in metrics.items())
    return _section("metrics", f'<div class="metrics">{cards}</div>'
                    '<p class="muted">On the held-out test split.</p>')


def _settings(settings: dict, model, data) -> str:
    used = _values_used(settings, model, data)
    rows = [[k, "—" if v is None else " ".join(map(str, v)) if isinstance(v, list) else v]
            for k, v in sorted(used.items()) if not callable(v)]
    half = -(-len(rows) // 2)  # two tables side by side keep the page short
    tables = "".join(_table(["option", "value"], part) for part in (rows[:half], rows[half:])
                     if part)
    return _section("settings", f'<div class="columns">{tables}</div>')


def _values_used(settings: dict, model, data) -> dict:
    """``settings`` with each None (or 0) that stands for a default replaced by the value used.

    The command line passes None for "the optimizer's own step size", "the activation's
    initialisation" and "the data's task"; the optimizer's signature, the model and the data
    say what those were. Options left None because nothing was asked (``--save``) stay "—".
    """
    used = dict(settings)
    if "task" in used and used["task"] is None:
        used["task"] = data.task
    if "batch_size" in used and used["batch_size"] is None:
        used["batch_size"] = "all rows (batch gradient descent)"
    if used.get("early_stopping", None) == 0:
        used["early_stopping"] = "off"
    if "progress" in used and used["progress"] is None:
        used["progress"] = "when stderr is a terminal"
    if used.get("lr", 0) is None and used.get("optimizer") in OPTIMIZERS:
        used["lr"] = f"{default_lr(used['optimizer']):g} ({used['optimizer']}'s default)"
    if "init" in used and used["init"] is None:
        inits = [m.init for m in getattr(model, "modules", ()) if isinstance(m, Linear)]
        if inits and len(set(inits)) == 1:
            used["init"] = inits[0]
        elif inits and len(set(inits[:-1])) == 1:
            used["init"] = f"{inits[0]} (hidden layers), {inits[-1]} (output layer)"
        elif inits:
            used["init"] = ", ".join(inits)
    if "clip_grad_norm" in used and used["clip_grad_norm"] is None:
        used["clip_grad_norm"] = "off"
    return used


def _curves(history) -> str:
    from .plotting import plot_curves
    keys = [k for k in ("loss", "val_loss", "accuracy", "val_accuracy")
            if history.history.get(k)]
    last = ""
    if keys:
        best = history.best_epoch
        rows = [[k.replace("_", " "), history.history[k][best] if best is not None else "—",
                 history.history[k][-1]] for k in keys]
        last = _table(["figure", f"best epoch ({best})", "last epoch"], rows)
    text = ("<p>Training and validation curves; the star marks the best epoch (lowest "
            "validation loss). A validation curve that turns up while the training curve "
            "keeps falling is overfitting (notes' section 6.8).</p>")
    return _section("curves", text + _plot(lambda: plot_curves(history),
                                           "loss and accuracy per epoch") + last)


def _gradients(history) -> str:
    from .plotting import plot_grad_norms
    text = ("<p>‖∂L/∂Wˡ‖ of each layer, averaged over each epoch's steps, on a log scale. "
            "Curves orders of magnitude below the last layer's mean vanishing gradients "
            "(those layers hardly learn); curves that keep climbing mean exploding ones "
            "(notes' section 6.7.3).</p>")
    return _section("gradients", text + _plot(lambda: plot_grad_norms(history),
                                              "gradient norm per layer and epoch"))


def _explain(model, loss, data) -> str:
    n = min(EXPLAIN_ROWS, len(data.X_train))
    Y = np.asarray(data.y_train[:n])
    note = ""
    if data.task == "regression":  # the command line fits standardised targets
        Y = standardise(Y, *target_scale(data.y_train))
        note = " Targets are standardised, as <code>chainrule train</code> fits them."
    try:
        report = explain(model, loss, data.X_train[:n], Y)
    except ChainruleError as e:
        return _section("explain", f'<p class="muted">explain could not run: {_e(e)}</p>')
    intro = (f"<p>One forward and backward pass on the first {n} training rows (loss "
             f"{report.loss:.4g}), walking the chain rule from the loss back to layer 1 "
             f"(notes' Notation 16–17). The model is left as it was.{note} A row is "
             f"flagged by r = ‖∂L/∂Zˡ‖ / ‖∂L/∂Zᴸ‖, how the long chain rule of 6.7.3 grows or "
             f"shrinks from the last layer back to this one: <b>vanishing</b> where r &lt; "
             f"{report.vanishing_below:g}, <b>exploding</b> where r &gt; "
             f"{report.exploding_above:g}.</p>")
    numbers = range(len(report.layers), 0, -1)
    rows, classes = [], []
    for number, layer, name in zip(numbers, report.layers, report.names):
        d = layer["dAdZ"]
        rows.append([number, layer["path"], name, layer["norms"]["dLdZ"],
                     layer["r"] if np.isfinite(layer["r"]) else "undefined",
                     layer["norms"]["dLdW"], "—" if d is None else d["mean"],
                     "—" if d is None else f"{d['zero_fraction']:.0%}", layer["flag"] or ""])
        classes.append(layer["flag"] or "")
    summary = _table(["layer ℓ", "path", "modules", "‖∂L/∂Zˡ‖", "r", "‖∂L/∂Wˡ‖",
                      "mean f′(z)", "f′(z) = 0", "flag"], rows, classes, css="layers")
    details = []
    for number, layer, name in zip(numbers, report.layers, report.names):
        text = formulas(number, report.fused and number == len(report.layers))
        walk = [[text[k], str(layer["shapes"][k]), layer["norms"][k]] for k in KEYS]
        walk.insert(4, [text["dAdZ"], "", describe_diagonal(layer["dAdZ"])])
        table = _table(["quantity", "shape", "L2 norm"], walk)
        details.append(f"<details><summary>layer {number} ({_e(layer['path'])}: {_e(name)})"
                       f"</summary>{table}</details>")
    text = f"<pre>{_e(str(report))}</pre>"
    return _section("explain", intro + summary + "<h3>Each layer's quantities</h3>"
                    + "".join(details)
                    + f"<details><summary>as printed by <code>print(cr.explain(...))</code>"
                    f"</summary>{text}</details>")


def _model(model) -> str:
    rows = []
    for i, module in enumerate(model.modules):
        params = getattr(module, "parameters", lambda: [])()
        shapes = ", ".join(f"{p.name} {tuple(p.data.shape)}" for p in params)
        rows.append([f"modules.{i}", repr(module), shapes or "—",
                     sum(int(np.prod(p.data.shape)) for p in params)])
    dtype = getattr(model, "dtype", None)
    return _section("model", _table(["path", "module", "parameters", "count"], rows)
                    + f'<p class="muted">Modules in order; dtype {_e(dtype)}.</p>')
