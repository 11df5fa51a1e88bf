"""``to_onnx``: a chainrule model as an ONNX graph, for ONNX Runtime and other runtimes.

The graph is what ``model.predict`` computes, module by module, in eval mode::

    X: (N, m) ─ Linear: MatMul(A, W), Add(·, W0) ─ activation ─ ... ─▶ A: (N, n_out)

=================  ==========================================================================
chainrule          ONNX operators
=================  ==========================================================================
``Linear``         ``MatMul`` then ``Add``: ``Z = A_prev @ W + W0``, W (m, n) and W0 (1, n)
                   as stored (initializers named by parameter path, ``modules.0.W``)
``Step``           ``GreaterOrEqual(Z, 0)`` cast to the dtype: 1 where z ≥ 0
``ReLU``,          ``Relu``, ``Sigmoid``, ``Tanh``, ``Identity``, ``LeakyRelu(alpha)``
``Sigmoid``, ...   (in float64 ``Where(Z ≥ 0, Z, alpha·Z)``: an attribute is float32)
``Softmax``        ``Softmax(axis=1)``: over each row
``Dropout``        nothing (eval: identity); ``scaling="notes"``: ``Mul`` by 1 − p
``BatchNorm``      ``BatchNormalization`` with the running statistics and ``eps``;
                   ``eps_inside="std"``: ``(Z − μ) / (sqrt(σ²) + eps)`` as ``Sub``,
                   ``Sqrt``, ``Add``, ``Div``, then ``Mul`` by G and ``Add`` B
=================  ==========================================================================

The batch dimension is dynamic (``N``); inputs and outputs have the model's dtype (float32 or
float64; a model without parameters, float32). A module whose dtype differs from its input
gets a ``Cast`` first, as chainrule casts. Whatever mode the model is in, the graph is eval
mode's: dropout is off and BatchNorm uses its running statistics.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputError
from ..layers import (
    BatchNorm,
    Dropout,
    Identity,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    Softmax,
    Step,
    Tanh,
)
from ._walk import leaves, unsupported

DEFAULT_OPSET = 17  # ONNX Runtime has run it since 1.12 (2022), onnxruntime-web too
MIN_OPSET = 13  # Softmax over one axis (opset 13's definition); GreaterOrEqual needs 12
INPUT, OUTPUT = "X", "A"

# chainrule class -> the ONNX operator of its elementwise form (no settings)
_ELEMENTWISE = {ReLU: "Relu", Sigmoid: "Sigmoid", Tanh: "Tanh", Identity: "Identity"}
_CLASSES = (Linear, Step, ReLU, Sigmoid, Tanh, Identity, Softmax, LeakyReLU, Dropout, BatchNorm)
_KNOWN = ["Linear", "Step", "ReLU", "Sigmoid", "Tanh", "Identity", "Softmax", "LeakyReLU",
          "Dropout", "BatchNorm", "Sequential"]


def to_onnx(model, path: str | os.PathLike, *, opset: int | None = None):
    """Write ``model`` as an ONNX file at ``path``, atomically; return the ``onnx.ModelProto``.

    Parameters
    ----------
    model : chainrule.Sequential (nested ones too) or one chainrule module
        Only chainrule's own modules translate (see the table in this module's docstring); a
        user's module or a subclass raises :class:`~chainrule.ChainruleError` naming it.
    path : str or os.PathLike
        Written through a temporary file in the same folder, so an existing file is replaced
        only by a complete one.
    opset : int, default None
        ONNX operator set, from 13 to the installed ``onnx``'s newest; None: 17.

    The graph takes ``X: (N, m)`` and gives ``A: (N, n_out)``, equal to ``model.predict(X)``
    (to float rounding: a runtime may sum a matrix product in another order). It is checked
    with ``onnx.checker.check_model(..., full_check=True)`` before it is written.

    Example
    -------
    >>> import numpy as np, onnxruntime as ort                    # doctest: +SKIP
    >>> import chainrule as cr
    >>> from chainrule.export import to_onnx
    >>> model = cr.Sequential(cr.Linear(4, 8, rng=0), cr.ReLU(), cr.Linear(8, 3, rng=1),
    ...                       cr.Softmax())
    >>> _ = to_onnx(model, "model.onnx")                           # doctest: +SKIP
    >>> session = ort.InferenceSession("model.onnx")               # doctest: +SKIP
    >>> X = np.ones((5, 4), np.float32)
    >>> session.run(None, {"X": X})[0].shape                       # doctest: +SKIP
    (5, 3)
    """
    proto = model_proto(model, opset=opset)
    write(proto, path)
    return proto


def model_proto(model, *, opset: int | None = None, standardise=None, unstandardise=None,
                classes=None, metadata=None, where: str = "to_onnx"):
    """The checked ``onnx.ModelProto`` of ``model``, as :func:`to_onnx` writes it.

    The command line adds what ``chainrule predict`` does around the network:
    ``standardise=(mean, std)`` puts ``(X − mean) / std`` first, so the graph takes raw
    features; ``unstandardise=(mean, scale)`` puts ``A · scale + mean`` last (a regression's
    targets in their units); ``classes`` (names, in the order of the outputs) adds a second
    output ``label``: the most probable class's name per row, as ``predict`` prints it.
    ``metadata`` (str -> str) goes into the model's ``metadata_props``.
    """
    import onnx
    from onnx import helper

    opset = _check_opset(opset, onnx, where)
    graph = _Graph(leaves(model, where), where)
    if standardise is not None:
        graph.standardise(*standardise)
    graph.network()
    if unstandardise is not None:
        graph.unstandardise(*unstandardise)
    outputs = [graph.output()]
    if classes is not None:
        outputs.append(graph.labels([str(c) for c in classes]))
    from .. import __version__
    g = helper.make_graph(graph.nodes, "chainrule", [graph.input()], outputs, graph.initializers,
                          doc_string=f"chainrule {__version__}: {_describe(model)}")
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(g, opset_imports=opsets, producer_name="chainrule",
                              producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets))
    helper.set_model_props(proto, dict(metadata or {}))
    size = proto.ByteSize()
    if size >= 2**31:  # one protobuf message holds at most 2 GiB
        raise InputError(f"{where} expected a model under 2 GiB (protobuf's limit), got "
                         f"{size / 2**30:.1f} GiB")
    onnx.checker.check_model(proto, full_check=True)
    return proto


def write(proto, path: str | os.PathLike) -> None:
    """Serialise ``proto`` to ``path`` atomically."""
    from ..serialization import atomic_write_bytes
    atomic_write_bytes(path, proto.SerializeToString())


def _check_opset(opset, onnx, where: str) -> int:
    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        return min(DEFAULT_OPSET, newest)
    if type(opset) is not int or not MIN_OPSET <= opset <= newest:
        raise InputError(f"{where} expected opset as an int from {MIN_OPSET} to {newest} (the "
                         f"installed onnx's newest), got {opset!r}")
    return opset


def _describe(model) -> str:
    return " → ".join(type(m).__name__ for _, m in leaves(model, "to_onnx")) or "identity"


class _Graph:
    """Nodes and initializers, built module by module from the input ``X``.

    ``A`` is the name of the tensor so far, ``dtype`` its NumPy dtype and ``width`` its
    number of columns (None until a module fixes it).
    """

    def __init__(self, modules, where: str):
        for path, m in modules:  # refuse before reading anything off a module
            if type(m) not in _CLASSES:
                raise unsupported(where, path, m, _KNOWN)
        self.modules, self.where = modules, where
        self.nodes, self.initializers, self.names = [], [], set()
        params = [p for _, m in modules for p in m.parameters()]
        self.input_dtype = params[0].data.dtype if params else np.dtype(np.float32)
        self.dtype, self.A = self.input_dtype, INPUT
        self.input_width = self.width = None

    # -- plumbing ------------------------------------------------------------------------
    def const(self, name: str, value, dtype=None) -> str:
        from onnx import numpy_helper
        value = np.asarray(value, dtype=dtype or self.dtype)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        """Add ``op``; its output (named ``name``, made unique) becomes the tensor so far."""
        from onnx import helper
        out, k = name, 1
        while out in self.names:
            k += 1
            out = f"{name}_{k}"
        self.names.add(out)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        self.A = out
        return out

    def cast_to(self, dtype: np.dtype, path: str) -> None:
        from onnx import helper
        if dtype != self.dtype:
            self.node("Cast", [self.A], f"{path}.cast",
                      to=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
            self.dtype = np.dtype(dtype)

    def fix_width(self, n: int, path: str, module) -> None:
        if self.width is None:  # the modules before it keep their input's width
            self.input_width = self.width = n
        elif self.width != n:
            raise InputError(f"{self.where}: {path} ({module!r}) expected {n} features, but "
                             f"the module before it gives {self.width}")

    def input(self):
        from onnx import helper
        return helper.make_tensor_value_info(
            INPUT, helper.np_dtype_to_tensor_dtype(self.input_dtype), ["N", self.input_width])

    def output(self):
        from onnx import helper
        if self.A == INPUT:  # a model of no modules, or of Dropouts only
            self.node("Identity", [self.A], OUTPUT)
        else:  # the last node's output becomes A
            last = self.nodes[-1]
            self.names.discard(last.output[0])
            last.output[0] = last.name = OUTPUT
            self.A = OUTPUT
        return helper.make_tensor_value_info(
            OUTPUT, helper.np_dtype_to_tensor_dtype(self.dtype), ["N", self.width])

    # -- the network -----------------------------------------------------------------------
    def network(self) -> None:
        for path, m in self.modules:
            cls = type(m)
            if cls is Linear:
                self.linear(path, m)
            elif cls is BatchNorm:
                self.batchnorm(path, m)
            elif cls in _ELEMENTWISE:
                self.node(_ELEMENTWISE[cls], [self.A], f"{path}.A")
            elif cls is LeakyReLU and self.dtype == np.float32:
                self.node("LeakyRelu", [self.A], f"{path}.A", alpha=float(m.alpha))
            elif cls is LeakyReLU:  # an attribute is float32: alpha as a float64 constant
                self.leaky_relu(path, m)
            elif cls is Softmax:
                self.node("Softmax", [self.A], f"{path}.A", axis=1)
            elif cls is Step:  # (Z ≥ 0) in Z's dtype
                dtype, zero = self.dtype, self.const(f"{path}.zero", 0)
                self.node("GreaterOrEqual", [self.A, zero], f"{path}.step")
                self.dtype = np.dtype(bool)
                self.cast_to(dtype, path)
            elif cls is Dropout:
                if getattr(m, "scaling", "inverted") == "notes":  # eval multiplies by 1 − p
                    self.node("Mul", [self.A, self.const(f"{path}.keep", 1 - m.p)], f"{path}.A")
            else:
                raise unsupported(self.where, path, m, _KNOWN)

    def linear(self, path: str, m: Linear) -> None:
        self.cast_to(m.W.data.dtype, path)
        self.fix_width(m.m, path, m)
        W, W0 = self.const(f"{path}.W", m.W.data), self.const(f"{path}.W0", m.W0.data)
        AW = self.node("MatMul", [self.A, W], f"{path}.AW")
        self.node("Add", [AW, W0], f"{path}.Z")  # Z = A_prev W + W0
        self.width = m.n

    def leaky_relu(self, path: str, m: LeakyReLU) -> None:
        """``Where(Z ≥ 0, Z, alpha·Z)``, bit for bit chainrule's ``Z · (1 or alpha)``. Not
        ``PRelu``, which ONNX Runtime runs in float64 only at opsets 16 to 18."""
        Z = self.A
        nonnegative = self.node("GreaterOrEqual", [Z, self.const(f"{path}.zero", 0)],
                                f"{path}.nonnegative")
        alpha_Z = self.node("Mul", [Z, self.const(f"{path}.alpha", m.alpha)], f"{path}.alphaZ")
        self.node("Where", [nonnegative, Z, alpha_Z], f"{path}.A")

    def batchnorm(self, path: str, m: BatchNorm) -> None:
        self.cast_to(m.G.data.dtype, path)
        self.fix_width(m.n, path, m)
        mean, var = m.running_mean, m.running_var
        if getattr(m, "eps_inside", "variance") == "variance":  # (Z − μ) / sqrt(σ² + eps)
            names = [self.const(f"{path}.{k}", v.reshape(-1)) for k, v in
                     (("G", m.G.data), ("B", m.B.data), ("running_mean", mean),
                      ("running_var", var))]
            self.node("BatchNormalization", [self.A, *names], f"{path}.A",
                      epsilon=float(m.eps))
            return
        # eps_inside="std", the notes' Key Equation 37: Z̄ = (Z − μ) / (σ + eps)
        D = self.node("Sub", [self.A, self.const(f"{path}.running_mean", mean)], f"{path}.D")
        std = self.node("Sqrt", [self.const(f"{path}.running_var", var)], f"{path}.std")
        std_eps = self.node("Add", [std, self.const(f"{path}.eps", m.eps)], f"{path}.std_eps")
        Zbar = self.node("Div", [D, std_eps], f"{path}.Zbar")
        GZ = self.node("Mul", [Zbar, self.const(f"{path}.G", m.G.data)], f"{path}.GZbar")
        self.node("Add", [GZ, self.const(f"{path}.B", m.B.data)], f"{path}.A")

    # -- what the command line adds --------------------------------------------------------
    def standardise(self, mean, std) -> None:
        mean, std = np.asarray(mean).reshape(1, -1), np.asarray(std).reshape(1, -1)
        self.input_width = mean.shape[1]
        D = self.node("Sub", [self.A, self.const("input.mean", mean)], "input.centred")
        self.node("Div", [D, self.const("input.std", std)], "input.standardised")
        self.width = self.input_width

    def unstandardise(self, mean, scale) -> None:
        AS = self.node("Mul", [self.A, self.const("target.scale", np.reshape(scale, (1, -1)))],
                       "target.scaled")
        self.node("Add", [AS, self.const("target.mean", np.reshape(mean, (1, -1)))],
                  "target.value")

    def labels(self, classes: list[str]):
        """Output ``label`` (N,): ``classes[i]`` for the most probable class ``i`` of each
        row of ``A``, ties to the lower class (``_build.class_indices``)."""
        from onnx import TensorProto, helper
        if self.width == 1:  # P(class 1): class 1 where it is > 0.5
            half = self.const("label.half", 0.5)
            above = self.node("Greater", [OUTPUT, half], "label.above")
            index = self.node("Cast", [above], "label.index2d", to=TensorProto.INT64)
            axes = self.const("label.axes", [1], np.int64)
            index = self.node("Squeeze", [index, axes], "label.index")
        else:  # the first maximum of each row
            index = self.node("ArgMax", [OUTPUT], "label.index", axis=1, keepdims=0)
        names = helper.make_tensor("label.classes", TensorProto.STRING, [len(classes)],
                                   [c.encode() for c in classes])
        self.initializers.append(names)
        self.nodes.append(helper.make_node("Gather", ["label.classes", index], ["label"],
                                           name="label", axis=0))
        return helper.make_tensor_value_info("label", TensorProto.STRING, ["N"])
