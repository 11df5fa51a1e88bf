"""``from_sklearn``: a fitted scikit-learn MLP as a chainrule model, to inspect with
``explain``, ``gradcheck`` and the report.

scikit-learn's MLPs store what chainrule's ``Linear`` does, in the same layout: ``coefs_[l]``
is W of shape (m, n) (inputs, outputs) and ``intercepts_[l]`` is W0 as (n,), with
``Z = A_prev @ W + W0``. So the network is::

    [Linear → activation] × len(hidden_layer_sizes) → Linear → output

==========================  =================  =====================================
scikit-learn                chainrule          loss returned
==========================  =================  =====================================
``activation="relu"``       ``ReLU``
``"tanh"``, ``"logistic"``  ``Tanh``, ``Sigmoid``
``"identity"``              ``Identity``
MLPClassifier, 2 classes    ``Sigmoid``: one   ``NLL`` (labels 0/1: index in
                            unit, P(class 1)   ``classes_``)
MLPClassifier, ≥ 3 classes  ``Softmax``        ``NLLM`` (labels: index in ``classes_``)
MLPClassifier, multilabel   ``Sigmoid`` per    ``NLL`` on the (n, k) indicator matrix
                            label
MLPRegressor                ``Identity``       ``SquareLoss``
==========================  =================  =====================================

The model's dtype is that of ``coefs_`` (float64, or float32 for an estimator fitted on
float32 data). Two things differ from scikit-learn's training objective and do not change any
prediction: its square loss is half of chainrule's ``SquareLoss`` (so gradients are twice
scikit-learn's), and its L2 penalty ``alpha`` is not part of the loss returned.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..layers import Identity, Linear, ReLU, Sequential, Sigmoid, Softmax, Tanh
from ..losses import NLL, NLLM, SquareLoss

_HIDDEN = {"relu": ReLU, "tanh": Tanh, "logistic": Sigmoid, "identity": Identity}
# out_activation_ -> (output module, loss)
_OUTPUT = {"identity": (Identity, SquareLoss), "logistic": (Sigmoid, NLL),
           "softmax": (Softmax, NLLM)}


def from_sklearn(estimator):
    """``(Sequential, loss)`` computing what a fitted scikit-learn MLP computes.

    Parameters
    ----------
    estimator : sklearn.neural_network.MLPClassifier or MLPRegressor, fitted

    Returns
    -------
    (chainrule.Sequential, loss)
        The model, in eval mode, maps ``X: (n_samples, n_features_in_)`` to the
        estimator's output layer: for a classifier,
        ``chainrule._build.class_probabilities(model.predict(X))`` equals
        ``estimator.predict_proba(X)`` (multilabel: ``model.predict(X)`` does); for a
        regressor, ``model.predict(X)`` is ``estimator.predict(X)`` as (n_samples,
        n_outputs). The loss is the one its output layer is trained with (table above).

    Example
    -------
    >>> import numpy as np
    >>> import chainrule as cr
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.neural_network import MLPClassifier
    >>> from chainrule.export import from_sklearn
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier((16,), max_iter=500, random_state=0).fit(X, y)
    >>> model, loss = from_sklearn(clf)
    >>> bool(np.allclose(model.predict(X), clf.predict_proba(X)))
    True
    >>> print(cr.explain(model, loss, X[:20], y[:20]))                  # doctest: +SKIP
    """
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    if not isinstance(estimator, MLPClassifier | MLPRegressor):
        hint = (" (chainrule's own estimators already hold their network: use .model_)"
                if hasattr(estimator, "model_") else "")
        raise InputError("from_sklearn expected a fitted sklearn.neural_network.MLPClassifier "
                         f"or MLPRegressor, got {type(estimator).__module__}."
                         f"{type(estimator).__qualname__}{hint}")
    name = type(estimator).__name__
    if not hasattr(estimator, "coefs_"):
        raise InputError(f"from_sklearn expected a fitted {name}, got one not fitted yet "
                         "(call fit first)")
    if estimator.activation not in _HIDDEN or estimator.out_activation_ not in _OUTPUT:
        raise InputError(f"from_sklearn expected activation in {sorted(_HIDDEN)} and "
                         f"out_activation_ in {sorted(_OUTPUT)}, got "
                         f"{estimator.activation!r} and {estimator.out_activation_!r}")
    Hidden = _HIDDEN[estimator.activation]
    Output, Loss = _OUTPUT[estimator.out_activation_]
    modules = []
    last = len(estimator.coefs_) - 1
    for l, (W, W0) in enumerate(zip(estimator.coefs_, estimator.intercepts_, strict=True)):
        modules += [_linear(W, W0), Output() if l == last else Hidden()]
    return Sequential(*modules).eval(), Loss()


def _linear(W: np.ndarray, W0: np.ndarray) -> Linear:
    """A ``Linear`` holding a copy of ``W`` (m, n) and ``W0`` (n,)."""
    layer = Linear(*W.shape, rng=0, dtype=W.dtype)
    layer.W.data[...] = W
    layer.W0.data[...] = W0.reshape(1, -1)
    return layer
