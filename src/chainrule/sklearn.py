"""scikit-learn estimators: ``MLPClassifier`` and ``MLPRegressor`` on chainrule.

Thin adapters: ``fit`` validates the data the scikit-learn way, builds a ``Sequential`` (the
command line's, from ``chainrule._build``)::

    [Linear → (BatchNorm) → activation → (Dropout)] × len(hidden_layer_sizes) → Linear → output

and calls :func:`chainrule.fit`; ``partial_fit`` calls it with ``epochs=1`` and the estimator's
kept optimizer, so the optimizer's state (Adam's m and v, ...) carries over between calls.
Nothing about training is re-implemented here.

=================== ============================ =========================================
estimator           output module, loss          targets
=================== ============================ =========================================
MLPClassifier       ``Sigmoid``, ``NLL``         two classes (one output unit)
                    ``Softmax``, ``NLLM``        three or more classes
                    k ``Sigmoid`` units, ``NLL`` multilabel: a 0/1 indicator matrix (n, k)
MLPRegressor        ``Identity``, ``SquareLoss`` 1-D or ``(n_samples, n_outputs)``,
                                                 standardised (see ``MLPRegressor``)
=================== ============================ =========================================

As in scikit-learn's own MLP, the network's dtype follows ``X``: float32 data trains a
float32 network, anything else (float64, ints) a float64 one. In float32, a row's prediction
could change in the last bits with the rows predicted beside it (BLAS blocks a matrix product
by its shape), which scikit-learn's checks do not allow for float64 data. ``model_`` is a
plain ``Sequential`` that :func:`chainrule.serialization.save` writes and ``load`` reads back.
The initial weights are drawn in float64 and cast, so float32 and float64 data with the same
``random_state`` start from the same network.

Data: ``X`` may be dense, a ``scipy.sparse`` matrix (each batch is made dense, never the whole
matrix) or an array-like read a window at a time (``numpy.memmap``, ``h5py.Dataset``,
``zarr.Array``, a Dask array; see :mod:`chainrule.arrays`). ``fit`` and ``partial_fit`` take
``sample_weight`` (the loss of row i counts wᵢ times: a batch of K rows has the loss
Σ wᵢ Lᵢ / (K · w̄), w̄ the mean weight, unbiased for the weighted mean over all rows and so
for integer weights for the repeated rows; see :func:`chainrule.fit`), and ``score`` is
weighted by scikit-learn's mixins.

Errors: bad values raise ``ValueError`` (scikit-learn's own for what ``validate_data`` checks,
:class:`chainrule.errors.InputError` for the rest). Training that diverges raises
:class:`EstimatorDivergenceError`, a :class:`chainrule.DivergenceError` that is also a
``ValueError``, as scikit-learn's MLP raises ``ValueError`` when its solver produces
non-finite weights: code that catches ``ValueError`` around ``fit`` keeps working.

Example
-------
>>> from sklearn.datasets import load_digits
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from chainrule.sklearn import MLPClassifier
>>> X, y = load_digits(return_X_y=True)
>>> clf = make_pipeline(StandardScaler(), MLPClassifier(epochs=10, random_state=0))
>>> clf.fit(X[:1000], y[:1000]).score(X[1000:], y[1000:]) > 0.9
True
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from ._build import (
    ACTIVATIONS,
    OPTIMIZERS,
    build_mlp,
    class_indices,
    class_probabilities,
    make_optimizer,
    output_layer,
    standardise,
    unstandardise,
)
from .arrays import Rows, as_sparse_matrix, check_sample_weight, is_sparse, kind, n_rows
from .errors import DivergenceError, InputError
from .layers import Sequential, Sigmoid
from .losses import NLL
from .training import EarlyStopping, fit

__all__ = ["EstimatorDivergenceError", "MLPClassifier", "MLPRegressor"]

_FLOATS = (np.float64, np.float32)  # validate_data casts anything else (ints) to float64
_CHUNK = 4096  # rows of a sparse X made dense at a time to predict
_NO_Y = object()  # _validate without y (predict), unlike fit's y=None, which is an error


class EstimatorDivergenceError(DivergenceError, ValueError):
    """Training diverged (a non-finite loss, gradient or weight) inside an estimator's
    ``fit`` or ``partial_fit``: a :class:`chainrule.DivergenceError` that is also a
    ``ValueError``, as scikit-learn's own MLP raises. ``model_`` keeps its last finite
    weights."""


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, the network, the fit call.

    Subclasses name their ``_task`` and turn ``y`` into the network's targets and its outputs
    back into predictions.
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "patience": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "input_noise": [Interval(Real, 0, None, closed="left")],
        "clip_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam",
                 learning_rate=None, batch_size=32, epochs=50, weight_decay=0.0, dropout=0.0,
                 batch_norm=False, early_stopping=False, validation_fraction=0.1, patience=10,
                 tol=1e-4, input_noise=0.0, clip_grad_norm=None, random_state=None,
                 verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.tol = tol
        self.input_noise = input_noise
        self.clip_grad_norm = clip_grad_norm
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -- building ------------------------------------------------------------------------
    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not all(isinstance(s, Integral) and not isinstance(s, bool) and s >= 1
                   for s in sizes):
            raise ValueError(f"{type(self).__name__} expected hidden_layer_sizes as positive "
                             f"ints, got {self.hidden_layer_sizes!r}")
        return [int(s) for s in sizes]

    def _network(self, n_in: int, k: int, dtype) -> Sequential:
        """A fresh network for ``k`` classes, labels or outputs."""
        multilabel = getattr(self, "_multilabel", False)
        model, _ = build_mlp(
            n_in, self._hidden_sizes(), "regression" if multilabel else self._task, k,
            activation=self.activation, dropout=self.dropout, batch_norm=self.batch_norm,
            rng=self._rng, dtype=dtype)
        if multilabel:  # k independent sigmoid units in place of the Identity output
            model = Sequential(*model.modules[:-1], Sigmoid())
        return model

    # -- data ----------------------------------------------------------------------------
    def _validate(self, X, y=_NO_Y, *, reset: bool, **y_checks):
        """``(X, y, dtype)``, or ``(X, dtype)`` without ``y``, from ``validate_data``, for
        dense, sparse and out-of-core ``X`` alike. A sparse ``y`` (a multilabel indicator
        matrix, n × k) is made dense first."""
        if y is not _NO_Y and is_sparse(y):
            y = y.toarray()
        if kind(X) == "rows":  # never materialised: only its shape and dtype are checked
            validate_data(self, X, reset=reset, skip_check_array=True)
            dtype = np.float32 if X.dtype == np.float32 else np.float64
            if y is _NO_Y:
                return X, dtype
            y = check_array(y, ensure_2d=False, dtype=None if not y_checks.get("y_numeric")
                            else "numeric", input_name="y")
            return X, y, dtype
        sparse = is_sparse(X)
        # chainrule checks a sparse X's values itself: its error names what it got
        check = dict(dtype=_FLOATS, accept_sparse="csr", ensure_all_finite=not sparse)
        if y is _NO_Y:
            X = validate_data(self, X, reset=reset, **check)
        else:
            X, y = validate_data(self, X, y, reset=reset, **check, **y_checks)
        if sparse:
            X = as_sparse_matrix(X, "X", type(self).__name__, X.dtype)
        return (X, X.dtype) if y is _NO_Y else (X, y, X.dtype)

    def _weights(self, sample_weight, X):
        if sample_weight is None:
            return None
        owner = type(self).__name__
        return check_sample_weight(sample_weight, n_rows(X, "X", owner), owner)

    # -- training ------------------------------------------------------------------------
    def _train(self, X, Y: np.ndarray, k: int, dtype, w=None, *, incremental: bool,
               stratify=None):
        """Build a fresh network for ``k`` classes or outputs (unless ``incremental`` and one
        exists) and run ``fit``."""
        early = self.early_stopping and not incremental
        if not (incremental and hasattr(self, "model_")):
            # One Generator from random_state drives the initial weights, dropout masks,
            # shuffling, noise and the validation split: the same random_state gives the
            # same model.
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            self._rng = np.random.default_rng(seed)
            self.model_ = self._network(X.shape[1], k, dtype)
            self.optimizer_ = make_optimizer(self.optimizer, self.learning_rate,
                                             self.weight_decay)
            self.loss_curve_, self.validation_loss_curve_ = [], None
        loss = self._loss(k)
        data, validation = (X, Y, w), None
        if early:
            data, validation = self._split(X, Y, w, stratify)
        try:
            self.history_ = fit(
                self.model_, loss, *data[:2], sample_weight=data[2], optimizer=self.optimizer_,
                epochs=1 if incremental else self.epochs, batch_size=self.batch_size,
                validation_data=validation,
                validation_split=self.validation_fraction if early and validation is None
                else 0.0,
                early_stopping=EarlyStopping(patience=self.patience, min_delta=self.tol)
                if early else None,
                input_noise=self.input_noise, clip_grad_norm=self.clip_grad_norm,
                rng=self._rng, progress=bool(self.verbose))
        except DivergenceError as e:
            raise EstimatorDivergenceError(str(e)) from e
        # .get: a Ctrl-C before the first epoch ends leaves the History empty.
        self.loss_curve_ = self.loss_curve_ + self.history_.history.get("loss", [])
        if early:
            self.validation_loss_curve_ = list(self.history_.history.get("val_loss", []))
        self.n_iter_ = len(self.loss_curve_)
        return self

    def _loss(self, k: int):
        return NLL() if getattr(self, "_multilabel", False) else output_layer(self._task, k)[2]

    def _split(self, X, Y, w, stratify):
        """``((X, Y, w), (X_val, Y_val, w_val))``: ``validation_fraction`` of the rows held
        out at random (stratified by ``stratify`` when given). Data read from disk is not
        gathered: ``fit`` holds out its last rows (``(X, Y, w), None``)."""
        if kind(X) == "rows":
            return (X, Y, w), None
        n = X.shape[0]
        n_val = int(round(n * self.validation_fraction))
        if n_val < 1 or n_val >= n:
            raise InputError(f"{type(self).__name__} expected validation_fraction to leave at "
                             f"least one row for training and for validation, got "
                             f"{self.validation_fraction} of {n} rows")
        if stratify is None:
            order = self._rng.permutation(n)
            train, val = order[n_val:], order[:n_val]
        else:  # scikit-learn's errors for a class too small to split
            seed = int(self._rng.integers(np.iinfo(np.int32).max))
            splitter = StratifiedShuffleSplit(1, test_size=n_val, random_state=seed)
            train, val = next(splitter.split(np.zeros(n), stratify))

        def rows(idx):
            return tuple(None if A is None else A[idx] for A in (X, Y, w))
        return rows(train), rows(val)

    # -- predicting ----------------------------------------------------------------------
    def _forward(self, X, *, logits: bool = False) -> tuple[np.ndarray, np.dtype]:
        """The network's output for ``X`` (its input ``Zᴸ`` to the output activation with
        ``logits``), and ``X``'s dtype; sparse and out-of-core ``X`` a chunk at a time."""
        check_is_fitted(self)
        X, dtype = self._validate(X, reset=False)
        if kind(X) == "rows":
            rows = Rows(X)
            parts = [rows.read(r) for r in rows.windows(None, shuffle=False)]
        elif is_sparse(X):
            parts = (X[i:i + _CHUNK].toarray() for i in range(0, X.shape[0], _CHUNK))
        else:
            parts = [X]
        outs = [self._output(part, logits) for part in parts]
        return (outs[0] if len(outs) == 1 else np.concatenate(outs)), dtype

    def _output(self, X: np.ndarray, logits: bool) -> np.ndarray:
        if not logits:
            return self.model_.predict(X)
        model, was = self.model_, self.model_.training
        modes = [getattr(m, "training", was) for m in model.modules]
        model.eval()
        try:  # eval mode, as predict, through every module but the output activation
            A = np.asarray(X, dtype=model.dtype)
            for module in model.modules[:-1]:
                A = module.forward(A)
            return A
        finally:
            model.training = was
            for module, mode in zip(model.modules, modes):
                module.train() if mode else module.eval()


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multi-layer perceptron classifier trained by :func:`chainrule.fit`.

    Two classes give one sigmoid output unit and the ``NLL`` loss; more give a softmax over
    ``n_classes`` units and ``NLLM``. Labels may be of any type (strings, non-contiguous
    integers): the network sees their indices in ``classes_``. A multilabel indicator ``y``
    of shape (n_samples, n_labels), 0s and 1s, gives ``n_labels`` independent sigmoid units
    and ``NLL`` per label: ``predict`` is then a 0/1 matrix, ``predict_proba`` each label's
    probability (rows need not sum to 1) and ``score`` the subset accuracy.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Units of each hidden layer; ``()`` gives no hidden layer (logistic regression).
    activation : {"relu", "leaky_relu", "tanh", "sigmoid", "identity"}, default "relu"
        Hidden activation. ReLU-like ones get He initialisation, the rest Glorot's.
    optimizer : {"sgd", "momentum", "adagrad", "rmsprop", "adadelta", "adam"}, default "adam"
    learning_rate : float > 0 or None, default None
        η. None: the optimizer's own default (Adam 1e-3, Adadelta 1.0, the others 0.01).
    batch_size : int ≥ 1 or None, default 32
        None: the whole training set each step. Larger than the data: the whole data.
    epochs : int ≥ 1, default 50
        Passes over the data in ``fit`` (fewer with early stopping).
    weight_decay : float ≥ 0, default 0
        λ of ``J = J_loss + λ‖W‖²`` (weights only, not offsets).
    dropout : float in [0, 1), default 0
        Probability that a hidden unit is dropped in training (inverted dropout).
    batch_norm : bool, default False
        ``BatchNorm`` between each hidden ``Linear`` and its activation. As in ``fit``, a
        last batch of one row joins the batch before it.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the rows (chosen at random, stratified by class
        for the classifier) and stop after ``patience`` epochs in which the validation loss
        did not fall by more than ``tol``, keeping the best weights. Data read from disk
        (a memmap, HDF5, zarr or Dask array) holds out its last rows instead.
    validation_fraction : float in (0, 1), default 0.1
    patience : int ≥ 0, default 10
    tol : float ≥ 0, default 1e-4
        With ``early_stopping``, an epoch improves when the validation loss falls below the
        best so far by more than ``tol`` (scikit-learn's name and default).
    input_noise : float ≥ 0, default 0
        σ of the N(0, σ²) noise added to each training batch's inputs.
    clip_grad_norm : float > 0 or None, default None
        Rescale each step's gradients to a global L2 norm of at most this.
    random_state : None, int or numpy.random.RandomState, default None
        Seeds the initial weights, dropout masks, shuffling, noise and the validation split.
    verbose : bool or int, default False
        Show a progress bar per epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    model_ : chainrule.Sequential
        The trained network; its output is ``P(classes_[1])`` for two classes, else the
        softmax over ``classes_``.
    optimizer_ : chainrule optimizer
        Kept between ``fit`` and ``partial_fit`` calls, with its state.
    history_ : chainrule.History
        What the last ``fit`` (or ``partial_fit``) call measured.
    loss_curve_ : list of float
        Mean training loss per epoch, over all ``fit``/``partial_fit`` epochs since the
        last ``fit``.
    validation_loss_curve_ : list of float or None
        Validation loss per epoch with ``early_stopping``, else None.
    n_iter_ : int
        Epochs run (``len(loss_curve_)``).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` was a DataFrame with string column names.

    Example
    -------
    >>> from chainrule.sklearn import MLPClassifier
    >>> X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 10
    >>> y = ["no", "yes", "yes", "yes"] * 10
    >>> clf = MLPClassifier((8,), epochs=200, learning_rate=0.01, random_state=0).fit(X, y)
    >>> clf.predict([[0.0, 0.0], [1.0, 1.0]]).tolist()
    ['no', 'yes']
    >>> clf.predict_proba([[1.0, 1.0]]).shape
    (1, 2)
    """

    _task = "classification"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train a new network on ``X`` (n_samples, n_features) and labels ``y``
        (n_samples,), or a 0/1 indicator matrix (n_samples, n_labels); ``sample_weight``
        (n_samples,) weighs each row's loss."""
        X, y, dtype = self._validate(X, y, reset=True, multi_output=True)
        w = self._weights(sample_weight, X)
        self._multilabel = _is_multilabel(y)
        if self._multilabel:
            self.classes_ = np.arange(y.shape[1])
            return self._train(X, self._indicator(y), y.shape[1], dtype, w, incremental=False)
        y = _labels_1d(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"MLPClassifier needs samples of at least 2 classes, got 1 class: "
                             f"{self.classes_.tolist()}")
        return self._train(X, y_index, len(self.classes_), dtype, w, incremental=False,
                           stratify=y_index)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch on ``(X, y)``, continuing the network and optimizer state so far.

        ``classes`` (every label that will ever appear) is required on the first call,
        except for a multilabel indicator ``y``. Early stopping does not apply to
        ``partial_fit``.
        """
        first = not hasattr(self, "model_")
        X, y, dtype = self._validate(X, y, reset=first, multi_output=True)
        w = self._weights(sample_weight, X)
        if first:
            self._multilabel = _is_multilabel(y)
        if self._multilabel:
            k = y.shape[1] if y.ndim == 2 else 0
            if first:
                self.classes_ = np.arange(k)
            if k != len(self.classes_):
                raise InputError(f"MLPClassifier.partial_fit expected a multilabel y of "
                                 f"{len(self.classes_)} columns, got array of shape {y.shape}")
            _check_multilabel_classes(classes, k)
            return self._train(X, self._indicator(y), k, dtype, w, incremental=True)
        if first and classes is None:
            raise ValueError("MLPClassifier.partial_fit expected classes=... (all labels) "
                             "on its first call, got classes=None")
        y = _labels_1d(y)
        if first:
            classes = np.unique(classes)
            if len(classes) < 2:
                raise ValueError(f"MLPClassifier needs at least 2 classes, got 1 class: "
                                 f"{classes.tolist()}")
            self.classes_ = classes
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"MLPClassifier.partial_fit expected classes="
                             f"{self.classes_.tolist()} as on the first call, got {classes!r}")
        y_index = np.searchsorted(self.classes_, y)
        unknown = (y_index >= len(self.classes_)) | (
            self.classes_[np.minimum(y_index, len(self.classes_) - 1)] != y)
        if unknown.any():
            raise ValueError(f"MLPClassifier.partial_fit expected labels in "
                             f"{self.classes_.tolist()}, got {np.unique(y[unknown]).tolist()}")
        return self._train(X, y_index, len(self.classes_), dtype, w, incremental=True)

    def _indicator(self, y) -> np.ndarray:
        """A multilabel ``y``, checked to be 0s and 1s, as the float targets of ``NLL``."""
        if y.ndim != 2 or y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
            values = np.unique(y)[:5].tolist() if y.dtype.kind in "biuf" else y.dtype
            raise InputError(f"MLPClassifier expected a multilabel indicator y of 0s and 1s "
                             f"of shape (n_samples, n_labels), got array of shape {y.shape} "
                             f"with values {values}")
        return y.astype(np.float64)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order;
        multilabel: each label's probability (rows need not sum to 1)."""
        A, _ = self._forward(X)
        return A.astype(np.float64) if self._multilabel else class_probabilities(A)

    def predict_log_proba(self, X) -> np.ndarray:
        """``log(predict_proba(X))``, computed from the output layer's ``Z`` in float64 so
        that it stays finite where a probability rounds to 0."""
        Z, _ = self._forward(X, logits=True)
        Z = Z.astype(np.float64)
        if self._multilabel:
            return -np.logaddexp(0.0, -Z)  # log σ(z)
        if Z.shape[1] == 1:  # two classes: log(1 − σ(z)), log σ(z)
            return np.column_stack([-np.logaddexp(0.0, Z[:, 0]), -np.logaddexp(0.0, -Z[:, 0])])
        top = Z.max(axis=1, keepdims=True)  # log softmax
        return Z - top - np.log(np.exp(Z - top).sum(axis=1, keepdims=True))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row, shape (n_samples,); multilabel: a 0/1 matrix
        (n_samples, n_labels), 1 where a label's probability is above 0.5."""
        A, _ = self._forward(X)  # _forward says first if not fitted
        if self._multilabel:
            return (A.astype(np.float64) > 0.5).astype(np.int64)
        return self.classes_[class_indices(A)]


def _check_multilabel_classes(classes, k: int) -> None:
    """``classes`` given with a multilabel ``y``: as in scikit-learn, the values a label takes
    (0 and 1, e.g. ``np.unique(y)``) or the labels ``0..k-1``; otherwise refused."""
    if classes is None:
        return
    values = set(np.asarray(classes, dtype=object).ravel().tolist())
    if values and (values <= {0, 1} or values == set(range(k))):  # True == 1, 1.0 == 1
        return
    raise InputError(f"MLPClassifier.partial_fit expected classes=None, [0, 1] (the values "
                     f"of a multilabel y) or range({k}) (its labels) for a multilabel y of "
                     f"{k} columns, got classes={classes!r}")


def _is_multilabel(y) -> bool:
    """A 2-D ``y`` of several columns: a multilabel indicator (checked as it is used)."""
    return y.ndim == 2 and y.shape[1] > 1


def _labels_1d(y) -> np.ndarray:
    """1-D class labels, checked the scikit-learn way (a column ``y`` warns, as there)."""
    y = column_or_1d(y, warn=True)
    check_classification_targets(y)
    return y


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multi-layer perceptron regressor trained by :func:`chainrule.fit` on square loss.

    Targets are standardised internally: the network learns ``(y − y_mean_) / y_scale_``
    (per output, ``y_scale_`` the standard deviation, 1 where it is 0) and ``predict``
    returns ``model_.predict(X) * y_scale_ + y_mean_``. So the default learning rates
    suit any scale of ``y``, and ``loss_curve_`` is in standardised units. ``model_``
    (and a file written from it) outputs standardised targets. ``partial_fit`` takes
    ``y_mean_`` and ``y_scale_`` from its first batch.

    Parameters
    ----------
    Those of :class:`MLPClassifier`.

    Attributes
    ----------
    model_ : chainrule.Sequential
        Its output is the standardised targets (see above).
    y_mean_, y_scale_ : ndarray of shape (n_outputs,)
    n_outputs_ : int
    optimizer_, history_, loss_curve_, validation_loss_curve_, n_iter_, n_features_in_,
    feature_names_in_ :
        As in :class:`MLPClassifier`.

    Example
    -------
    >>> import numpy as np
    >>> from chainrule.sklearn import MLPRegressor
    >>> X = np.linspace(-1, 1, 64).reshape(-1, 1)
    >>> reg = MLPRegressor((16,), epochs=100, learning_rate=0.01, random_state=0)
    >>> reg.fit(X, 3 * X[:, 0] + 5).score(X, 3 * X[:, 0] + 5) > 0.99
    True
    """

    _task = "regression"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train a new network on ``X`` (n_samples, n_features) and ``y`` (n_samples,) or
        (n_samples, n_outputs); ``sample_weight`` (n_samples,) weighs each row's loss."""
        X, y, dtype = self._validate(X, y, reset=True, multi_output=True, y_numeric=True)
        w = self._weights(sample_weight, X)
        self._set_scale(y, w)
        return self._train(X, self._standardise(y), self.n_outputs_, dtype, w,
                           incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch on ``(X, y)``, continuing the network and optimizer state so far."""
        first = not hasattr(self, "model_")
        X, y, dtype = self._validate(X, y, reset=first, multi_output=True, y_numeric=True)
        w = self._weights(sample_weight, X)
        if first:
            self._set_scale(y, w)
        elif (1 if y.ndim == 1 else y.shape[1]) != self.n_outputs_:
            raise ValueError(f"MLPRegressor.partial_fit expected y with {self.n_outputs_} "
                             f"output(s), got array of shape {y.shape}")
        return self._train(X, self._standardise(y), self.n_outputs_, dtype, w,
                           incremental=True)

    def _set_scale(self, y: np.ndarray, w: np.ndarray | None) -> None:
        """Per output: the (weighted) mean and standard deviation (1 where it is 0)."""
        self._y_1d = y.ndim == 1  # predict returns the shape fit was given
        Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        self.y_mean_ = np.average(Y, axis=0, weights=w)
        std = np.sqrt(np.average((Y - self.y_mean_) ** 2, axis=0, weights=w))
        self.y_scale_ = np.where(std > 0, std, 1.0)
        self.n_outputs_ = len(self.y_mean_)

    def _standardise(self, y: np.ndarray) -> np.ndarray:
        return standardise(y.reshape(len(y), -1), self.y_mean_, self.y_scale_)

    def predict(self, X) -> np.ndarray:
        """Predicted targets, shape (n_samples,) or (n_samples, n_outputs) as ``y`` in fit,
        in ``X``'s dtype (float32 for float32 data, else float64)."""
        A, dtype = self._forward(X)
        Y = unstandardise(A, self.y_mean_, self.y_scale_).astype(dtype, copy=False)
        return Y[:, 0] if self._y_1d else Y
