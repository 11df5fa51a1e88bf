"""A model that can leave: chainrule models to ONNX and PyTorch, and models from PyTorch and
scikit-learn into chainrule.

=================================  =====================================================
``to_onnx(model, path)``           an ONNX file for ONNX Runtime (:mod:`.onnx_graph`)
``to_torch(model)``                a ``torch.nn.Sequential`` (:mod:`.torch_modules`)
``from_torch(module)``             a chainrule ``Sequential`` from live PyTorch modules
``from_sklearn(estimator)``        ``(Sequential, loss)`` from a fitted scikit-learn MLP
                                   (:mod:`.sklearn_mlp`)
=================================  =====================================================

onnx, torch and scikit-learn are optional: each is imported inside the function that needs
it, so ``import chainrule.export`` needs none of them. Nothing here pickles or unpickles, and
nothing reads a PyTorch file: ``from_torch`` takes module objects already in memory.
"""

from .onnx_graph import to_onnx
from .sklearn_mlp import from_sklearn
from .torch_modules import from_torch, to_torch

__all__ = ["from_sklearn", "from_torch", "to_onnx", "to_torch"]
