"""Real data sets as float32 train/test splits: scikit-learn's bundled ones, or your own CSV.

>>> from chainrule import datasets
>>> data = datasets.load("digits")            # needs the "sklearn" extra
>>> data.X_train.shape, data.X_train.dtype
((1438, 64), dtype('float32'))

Features are standardised with the training split's mean and standard deviation (kept as
``data.mean`` / ``data.std`` so new data can be scaled the same way). Class labels of any kind
become integers ``0..k-1``; ``data.classes`` maps them back.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field

import numpy as np

from ._rng import as_generator
from .errors import ChainruleError, InputError

BUNDLED = {
    "digits": ("load_digits", "classification"),
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}


@dataclass
class Dataset:
    """A train/test split. ``y`` are class indices (classification) or float targets."""

    name: str
    task: str  # "classification" or "regression"
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    classes: list = field(default_factory=list)  # original labels, index = class number
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @property
    def n_outputs(self) -> int:
        if self.task == "classification":
            return len(self.classes)
        return 1 if self.y_train.ndim == 1 else self.y_train.shape[1]

    def scale(self, X: np.ndarray) -> np.ndarray:
        """Standardise new rows as the training split was."""
        X = np.asarray(X, dtype=np.float32)
        return X if self.mean is None else (X - self.mean) / self.std


def load(name: str, *, test_size: float = 0.2, rng=0, standardize: bool = True) -> Dataset:
    """One of scikit-learn's bundled data sets: digits, iris, wine, breast_cancer, diabetes."""
    if name not in BUNDLED:
        raise InputError(f"datasets.load expected one of {sorted(BUNDLED)}, got {name!r}")
    try:
        import sklearn.datasets as skd
    except ImportError:
        raise ChainruleError(
            f"the {name!r} data set comes with scikit-learn, which is not installed; "
            "install it with: pip install 'chainrule[sklearn]'"
        ) from None
    loader, task = BUNDLED[name]
    bunch = getattr(skd, loader)()
    X, y = bunch.data, bunch.target
    classes = list(getattr(bunch, "target_names", [])) if task == "classification" else []
    if task == "classification" and len(classes) != len(np.unique(y)):
        classes = sorted(np.unique(y).tolist())
    names = [str(n) for n in getattr(bunch, "feature_names", range(X.shape[1]))]
    return _split(name, task, X, y, names, [str(c) for c in classes], test_size, rng,
                  standardize)


def load_csv(path, label: str, *, task: str | None = None, test_size: float = 0.2, rng=0,
             standardize: bool = True) -> Dataset:
    """A CSV file with a header row: numeric feature columns plus the ``label`` column.

    ``task`` is ``"classification"`` or ``"regression"``; by default a label column that is
    not numeric, or holds at most 20 distinct integers, means classification.
    """
    X, labels, names = read_csv(path, label)
    numeric = _numeric(labels)
    if numeric is not None and not np.isfinite(numeric).all():
        bad = next(v for v, x in zip(labels, numeric) if not np.isfinite(x))
        raise InputError(f"{os.fspath(path)!r}: expected finite numeric labels in column "
                         f"{label!r}, got {bad[:40]!r}")
    if task is None:
        is_int = numeric is not None and np.all(numeric == np.round(numeric))
        task = ("classification" if numeric is None or (is_int and len(set(labels)) <= 20)
                else "regression")
    if task not in ("classification", "regression"):
        raise InputError(f"load_csv expected task 'classification' or 'regression', got {task!r}")
    if task == "regression":
        if numeric is None:
            raise InputError(f"load_csv: regression needs a numeric label column {label!r} "
                             f"in {path}, got values such as {labels[:3]}")
        return _split(os.fspath(path), task, X, numeric, names, [], test_size, rng, standardize)
    if numeric is not None and np.all(numeric == np.round(numeric)):
        classes, y = np.unique(numeric.astype(np.int64), return_inverse=True)
        classes = [str(c) for c in classes]
    else:
        classes, y = np.unique(np.asarray(labels), return_inverse=True)
        classes = [str(c) for c in classes]
    return _split(os.fspath(path), task, X, y, names, classes, test_size, rng, standardize,
                  encoded=True)


