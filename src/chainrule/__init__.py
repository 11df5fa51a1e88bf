"""chainrule: neural networks on NumPy, back-propagation made explicit (MIT 6.390, chapter 6).

>>> import chainrule as cr
"""

from . import schedules as schedules  # cr.schedules.InverseTime(...)
from .check import check_module
from .errors import ChainruleError, DivergenceError, ModelFileError
from .explain import explain
from .gradcheck import gradcheck
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
    Step,
    Tanh,
)
from .losses import NLL, NLLM, AbsoluteLoss, SquareLoss
from .module import Module
from .optimizers import SGD, Adadelta, Adagrad, Adam, Momentum, RMSprop
from .parameter import Parameter
from .serialization import load, load_optimizer, save
from .training import EarlyStopping, History, fit, resume

__version__ = "0.1.0"

__all__ = [
    "SGD", "Adadelta", "Adagrad", "Adam", "EarlyStopping", "History", "Momentum", "RMSprop",
    "check_module", "explain", "fit", "load", "load_optimizer", "resume", "save",
    "AbsoluteLoss", "BatchNorm", "ChainruleError", "DivergenceError", "Dropout", "Identity",
    "LeakyReLU", "Linear", "Module", "ModelFileError", "NLL", "NLLM", "Parameter", "ReLU",
    "Sequential", "Sigmoid", "Softmax", "SquareLoss", "Step", "Tanh", "gradcheck",
]
