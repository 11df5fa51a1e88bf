"""Progress display for ``fit``: a tqdm bar per epoch when tqdm is installed, else plain lines."""

from __future__ import annotations

import sys


def wanted(progress) -> bool:
    """``progress=None`` means: a bar only when stderr is a terminal (never in logs)."""
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


class EpochBar:
    """One bar per epoch, ``steps`` long, with the running loss and accuracy as postfix."""

    def __init__(self, epoch: int, epochs: int, steps: int):
        self.desc = f"epoch {epoch + 1}/{epochs}"
        try:
            from tqdm.auto import tqdm
        except ImportError:  # the "progress" extra is not installed: one line per epoch
            self.bar = None
        else:
            self.bar = tqdm(total=steps, desc=self.desc, leave=True, file=sys.stderr,
                            mininterval=0.1)

    def update(self, n: int, figures: dict) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if self.bar.n == self.bar.total or self.bar.n % 10 == 0:
                self.bar.set_postfix(figures, refresh=False)

    def close(self, figures: dict) -> None:
        text = "  ".join(f"{k} {v:.4f}" for k, v in figures.items() if v == v)
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=True)
            self.bar.close()
        else:
            print(f"{self.desc}  {text}", file=sys.stderr, flush=True)
