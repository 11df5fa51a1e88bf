"""``History``: what ``fit`` measured, epoch by epoch."""

from __future__ import annotations

import numpy as np


class History:
    """What ``fit`` measured, epoch by epoch.

    Attributes
    ----------
    history : dict[str, list[float]]
        ``"loss"`` (mean training loss over the epoch's batches), ``"val_loss"`` (after the
        epoch's updates, eval mode), ``"accuracy"``/``"val_accuracy"`` for NLL and NLLM, and
        ``"time"`` (wall seconds per epoch).
    grad_norms : dict[str, list[float]]
        Per parameter path (``"modules.0.W"``), the L2 norm of its gradient averaged over
        each epoch's steps: vanishing gradients show up as first layers orders of magnitude
        below the last (notes' section 6.7.3), exploding ones as growing norms.
    best_epoch : int or None
        0-based epoch of the lowest validation loss (training loss without validation).
    stopped_early, interrupted : bool
    """

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.grad_norms: dict[str, list[float]] = {}
        self.best_epoch: int | None = None
        self.stopped_early = False
        self.interrupted = False

    @property
    def epochs(self) -> int:
        return len(self.history.get("loss", []))

    def append(self, figures: dict[str, float], grad_norms: dict[str, float]) -> None:
        """Record one epoch: its figures (``"loss"``, ...) and mean gradient norm per path."""
        for key, value in figures.items():
            self.history.setdefault(key, []).append(value)
        for path, norm in grad_norms.items():
            self.grad_norms.setdefault(path, []).append(norm)
        monitor = self.history.get("val_loss") or self.history["loss"]
        self.best_epoch = int(np.argmin(monitor))

    def plot(self, path=None):
        """Loss and accuracy curves (best epoch marked) and per-layer gradient norms on a log
        scale; saved to ``path`` when given. Needs matplotlib (the "plot" extra)."""
        from .plotting import plot_history
        return plot_history(self, path)

    def state_dict(self) -> dict:
        """Everything as plain lists, numbers and booleans (JSON-ready)."""
        return {"history": self.history, "grad_norms": self.grad_norms,
                "best_epoch": self.best_epoch, "stopped_early": self.stopped_early,
                "interrupted": self.interrupted}

    def load_state_dict(self, d: dict) -> None:
        """Restore what :meth:`state_dict` exported."""
        self.history = {k: [float(v) for v in vs] for k, vs in d["history"].items()}
        self.grad_norms = {k: [float(v) for v in vs] for k, vs in d["grad_norms"].items()}
        self.best_epoch = None if d["best_epoch"] is None else int(d["best_epoch"])
        self.stopped_early = bool(d["stopped_early"])
        self.interrupted = bool(d["interrupted"])

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v and k != "time"}
        return (f"History(epochs={self.epochs}, best_epoch={self.best_epoch}, "
                f"stopped_early={self.stopped_early}, interrupted={self.interrupted}, last={last})")
