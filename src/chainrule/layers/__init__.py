"""The modules a network is built from."""

from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Step, Tanh
from .batchnorm import BatchNorm
from .dropout import Dropout
from .linear import Linear
from .sequential import Sequential

__all__ = [
    "BatchNorm", "Dropout", "Identity", "LeakyReLU", "Linear", "ReLU", "Sequential",
    "Sigmoid", "Softmax", "Step", "Tanh",
]
