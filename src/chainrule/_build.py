"""What the command line and the scikit-learn estimators build alike, in one place.

- :func:`build_mlp`: the network ``[Linear → (BatchNorm) → activation → (Dropout)] × H →
  Linear → output`` and its loss, the output layer and loss chosen by :func:`output_layer`;
- :data:`OPTIMIZERS`, :func:`make_optimizer`, :func:`default_lr`: optimizers by name;
- :func:`class_probabilities`, :func:`class_indices`: classes from a classifier's output;
- :func:`target_scale`, :func:`standardise`, :func:`unstandardise`: the standardised targets a
  regression network is trained on, and predictions back in the targets' units.

============== =========== ==================== ================
task           k           output, loss         output units
============== =========== ==================== ================
classification 2 classes   Sigmoid, NLL         1: P(class 1)
classification ≥ 3 classes Softmax, NLLM        k: P(each class)
regression     k targets   Identity, SquareLoss k
============== =========== ==================== ================
"""

from __future__ import annotations

import inspect

import numpy as np

from ._rng import as_source
from .errors import InputError
from .layers import (
    BatchNorm,
    Dropout,
    Identity,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from .losses import NLL, NLLM, SquareLoss
from .optimizers import OPTIMIZERS as _BY_CLASS_NAME

TASKS = ("classification", "regression")

# activation name -> (module class, Linear init that keeps the variance of Z steady for it)
ACTIVATIONS = {"relu": (ReLU, "he"), "leaky_relu": (LeakyReLU, "he"), "tanh": (Tanh, "xavier"),
               "sigmoid": (Sigmoid, "xavier"), "identity": (Identity, "xavier")}

# "sgd", "momentum", "adagrad", "rmsprop", "adadelta", "adam" -> class
OPTIMIZERS = {name.lower(): cls for name, cls in _BY_CLASS_NAME.items()}


# -- the network ---------------------------------------------------------------------------

def output_layer(task: str, k: int):
    """``(output units, output module, loss)`` for ``k`` classes or regression outputs.

    Two classes need one sigmoid unit, ``P(class 1)``; more a softmax over ``k`` units.
    """
    if task == "classification":
        return (1, Sigmoid(), NLL()) if k == 2 else (k, Softmax(), NLLM())
    if task == "regression":
        return k, Identity(), SquareLoss()
    raise InputError(f"output_layer expected a task in {TASKS}, got {task!r}")


def build_mlp(n_in: int, hidden, task: str, k: int, *, activation: str = "relu",
              init: str | None = None, dropout: float = 0.0, batch_norm: bool = False,
              dropout_scaling: str = "inverted", eps_inside: str = "variance", rng=None,
              dtype=np.float32):
    """A multi-layer perceptron for ``task`` and the loss to train it on.

    ::

        [Linear → (BatchNorm) → activation → (Dropout)] × len(hidden) → Linear → output

    Parameters
    ----------
    n_in : int
        Features of ``X``: the network maps ``(n_samples, n_in)`` to
        ``(n_samples, output units)`` (see :func:`output_layer`).
    hidden : sequence of int
        Units of each hidden layer; empty for a linear model.
    task : {"classification", "regression"}
    k : int
        Classes (classification) or target columns (regression).
    activation : str, default "relu"
        A key of :data:`ACTIVATIONS`.
    init : {"gaussian", "xavier", "he"} or None, default None
        Initialisation of the hidden ``Linear`` layers; None: He's for ReLU-like activations,
        else Glorot's. The output ``Linear`` always gets Glorot's.
    dropout : float in [0, 1), default 0
        Inverted dropout after each hidden activation; 0: no ``Dropout`` module.
    batch_norm : bool, default False
        ``BatchNorm`` between each hidden ``Linear`` and its activation.
    dropout_scaling, eps_inside : str, defaults "inverted" and "variance"
        ``Dropout``'s ``scaling`` and ``BatchNorm``'s ``eps_inside`` (the notes' conventions
        are ``"notes"`` and ``"std"``).
    rng : None, int, numpy.random.Generator or numpy.random.RandomState
        Initial weights, then the dropout masks (one stream, drawn in module order).
    dtype : float32 or float64, default float32

    Returns
    -------
    (Sequential, Loss)
    """
    Activation, own_init = ACTIVATIONS[activation]
    init = init or own_init
    rng = as_source(rng)  # one stream for every module, even from an int seed
    modules, m = [], n_in
    for n in hidden:
        modules.append(Linear(m, n, init=init, rng=rng, dtype=dtype))
        if batch_norm:
            modules.append(BatchNorm(n, eps_inside=eps_inside, dtype=dtype))
        modules.append(Activation())
        if dropout > 0:
            modules.append(Dropout(dropout, scaling=dropout_scaling, rng=rng))
        m = n
    n_out, output, loss = output_layer(task, k)
    # The output layer feeds a sigmoid, softmax or nothing: Glorot's variance suits all.
    modules += [Linear(m, n_out, init="xavier", rng=rng, dtype=dtype), output]
    return Sequential(*modules), loss


# -- optimizers ----------------------------------------------------------------------------

def default_lr(name: str) -> float:
    """The step size η that optimizer ``name`` uses when given none."""
    return inspect.signature(OPTIMIZERS[name]).parameters["lr"].default


def make_optimizer(name: str, lr=None, weight_decay: float = 0.0):
    """Optimizer ``name`` (a key of :data:`OPTIMIZERS`) with step size ``lr`` (a float or a
    schedule; None: its own default) and penalty λ = ``weight_decay``."""
    return OPTIMIZERS[name](lr=default_lr(name) if lr is None else lr, weight_decay=weight_decay)


# -- predictions ---------------------------------------------------------------------------

def class_probabilities(A: np.ndarray) -> np.ndarray:
    """Class probabilities, float64 of shape (n_samples, n_classes), from the output ``A``.

    ``A`` is (n_samples, 1), ``P(class 1)`` of a sigmoid, or (n_samples, k) of a softmax.
    """
    A = A.astype(np.float64)
    if A.shape[1] == 1:
        return np.hstack([1.0 - A, A])
    return A / A.sum(axis=1, keepdims=True)  # float32 softmax rows sum to 1 ± 1e-7


def class_indices(A: np.ndarray) -> np.ndarray:
    """The most probable class of each row of the output ``A``, shape (n_samples,).

    The argmax of :func:`class_probabilities`, so the two always agree; a tie goes to the
    lower class (a sigmoid output of exactly 0.5 to class 0).
    """
    return class_probabilities(A).argmax(axis=1)


def target_scale(y: np.ndarray):
    """``(mean, scale)``, float64 of shape (n_outputs,), of targets ``y`` (n_samples,) or
    (n_samples, n_outputs): per column, the mean and the standard deviation (1 where it is 0).
    """
    Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    std = Y.std(axis=0)
    return Y.mean(axis=0), np.where(std > 0, std, 1.0)


def standardise(y: np.ndarray, mean, scale) -> np.ndarray:
    """``(y − mean) / scale``: the targets a regression network is trained on."""
    return (y - mean) / scale


def unstandardise(A: np.ndarray, mean, scale) -> np.ndarray:
    """``A · scale + mean`` in float64: a regression network's output in the targets' units."""
    return A.astype(np.float64) * scale + mean
