"""``EarlyStopping``: the notes' early stopping, with the state a checkpoint keeps."""

from __future__ import annotations

import math

import numpy as np

from ._validate import check_float, check_int


class EarlyStopping:
    """Stop when the validation loss stops decreasing (notes' Definition 30).

    An epoch improves when ``val_loss < best − min_delta``. Training stops after ``patience``
    consecutive epochs without improvement, so with the best epoch at (0-based) index k it
    runs k + 1 + max(patience, 1) epochs (``patience=0`` stops at the first epoch without
    improvement, as ``patience=1`` does), unless ``epochs`` runs out first. With
    ``restore_best`` the model ends with the weights of its best epoch. ``fit`` needs
    validation data to use it.
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0, restore_best: bool = True):
        self.patience = check_int("EarlyStopping", "patience", patience, 0)
        self.min_delta = check_float("EarlyStopping", "min_delta", min_delta, 0.0, np.inf)
        self.restore_best = bool(restore_best)
        self.reset()

    def reset(self) -> None:
        self.best = math.inf
        self.best_epoch = None
        self.wait = 0
        self.best_weights = None

    def update(self, epoch: int, val_loss: float, params: list) -> bool:
        """Record epoch ``epoch``'s validation loss; return True when training should stop."""
        if val_loss < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = val_loss, epoch, 0
            if self.restore_best:
                self.best_weights = [p.data.copy() for p in params]
            return False
        self.wait += 1
        return self.wait >= self.patience

    def restore(self, params: list) -> None:
        """Put the best epoch's weights back into ``params`` (with ``restore_best``)."""
        if self.restore_best and self.best_weights is not None:
            for p, W in zip(params, self.best_weights):
                p.data[...] = W

    def state_dict(self) -> dict:
        """Settings and progress as numbers, and ``"best_weights"``: a list of arrays or None."""
        return {"patience": self.patience, "min_delta": self.min_delta,
                "restore_best": self.restore_best, "best": self.best,
                "best_epoch": self.best_epoch, "wait": self.wait,
                "best_weights": self.best_weights}

    def load_state_dict(self, d: dict) -> None:
        """Restore what :meth:`state_dict` exported."""
        self.__init__(d["patience"], d["min_delta"], d["restore_best"])
        self.best = float(d["best"])
        self.best_epoch = None if d["best_epoch"] is None else int(d["best_epoch"])
        self.wait = int(d["wait"])
        self.best_weights = d["best_weights"]

    def __repr__(self) -> str:
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
                f"restore_best={self.restore_best})")
