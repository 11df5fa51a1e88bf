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
MLPRegressor        ``Identity``, ``SquareLoss`` 1-D or ``(n_samples, n_outputs)``,
                                                 standardised (see ``MLPRegressor``)
=================== ============================ =========================================

As in scikit-learn's own MLP, the network's dtype follows ``X``: float32 data trains a
float32 network, anything else (float64, ints) a float64 one. In float32, a row's prediction
could change in the last bits with the rows predicted beside it (BLAS blocks a matrix product
by its shape), which scikit-learn's checks do not allow for float64 data. ``model_`` is a
plain ``Sequential`` that :func:`chainrule.serialization.save` writes and ``load`` reads back.

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
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._build import (
    ACTIVATIONS,
    OPTIMIZERS,
    build_mlp,
    class_indices,
    class_probabilities,
    make_optimizer,
    output_layer,
    standardise,
    target_scale,
    unstandardise,
)
from .training import EarlyStopping, fit

__all__ = ["MLPClassifier", "MLPRegressor"]

_FLOATS = (np.float64, np.float32)  # validate_data casts anything else (ints) to float64


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
        "input_noise": [Interval(Real, 0, None, closed="left")],
        "clip_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam",
                 learning_rate=None, batch_size=32, epochs=50, weight_decay=0.0, dropout=0.0,
                 batch_norm=False, early_stopping=False, validation_fraction=0.1, patience=10,
                 input_noise=0.0, clip_grad_norm=None, random_state=None, verbose=False):
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
        self.input_noise = input_noise
        self.clip_grad_norm = clip_grad_norm
        self.random_state = random_state
        self.verbose = verbose

    # -- building ------------------------------------------------------------------------
    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not all(isinstance(s, Integral) and not isinstance(s, bool) and s >= 1
                   for s in sizes):
            raise ValueError(f"{type(self).__name__} expected hidden_layer_sizes as positive "
                             f"ints, got {self.hidden_layer_sizes!r}")
        return [int(s) for s in sizes]

    # -- training ------------------------------------------------------------------------
    def _train(self, X: np.ndarray, Y: np.ndarray, k: int, *, incremental: bool):
        """Build a fresh network for ``k`` classes or outputs (unless ``incremental`` and one
        exists) and run ``fit``."""
        early = self.early_stopping and not incremental
        if not (incremental and hasattr(self, "model_")):
            # One Generator from random_state drives the initial weights, dropout masks,
            # shuffling and noise: the same random_state gives the same model.
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            self._rng = np.random.default_rng(seed)
            self.model_, _ = build_mlp(
                X.shape[1], self._hidden_sizes(), self._task, k, activation=self.activation,
                dropout=self.dropout, batch_norm=self.batch_norm, rng=self._rng,
                dtype=X.dtype)
            self.optimizer_ = make_optimizer(self.optimizer, self.learning_rate,
                                             self.weight_decay)
            self.loss_curve_, self.validation_loss_curve_ = [], None
        if early:
            # fit holds out the *last* rows: shuffle first so sorted data gives a fair split.
            order = self._rng.permutation(len(X))
            X, Y = X[order], Y[order]
        _, _, loss = output_layer(self._task, k)
        self.history_ = fit(
            self.model_, loss, X, Y, optimizer=self.optimizer_,
            epochs=1 if incremental else self.epochs, batch_size=self.batch_size,
            validation_split=self.validation_fraction if early else 0.0,
            early_stopping=EarlyStopping(patience=self.patience) if early else None,
            input_noise=self.input_noise, clip_grad_norm=self.clip_grad_norm,
            rng=self._rng, progress=bool(self.verbose))
        # .get: a Ctrl-C before the first epoch ends leaves the History empty.
        self.loss_curve_ = self.loss_curve_ + self.history_.history.get("loss", [])
        if early:
            self.validation_loss_curve_ = list(self.history_.history.get("val_loss", []))
        self.n_iter_ = len(self.loss_curve_)
        return self

    # An optimizer keys its state by id(parameter), which a pickled or deep-copied estimator
    # does not keep; travel through state_dict instead, so partial_fit goes on after a copy.

    def _forward(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_FLOATS)
        return self.model_.predict(X)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multi-layer perceptron classifier trained by :func:`chainrule.fit`.

    Two classes give one sigmoid output unit and the ``NLL`` loss; more give a softmax over
    ``n_classes`` units and ``NLLM``. Labels may be of any type (strings, non-contiguous
    integers): the network sees their indices in ``classes_``.

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
        Hold out ``validation_fraction`` of the rows (chosen at random) and stop after
        ``patience`` epochs without a lower validation loss, keeping the best weights.
    validation_fraction : float in (0, 1), default 0.1
    patience : int ≥ 0, default 10
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

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train a new network on ``X`` (n_samples, n_features) and labels ``y`` (n_samples,)."""
        X, y = validate_data(self, X, y, dtype=_FLOATS)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"MLPClassifier needs samples of at least 2 classes, got 1 class: "
                             f"{self.classes_.tolist()}")
        return self._train(X, y_index, len(self.classes_), incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """One epoch on ``(X, y)``, continuing the network and optimizer state so far.

        ``classes`` (every label that will ever appear) is required on the first call.
        Early stopping does not apply to ``partial_fit``.
        """
        first = not hasattr(self, "model_")
        if first and classes is None:
            raise ValueError("MLPClassifier.partial_fit expected classes=... (all labels) "
                             "on its first call, got classes=None")
        X, y = validate_data(self, X, y, dtype=_FLOATS, reset=first)
        check_classification_targets(y)
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
        return self._train(X, y_index, len(self.classes_), incremental=True)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        return class_probabilities(self._forward(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row, shape (n_samples,)."""
        index = class_indices(self._forward(X))  # _forward says first if not fitted
        return self.classes_[index]


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
    def fit(self, X, y):
        """Train a new network on ``X`` (n_samples, n_features) and ``y`` (n_samples,) or
        (n_samples, n_outputs)."""
        X, y = validate_data(self, X, y, dtype=_FLOATS, multi_output=True, y_numeric=True)
        self._set_scale(y)
        return self._train(X, self._standardise(y), self.n_outputs_, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y):
        """One epoch on ``(X, y)``, continuing the network and optimizer state so far."""
        first = not hasattr(self, "model_")
        X, y = validate_data(self, X, y, dtype=_FLOATS, multi_output=True, y_numeric=True,
                             reset=first)
        if first:
            self._set_scale(y)
        elif (1 if y.ndim == 1 else y.shape[1]) != self.n_outputs_:
            raise ValueError(f"MLPRegressor.partial_fit expected y with {self.n_outputs_} "
                             f"output(s), got array of shape {y.shape}")
        return self._train(X, self._standardise(y), self.n_outputs_, incremental=True)

    def _set_scale(self, y: np.ndarray) -> None:
        self._y_1d = y.ndim == 1  # predict returns the shape fit was given
        self.y_mean_, self.y_scale_ = target_scale(y)
        self.n_outputs_ = len(self.y_mean_)

    def _standardise(self, y: np.ndarray) -> np.ndarray:
        return standardise(y.reshape(len(y), -1), self.y_mean_, self.y_scale_)

    def predict(self, X) -> np.ndarray:
        """Predicted targets, shape (n_samples,) or (n_samples, n_outputs) as ``y`` in fit."""
        Y = unstandardise(self._forward(X), self.y_mean_, self.y_scale_)
        return Y[:, 0] if self._y_1d else Y
