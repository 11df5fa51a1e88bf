"""Plots of training and of what a network learned (needs matplotlib: the "plot" extra).

Every function builds a ``matplotlib.figure.Figure`` directly, without ``pyplot``: no window
ever opens and no global state changes, so they are safe in scripts, tests and servers.
Each returns the figure; with ``path`` it is also written there (the format from the
suffix: ``.png``, ``.svg``, ``.pdf``), atomically. In a notebook, the returned figure shows
itself.

>>> history = cr.fit(model, loss, X, Y, validation_split=0.2)    # doctest: +SKIP
>>> history.plot("curves.png")                                   # doctest: +SKIP
>>> plot_decision_boundary(model, X, y, "boundary.png")          # doctest: +SKIP
"""

from __future__ import annotations

import io
import os

import numpy as np

from .errors import ChainruleError, InputError


def _figure(ncols: int, width: float = 5.0, height: float = 3.8):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ChainruleError("plotting needs matplotlib, which is not installed; install it "
                             "with: pip install 'chainrule[plot]'") from None
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def figure_bytes(fig, fmt: str = "png") -> bytes:
    """``fig`` rendered as ``fmt`` (``"png"``, ``"svg"``, ``"pdf"``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=110)
    return buffer.getvalue()


def save_figure(fig, path) -> None:
    """Write ``fig`` to ``path`` atomically (a temporary file in the same folder, then
    ``os.replace``), so a reader never sees half a file. The suffix gives the format."""
    from .serialization import atomic_write_bytes
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    atomic_write_bytes(path, figure_bytes(fig, fmt))


def _finish(fig, path):
    if path is not None:
        save_figure(fig, path)
    return fig


# -- training curves -----------------------------------------------------------------------

def _mark_best(ax, history, series: list[float]) -> None:
    k = history.best_epoch
    if k is None or k >= len(series):
        return
    ax.axvline(k, color="0.5", linestyle=":", linewidth=1)
    ax.plot([k], [series[k]], marker="*", markersize=13, color="crimson", linestyle="none",
            label=f"best epoch ({k})", zorder=5)


def draw_curves(ax, history, key: str) -> None:
    """Training and validation ``key`` (``"loss"`` or ``"accuracy"``) per epoch on ``ax``."""
    train, val = history.history.get(key, []), history.history.get("val_" + key, [])
    epochs = np.arange(len(train))
    ax.plot(epochs, train, marker=".", label=f"training {key}")
    if val:
        ax.plot(np.arange(len(val)), val, marker=".", label=f"validation {key}")
    _mark_best(ax, history, val or train)
    ax.set_xlabel("epoch (0-based)")
    ax.set_ylabel(key)
    ax.set_title({"loss": "Loss per epoch", "accuracy": "Accuracy per epoch"}.get(key, key))
    ax.grid(alpha=0.3)
    ax.legend()


def _layer_paths(history) -> list[str]:
    """The weight paths (``modules.i.W``) in layer order; every path if there is none."""
    paths = [p for p in history.grad_norms if p.endswith(".W")]
    return paths or list(history.grad_norms)


def draw_grad_norms(ax, history) -> None:
    """‖∂L/∂Wˡ‖ of each layer per epoch, on a log scale (notes' section 6.7.3).

    Layers whose curves sit orders of magnitude below the last layer's are not learning
    (vanishing gradients); curves that climb epoch after epoch are exploding.
    """
    paths = _layer_paths(history)
    positive = False
    for number, path in enumerate(paths, start=1):
        norms = np.asarray(history.grad_norms[path], dtype=float)
        norms = np.where(norms > 0, norms, np.nan)  # a zero has no place on a log scale
        positive = positive or bool(np.isfinite(norms).any())
        label = f"layer {number} ({path})" if path.endswith(".W") else path
        ax.plot(np.arange(len(norms)), norms, marker=".", label=label)
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("epoch (0-based)")
    ax.set_ylabel("‖∂L/∂W‖, mean over the epoch's steps")
    ax.set_title("Gradient norm per layer (log scale)")
    ax.grid(alpha=0.3, which="both")
    if paths:
        ax.legend(fontsize="small", ncol=1 + len(paths) // 8)


def plot_history(history, path=None):
    """Loss, accuracy (for classification) and per-layer gradient norms of a ``History``.

    One figure, one panel each: training and validation curves with the best epoch marked
    (a star on the monitored curve and a dotted line), and ‖∂L/∂Wˡ‖ per epoch on a log scale.
    Also available as ``history.plot(path)``.
    """
    keys = ["loss"] + (["accuracy"] if history.history.get("accuracy") else [])
    grads = bool(history.grad_norms)
    fig, axes = _figure(len(keys) + grads)
    for ax, key in zip(axes, keys):
        draw_curves(ax, history, key)
    if grads:
        draw_grad_norms(axes[-1], history)
    return _finish(fig, path)


def plot_curves(history, path=None):
    """Only the loss (and accuracy) panels of :func:`plot_history`."""
    keys = ["loss"] + (["accuracy"] if history.history.get("accuracy") else [])
    fig, axes = _figure(len(keys))
    for ax, key in zip(axes, keys):
        draw_curves(ax, history, key)
    return _finish(fig, path)


def plot_grad_norms(history, path=None):
    """Only the gradient-norm panel of :func:`plot_history`."""
    fig, (ax,) = _figure(1, width=6.5)
    draw_grad_norms(ax, history)
    return _finish(fig, path)


def compare_histories(histories: dict, path=None, *, keys=("loss",), logy: bool = False,
                      title: str = ""):
    """Several runs side by side: one panel per key, one curve per run.

    ``histories`` maps a label (``"Adam"``) to a ``History``; a key starting with ``val_``
    plots the validation curve. ``logy`` puts the y axes on a log scale.
    """
    fig, axes = _figure(len(keys))
    for ax, key in zip(axes, keys):
        for label, history in histories.items():
            values = history.history.get(key, [])
            ax.plot(np.arange(len(values)), values, label=label)
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("epoch (0-based)")
        ax.set_ylabel(key.replace("_", " "))
        ax.set_title(f"{title} {key.replace('_', ' ')}".strip())
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    return _finish(fig, path)


# -- what a 2-D classifier learned ---------------------------------------------------------

def plot_decision_boundary(model, X, y, path=None, *, ax=None, resolution: int = 200,
                           title: str = "Decision boundary"):
    """The regions a 2-D classifier assigns to each class, with the data on top.

    ``model.predict`` is evaluated on a ``resolution × resolution`` grid around ``X``. A
    model with one output (sigmoid, ``NLL``) is shaded by its probability of class 1 with
    the boundary ``a = 0.5`` drawn; one with k outputs (softmax) by its argmax class.

    Parameters
    ----------
    model : anything with ``predict(X) -> A``
    X : array (n_samples, 2); y : integer labels (n_samples,)
    path : where to save the figure (optional)
    ax : draw into this matplotlib axes instead of a new figure
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).reshape(-1)
    if X.ndim != 2 or X.shape[1] != 2:
        raise InputError(f"plot_decision_boundary expected X with 2 features, got array of "
                         f"shape {X.shape}")
    if len(y) != len(X):
        raise InputError(f"plot_decision_boundary expected one label per row, got {len(X)} "
                         f"rows and {len(y)} labels")
    if ax is None:
        fig, (ax,) = _figure(1, width=5.5, height=4.8)
    else:
        fig = ax.figure
    pad = 0.1 * (X.max(axis=0) - X.min(axis=0)) + 0.1
    lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
    g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], resolution),
                         np.linspace(lo[1], hi[1], resolution))
    A = np.asarray(model.predict(np.column_stack([g1.ravel(), g2.ravel()])), dtype=float)
    if A.shape[1] == 1:
        P = A[:, 0].reshape(g1.shape)
        shade = ax.contourf(g1, g2, P, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.45)
        ax.contour(g1, g2, P, levels=[0.5], colors="k", linewidths=1.5)
        fig.colorbar(shade, ax=ax, label="P(class 1)")
        cmap = "RdBu_r"
    else:
        k = A.shape[1]
        C = A.argmax(axis=1).reshape(g1.shape)
        ax.contourf(g1, g2, C, levels=np.arange(k + 1) - 0.5, cmap="tab10", vmin=-0.5,
                    vmax=9.5, alpha=0.35)
        ax.contour(g1, g2, C, levels=np.arange(k) + 0.5, colors="k", linewidths=0.8)
        cmap = "tab10"
    kwargs = {"vmin": 0, "vmax": 1} if cmap == "RdBu_r" else {"vmin": -0.5, "vmax": 9.5}
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, edgecolors="k", linewidths=0.6, s=24,
               **kwargs)
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_title(title)
    return _finish(fig, path)