def read_csv(path, label: str | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """``(X, labels, feature_names)`` from a CSV with a header; ``label`` may be absent
    (for prediction), then ``labels`` is empty."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # a BOM (Excel) is dropped
            rows = list(csv.reader(f))
    except OSError as e:
        raise InputError(f"cannot read CSV file {os.fspath(path)!r}: {e.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{os.fspath(path)!r} is not a readable CSV file: {e}") from None
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        raise InputError(f"{os.fspath(path)!r} expected a header row and at least one data row, "
                         f"got {len(rows)} row(s)")
    header = [h.strip() for h in rows[0]]
    if label is not None and label not in header:
        raise InputError(f"{os.fspath(path)!r} has no label column {label!r}; columns: "
                         f"{_some(header)}")
    li = header.index(label) if label is not None else None
    names = [h for i, h in enumerate(header) if i != li]
    X = np.empty((len(rows) - 1, len(names)), dtype=np.float32)
    labels = []
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(f"{os.fspath(path)!r} line {r}: expected {len(header)} columns, "
                             f"got {len(row)}")
        values = [c for i, c in enumerate(row) if i != li]
        try:
            with np.errstate(over="ignore"):  # a value beyond float32 is refused below, as inf
                X[r - 2] = [float(v) for v in values]
        except ValueError:
            bad = next(v for v in values if not _is_float(v))
            raise InputError(f"{os.fspath(path)!r} line {r}: expected numeric features, got "
                             f"{bad!r}") from None
        if li is not None:
            labels.append(row[li].strip())
    if not np.isfinite(X).all():
        raise InputError(f"{os.fspath(path)!r}: expected finite float32 features, got NaN, inf "
                         f"or a value beyond ±3.4e38")
    return X, labels, names


def _some(names: list[str], k: int = 10) -> str:
    """The first ``k`` of ``names``, and how many there are: a message stays one short line."""
    shown = ", ".join(repr(n[:40]) for n in names[:k])
    return shown if len(names) <= k else f"{shown}, ... ({len(names)} columns)"


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _numeric(labels: list[str]) -> np.ndarray | None:
    try:
        return np.array([float(v) for v in labels])
    except ValueError:
        return None


def _split(name, task, X, y, names, classes, test_size, rng, standardize, encoded=False):
    if not 0 < test_size < 1:
        raise InputError(f"expected test_size in (0, 1), got {test_size!r}")
    rng = as_generator(rng)
    X = np.asarray(X, dtype=np.float32)
    if task == "classification":
        if not encoded:
            _, y = np.unique(y, return_inverse=True)
        y = y.astype(np.int64)
        test = np.concatenate([  # stratified: each class split in the same proportion
            idx[: int(round(len(idx) * test_size))]
            for idx in (rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y))
        ])
    else:
        y = np.asarray(y, dtype=np.float32)
        test = rng.permutation(len(X))[: int(round(len(X) * test_size))]
    is_test = np.zeros(len(X), bool)
    is_test[test] = True
    if is_test.all() or not is_test.any():
        raise InputError(f"{name}: {len(X)} rows are too few for a train/test split")
    train_idx = rng.permutation(np.flatnonzero(~is_test))
    test_idx = np.flatnonzero(is_test)
    data = Dataset(name, task, X[train_idx], y[train_idx], X[test_idx], y[test_idx],
                   list(names), list(classes))
    if standardize:
        data.mean = data.X_train.mean(axis=0)
        std = data.X_train.std(axis=0)
        data.std = np.where(std > 0, std, 1).astype(np.float32)
        data.X_train = data.scale(data.X_train)
        data.X_test = data.scale(data.X_test)
    return data
