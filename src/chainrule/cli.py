"""The ``chainrule`` command: train a network on a data set, evaluate or use a saved model.

    chainrule train                        # an MLP on digits; prints test accuracy
    chainrule train --data iris --hidden 16 16 --epochs 100 --save iris.safetensors
    chainrule train --data my.csv --label price --optimizer sgd --lr 0.01
    chainrule evaluate iris.safetensors
    chainrule predict iris.safetensors new_rows.csv
    chainrule export iris.safetensors --onnx iris.onnx --torch iris.pt
"""

from __future__ import annotations

import argparse
import codecs
import csv
import io
import json
import math
import os
import re
import stat
import sys
import unicodedata
import warnings

import numpy as np

from ._build import (
    ACTIVATIONS,
    OPTIMIZERS,
    build_mlp,
    class_indices,
    default_lr,
    make_optimizer,
    standardise,
    target_scale,
    unstandardise,
)
from .errors import ChainruleError, DivergenceError


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"chainrule: error: {message} (see chainrule {self.prog.split()[-1]} "
                     "--help)\n" if " " in self.prog else f"chainrule: error: {message}\n")


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _seed(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {text}")
    return value


def _batch_size(text):
    return None if text in ("full", "all", "none") else _positive_int(text)


def _fraction(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text}")
    return value


def _nonnegative(text):
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number ≥ 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="chainrule", description=(
        "Train small neural networks with explicit back-propagation (MIT 6.390, chapter 6)."),
        epilog="Run 'chainrule train' with no options to train an MLP on the digits data set.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                metavar="{train,evaluate,predict,export}")

    t = sub.add_parser("train", help="train a network and print its test accuracy",
                       description="Train an MLP and report its accuracy (classification) "
                       "or R² and MSE (regression) on a held-out test split.")
    _data_options(t.add_argument_group("data"))
    _network_options(t.add_argument_group("network"))
    _training_options(t.add_argument_group("training"))
    _output_options(t.add_argument_group("output"))

    e = sub.add_parser("evaluate", help="evaluate a saved model on its test split or a CSV",
                       description="Print test accuracy (or R² and MSE) of a model saved by "
                       "'chainrule train --save'.")
    e.add_argument("model", help="a .safetensors file written by 'chainrule train --save'")
    e.add_argument("data", nargs="?", help="a labelled CSV (default: the test split the "
                   "model was trained with)")

    p = sub.add_parser("predict", help="print predictions of a saved model for a CSV",
                       description="Print one prediction per row of DATA.csv.")
    p.add_argument("model", help="a .safetensors file written by 'chainrule train --save'")
    p.add_argument("data", help="a CSV file with a header row and the model's feature columns")
    p.add_argument("--output", metavar="PATH", help="write predictions to this CSV instead")
    _export_parser(sub)
    return parser


def _export_parser(sub) -> None:
    x = sub.add_parser("export", help="write a saved model as ONNX or PyTorch",
                       description="Write a saved model as an ONNX graph (for ONNX Runtime) "
                       "and/or a PyTorch state_dict file. Both take the raw features that "
                       "'chainrule predict' reads: the model file's feature scaling is folded "
                       "into the ONNX graph and stored beside the PyTorch weights.")
    x.add_argument("model", help="a .safetensors model file ('chainrule train --save' or "
                   "chainrule.save)")
    x.add_argument("--onnx", metavar="PATH", help="write an ONNX graph (input X, output A, "
                   "and label for a classifier)")
    x.add_argument("--torch", metavar="PATH", help="write torch.save of tensors, numbers and "
                   "strings only: read it with torch.load(PATH, weights_only=True)")
    x.add_argument("--opset", type=_positive_int, help="ONNX operator set (default: 17)")


def _data_options(d) -> None:
    """``train``'s data set and test split."""
    d.add_argument("--data", default="digits", help="digits, iris, wine, breast_cancer, "
                   "diabetes, or a CSV file with a header row (default: digits)")
    d.add_argument("--label", help="label column of a CSV file (default: the last column)")
    d.add_argument("--task", choices=["classification", "regression"],
                   help="for a CSV file (default: guessed from the label column)")
    d.add_argument("--test-size", type=_fraction, default=0.2,
                   help="fraction held out for testing (default: 0.2)")


def _network_options(n) -> None:
    """``train``'s network: layers, activation, initialisation, regularizers in it."""
    n.add_argument("--hidden", type=_positive_int, nargs="*", default=[128], metavar="N",
                   help="hidden layer sizes (default: 128); give none for a linear model")
    n.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu",
                   help="hidden activation (default: relu)")
    n.add_argument("--init", choices=["gaussian", "xavier", "he"], default=None,
                   help="weight initialisation (default: he for relu, else xavier)")
    n.add_argument("--dropout", type=_fraction, default=0.0,
                   help="dropout probability after each hidden layer (default: 0)")
    n.add_argument("--dropout-scaling", choices=["inverted", "notes"], default=None,
                   help="with --dropout: 'inverted' scales kept units by 1/(1 − p) in "
                   "training, 'notes' multiplies by 1 − p at test time (default: inverted)")
    n.add_argument("--batch-norm", action="store_true", help="BatchNorm after each hidden Linear")
    n.add_argument("--batch-norm-eps-inside", choices=["variance", "std"], default=None,
                   help="with --batch-norm: divide by sqrt(σ² + eps) ('variance') or by "
                   "σ + eps, the notes' Key Equation 37 ('std') (default: variance)")
    n.add_argument("--dtype", choices=["float32", "float64"], default="float32")


def _training_options(o) -> None:
    """``train``'s options of ``fit``."""
    o.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    o.add_argument("--lr", type=_nonnegative, help="step size η (default: the optimizer's "
                   "own, e.g. 0.001 for adam, 0.01 for sgd)")
    o.add_argument("--schedule", choices=["constant", "step", "exponential", "inverse_time",
                                          "cosine"], default="constant",
                   help="step-size schedule η(t) over the steps (default: constant)")
    o.add_argument("--epochs", type=_positive_int, default=30, help="(default: 30)")
    o.add_argument("--batch-size", type=_batch_size, default=32,
                   help="1 = SGD, 'full' = batch gradient descent (default: 32)")
    o.add_argument("--weight-decay", type=_nonnegative, default=0.0,
                   help="λ of the penalty λ‖W‖² (default: 0)")
    o.add_argument("--input-noise", type=_nonnegative, default=0.0,
                   help="σ of Gaussian noise added to training inputs (default: 0)")
    o.add_argument("--clip-grad-norm", type=_nonnegative, default=None)
    o.add_argument("--validation-split", type=_fraction, default=0.1,
                   help="fraction of training rows for validation (default: 0.1)")
    o.add_argument("--early-stopping", type=int, default=0, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without validation improvement and "
                   "keep the best weights (default: off)")
    o.add_argument("--min-delta", type=_nonnegative, default=0.0,
                   help="with --early-stopping: the least decrease that counts as improving")
    o.add_argument("--no-shuffle", dest="shuffle", action="store_false",
                   help="keep the rows in order instead of reshuffling every epoch")
    o.add_argument("--sampling", choices=["epochs", "replacement"], default="epochs",
                   help="'epochs': each epoch visits every row once; 'replacement': each "
                   "batch's rows are drawn with replacement, the notes' 6.6.2 (default: epochs)")
    o.add_argument("--seed", type=_seed, default=0,
                   help="seed of every random choice (default: 0)")


def _output_options(out) -> None:
    """What ``train`` writes and shows."""
    out.add_argument("--save", metavar="PATH", help="write the trained model (.safetensors)")
    out.add_argument("--report", metavar="PATH", help="write an HTML report of the run")
    out.add_argument("--checkpoint", metavar="PATH",
                     help="after every epoch, write all that resuming the run needs")
    prog = out.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="always show progress bars")
    prog.add_argument("--no-progress", dest="progress", action="store_false",
                      help="never show progress bars")


# -- train ---------------------------------------------------------------------------------

def _load_data(args):
    from . import datasets
    if args.data in datasets.BUNDLED:
        return datasets.load(args.data, test_size=args.test_size, rng=args.seed)
    try:
        header = _check_csv(args.data, args.label)
    except OSError as e:
        raise ChainruleError(
            f"--data expected one of {sorted(datasets.BUNDLED)} or a CSV file, "
            f"got {args.data!r} ({e.strerror})") from None
    if args.label is None:  # default: the last column of the header
        args.label = header[-1]
    data = datasets.load_csv(args.data, args.label, task=args.task, test_size=args.test_size,
                             rng=args.seed)
    bad = _unprintable(data.classes)
    if bad is not None:
        raise ChainruleError(f"{args.data}: expected class names in the label column "
                             f"{_short(args.label)} without control characters or line "
                             f"breaks (predict writes one per line), got {_short(bad)}")
    return data


def _unprintable(names: list) -> str | None:
    """The first of ``names`` holding a control character or a line break, if any."""
    return next((n for n in names if any(
        unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in n)), None)


# -- CSV files: what datasets.read_csv would turn into a traceback, a warning or a wrong class

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_csv(path, label: str | None) -> list[str]:
    """The header of the CSV file ``path``, once the file is known to be UTF-8 text whose
    numbers fit in float32 and whose numeric ``label`` column (default: the last) is finite.

    Any other file raises :class:`ChainruleError` naming ``path``, the line and what was
    expected; a missing one the usual ``OSError``.
    """
    where = os.fspath(path)
    if not os.path.isfile(where) and os.path.exists(where):  # a FIFO would block, a folder...
        raise ChainruleError(f"{where}: expected a CSV file, got a directory or special file")
    fd = os.open(where, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # never waits on a FIFO
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for one since the check above
            raise ChainruleError(f"{where}: expected a CSV file, got a special file")
        data = f.read()
    if b"\0" in data:
        line = data.count(b"\n", 0, data.index(b"\0")) + 1
        raise ChainruleError(f"{where}: expected a text CSV file, got binary data (a NUL byte "
                             f"on line {line})")
    if data.startswith(codecs.BOM_UTF8):  # Excel's "CSV UTF-8": not part of the first name
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ChainruleError(f"{where}: expected UTF-8 text, got byte 0x{data[e.start]:02x} on "
                             f"line {line}") from None
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next((r for r in reader if any(c.strip() for c in r)), None)
        if header is None:
            raise ChainruleError(f"{where}: expected a header row and data rows, got an empty "
                                 "file")
        header = [h.strip() for h in header]
        li = header.index(label) if label in header else (
            len(header) - 1 if label is None else None)
        if li is not None:
            _check_labels(where, reader, li, header[li])
    except csv.Error as e:
        raise ChainruleError(f"{where}: expected a CSV file, got {e}") from None
    _check_range(where, text, header, li)
    return header


def _check_labels(where: str, reader, li: int, name: str) -> None:
    """A label column of numbers holds finite float32 ones (one of names may be "inf")."""
    non_finite = None
    for row in reader:
        if li < len(row):
            x = _number(row[li])
            if x is None and row[li].strip():
                return  # class names
            if x is not None and non_finite is None and not abs(x) <= _FLOAT32_MAX:
                non_finite = (reader.line_num, row[li].strip())
    if non_finite is not None:
        raise ChainruleError(f"{where} line {non_finite[0]}: expected a finite number in the "
                             f"label column {_short(name)} (within float32's range), "
                             f"got {_short(non_finite[1])}")


# The only numbers past float32's 3.4e38 have an exponent of 38 or more, or 39 digits.
_HUGE = re.compile(r"[eE]\+?0*(?:3[89]|[4-9]\d|[1-9]\d\d+)|\d{39}")


def _check_range(where: str, text: str, header: list[str], li: int | None) -> None:
    """Every feature value fits in float32 (1e39 would become inf there): the few lines with
    a candidate are found by a pattern, then their cells are read.

    Linear in the size of ``text``: each line is read at most once (the search resumes after
    the line of a candidate), and a line number is counted only for the line reported."""
    pos, line_start = 0, 0  # line_start: a known start of a line at or before pos
    while (match := _HUGE.search(text, pos)) is not None:
        start = text.rfind("\n", line_start, match.start()) + 1 or line_start
        end = text.find("\n", match.end())
        line = text[start:] if end < 0 else text[start:end]
        pos = line_start = len(text) if end < 0 else end + 1
        try:
            cells = next(csv.reader([line]), [])
        except csv.Error:  # a line the whole file's reading reports better (a stray \r, ...)
            continue
        for i, v in enumerate(cells):
            x = _number(v) if i != li else None
            if x is not None and math.isfinite(x) and abs(x) > _FLOAT32_MAX:
                column = header[i] if i < len(header) else f"#{i + 1}"
                raise ChainruleError(
                    f"{where} line {text.count(chr(10), 0, start) + 1}, column "
                    f"{_short(column)}: expected a number within float32's range "
                    f"(±{_FLOAT32_MAX:.4g}), got {_short(v.strip())}")


def _number(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def _short(value) -> str:
    """``repr(value)``, cut to fit in a one-line message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _schedule(args, lr, total_steps):
    from . import schedules
    if args.schedule == "constant":
        return lr
    steps = max(1, total_steps)
    return {
        "step": lambda: schedules.StepDecay(lr, step_size=max(1, steps // 4), gamma=0.5),
        "exponential": lambda: schedules.ExponentialDecay(lr, gamma=0.01 ** (1 / steps)),
        "inverse_time": lambda: schedules.InverseTime(lr, k=10 / steps),
        "cosine": lambda: schedules.Cosine(lr, steps),
    }[args.schedule]()


def _metrics(data, model, X, y, y_scale) -> dict:
    A = model.predict(X)
    if data.task == "classification":
        return {"accuracy": float(np.mean(class_indices(A) == y))}
    pred = unstandardise(A, *y_scale)
    Y = y.reshape(pred.shape)
    mse = float(np.mean((pred - Y) ** 2))
    r2 = 1 - float(np.sum((pred - Y) ** 2) / np.sum((Y - Y.mean(axis=0)) ** 2))
    return {"r2": r2, "mse": mse}


def _print_metrics(metrics: dict) -> None:
    if "accuracy" in metrics:
        print(f"test accuracy: {metrics['accuracy']:.3f}")
    else:
        print(f"test R²: {metrics['r2']:.3f}")
        print(f"test MSE: {metrics['mse']:.4g}")


def train(args) -> int:
    import chainrule as cr

    for flag, path in (("--save", args.save), ("--report", args.report),
                       ("--checkpoint", args.checkpoint)):
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        if folder and not os.path.isdir(folder):  # say so now, not after training
            raise ChainruleError(f"{flag} {path}: folder {folder} does not exist")
        if path and os.path.exists(path) and not os.path.isfile(path):  # a FIFO would hang
            raise ChainruleError(f"{flag} {path}: expected a regular file to write, got a "
                                 + ("directory" if os.path.isdir(path) else "special file"))
    if args.dropout_scaling is not None and args.dropout == 0:  # it would change nothing
        raise ChainruleError(f"--dropout-scaling {args.dropout_scaling} expected --dropout P "
                             "with P > 0, got no dropout")
    if args.batch_norm_eps_inside is not None and not args.batch_norm:
        raise ChainruleError(f"--batch-norm-eps-inside {args.batch_norm_eps_inside} expected "
                             "--batch-norm, got no batch norm")
    rng = np.random.default_rng(args.seed)
    data = _load_data(args)
    _check_split(args, data)  # before a network of many inputs is built only to be refused
    model, loss = build_mlp(data.X_train.shape[1], args.hidden, data.task, data.n_outputs,
                            activation=args.activation, init=args.init, dropout=args.dropout,
                            batch_norm=args.batch_norm,
                            dropout_scaling=args.dropout_scaling or "inverted",
                            eps_inside=args.batch_norm_eps_inside or "variance", rng=rng,
                            dtype=np.dtype(args.dtype))
    y_train = data.y_train
    y_scale = (0.0, 1.0)
    if data.task == "regression":  # fit standardised targets; report in original units
        mean, scale = target_scale(y_train)
        y_scale = (mean.item(), scale.item())  # one target column: two numbers in the file
        y_train = standardise(y_train, *y_scale)
    lr = default_lr(args.optimizer) if args.lr is None else args.lr
    n_fit = int(len(y_train) * (1 - args.validation_split))
    steps = args.epochs * (1 if args.batch_size is None else -(-n_fit // args.batch_size))
    opt = make_optimizer(args.optimizer, _schedule(args, lr, steps), args.weight_decay)
    early = (cr.EarlyStopping(patience=args.early_stopping, min_delta=args.min_delta)
             if args.early_stopping else None)
    print(f"{data.name}: {len(y_train)} training rows, {len(data.y_test)} test rows, "
          f"{data.X_train.shape[1]} features, " + (
              f"{data.n_outputs} classes" if data.task == "classification" else "regression"),
          file=sys.stderr)
    history = cr.fit(model, loss, data.X_train, y_train, optimizer=opt, epochs=args.epochs,
                     batch_size=args.batch_size, validation_split=args.validation_split,
                     early_stopping=early, input_noise=args.input_noise,
                     clip_grad_norm=args.clip_grad_norm, rng=rng, progress=args.progress,
                     shuffle=args.shuffle, sampling=args.sampling, checkpoint=args.checkpoint)
    metrics = _metrics(data, model, data.X_test, data.y_test, y_scale)
    if history.interrupted:
        print("training interrupted: evaluating the model as it is", file=sys.stderr)
    if args.save:
        _save(args, model, data, y_scale)
        print(f"saved model to {args.save}", file=sys.stderr)
    if args.report:
        from .report import write_report
        write_report(args.report, model=model, loss=loss, data=data, history=history,
                     settings=vars(args), metrics=metrics)
        print(f"wrote report to {args.report}", file=sys.stderr)
    _print_metrics(metrics)
    return 0


def _check_split(args, data) -> None:
    """The data set has feature columns, two classes or more (for classification) and
    training rows enough for ``--validation-split`` (as ``fit`` requires)."""
    if data.X_train.shape[1] == 0:
        raise ChainruleError(f"{data.name}: expected at least one feature column besides the "
                             f"label column {_short(args.label)}, got none")
    if data.task == "classification" and data.n_outputs < 2:
        raise ChainruleError(f"{data.name}: expected at least 2 classes in the label column "
                             f"{_short(args.label)}, got {data.n_outputs}")
    n = len(data.y_train)
    n_val = int(round(n * args.validation_split))
    if args.validation_split > 0 and not 1 <= n_val < n:
        raise ChainruleError(f"{data.name}: expected training rows enough for "
                             f"--validation-split {args.validation_split} to leave at least one "
                             f"for training and one for validation, got {n}")


def _save(args, model, data, y_scale):
    from .serialization import save_checkpoint
    meta = {"cli": {
        "task": data.task, "classes": data.classes, "features": data.feature_names,
        "data": args.data, "label": args.label, "seed": args.seed, "test_size": args.test_size,
        "y_scale": list(y_scale),
    }}
    tensors = {}
    if data.mean is not None:
        tensors = {"mean": data.mean, "std": data.std}
    save_checkpoint(args.save, model, None, meta, tensors)


# -- evaluate and predict ------------------------------------------------------------------

def _open(path):
    from .serialization import load_checkpoint
    model, _, meta, tensors = load_checkpoint(path)
    info = meta.get("cli") if isinstance(meta, dict) else None
    if not isinstance(info, dict):
        raise ChainruleError(f"{path!r} was not written by 'chainrule train --save'")
    _check_info(path, model, info, tensors)
    return model, info, tensors


_INFO = ("classes", "data", "features", "label", "seed", "task", "test_size", "y_scale")


def _check_info(path, model, info: dict, tensors: dict) -> None:
    """What ``train --save`` stored beside the model, checked against the model: any defect
    raises :class:`ChainruleError` naming the file and the field."""
    def fail(field, expected, got):
        return ChainruleError(f"{path}: metadata 'cli.{field}' expected {expected}, "
                              f"got {_short(got)}")

    if not isinstance(info, dict) or sorted(info) != sorted(_INFO):
        got = f"keys {_short(sorted(info))}" if isinstance(info, dict) else _short(info)
        raise ChainruleError(f"{path}: metadata 'cli' expected an object with keys "
                             f"{list(_INFO)}, got {got}")
    W = [p.data for p in model.parameters() if p.name == "W"]
    if not W:
        raise ChainruleError(f"{path}: expected a model with a Linear layer, got none")
    n_in, n_out = W[0].shape[0], W[-1].shape[1]
    task, classes, features = info["task"], info["classes"], info["features"]
    if task not in ("classification", "regression"):
        raise fail("task", "'classification' or 'regression'", task)
    if not (isinstance(features, list) and len(features) == n_in
            and all(isinstance(f, str) for f in features)):
        raise fail("features", f"a list of {n_in} column names (the model's inputs)", features)
    if task == "classification":
        ok = isinstance(classes, list) and all(isinstance(c, str) for c in classes) and (
            len(classes) == n_out >= 2 or (n_out == 1 and len(classes) == 2))
        if not ok or len(set(classes)) != len(classes):
            raise fail("classes", f"a list of {max(n_out, 2)} distinct class names (the "
                       "model's outputs)", classes)
        if _unprintable(classes) is not None:
            raise fail("classes", "class names without control characters or line breaks",
                       _unprintable(classes))
    elif classes != []:
        raise fail("classes", "[] for a regression model", classes)
    if not isinstance(info["data"], str):
        raise fail("data", "a data set name or CSV path", info["data"])
    if info["label"] is not None and not isinstance(info["label"], str):
        raise fail("label", "a column name or null", info["label"])
    if not (type(info["seed"]) is int and info["seed"] >= 0):
        raise fail("seed", "an int ≥ 0", info["seed"])
    if not (type(info["test_size"]) in (int, float) and 0 < info["test_size"] < 1):
        raise fail("test_size", "a number in (0, 1)", info["test_size"])
    scale = info["y_scale"]
    if not (isinstance(scale, list) and len(scale) == 2
            and all(type(v) in (int, float) and abs(v) <= _FLOAT32_MAX for v in scale)
            and scale[1] > 0):
        raise fail("y_scale", "[mean, scale], numbers within float32's range, scale > 0",
                   scale)
    if sorted(tensors) not in ([], ["mean", "std"]):
        raise ChainruleError(f"{path}: expected tensors 'extra.mean' and 'extra.std' or none, "
                             f"got {_short(sorted(tensors))}")
    for name, A in tensors.items():
        if A.shape != (n_in,) or A.dtype.kind != "f" or not np.isfinite(A).all() or (
                name == "std" and not (A > 0).all()):
            raise ChainruleError(f"{path}: tensor 'extra.{name}' expected {n_in} finite "
                                 f"numbers{' > 0' if name == 'std' else ''} (one per feature), "
                                 f"got array of shape {A.shape} and dtype {A.dtype}")


def _read_features(path, info, tensors, with_label):
    from .datasets import read_csv
    label = info["label"]
    if with_label and label is None:
        raise ChainruleError(f"{path}: the model was trained on the bundled data set "
                             f"{_short(info['data'])}, whose label has no column name: "
                             "evaluate it without a CSV file")
    header = _check_csv(path, label if with_label else "")
    if not with_label:  # a file for predict may still hold the label column: skip it
        label = label if label in header else None
    X, labels, names = read_csv(path, label)
    if names != info["features"]:
        expected = info["features"]
        first = next((i for i, (a, b) in enumerate(zip(names, expected)) if a != b),
                     min(len(names), len(expected)))
        raise ChainruleError(
            f"{path} expected feature columns {_short(expected)} (the model's {len(expected)}), "
            f"got {len(names)}; column {first + 1} should be "
            + (_short(expected[first]) if first < len(expected) else "absent")
            + ", is " + (_short(names[first]) if first < len(names) else "absent"))
    if "mean" in tensors:
        X = (X - tensors["mean"]) / tensors["std"]
    return X, labels


def evaluate(args) -> int:
    from . import datasets
    model, info, tensors = _open(args.model)
    if args.data is None:
        if info["data"] not in datasets.BUNDLED:
            ns = argparse.Namespace(data=info["data"], label=info["label"],
                                    task=info["task"], test_size=info["test_size"],
                                    seed=info["seed"])
            data = _load_data(ns)
        else:
            data = datasets.load(info["data"], test_size=info["test_size"], rng=info["seed"])
        if data.feature_names != info["features"] or (
                data.task == "classification" and data.classes != info["classes"]):
            raise ChainruleError(f"{args.model}: metadata 'cli' expected the features and "
                                 f"classes of {_short(info['data'])}, got others")
        X, y = data.X_test, data.y_test
    else:
        X, labels = _read_features(args.data, info, tensors, with_label=True)
        data = argparse.Namespace(task=info["task"])
        if info["task"] == "classification":
            index = {c: i for i, c in enumerate(info["classes"])}
            unknown = sorted(set(labels) - set(index))
            if unknown:
                raise ChainruleError(f"{args.data!r} has labels the model does not know: "
                                     f"{unknown[:5]}; known: {info['classes']}")
            y = np.array([index[v] for v in labels])
        else:
            y = np.array([_number(v) for v in labels], dtype=np.float32)
            if not np.isfinite(y).all():  # float32(None) is NaN: a label that is no number
                raise ChainruleError(f"{args.data}: expected numbers in the label column "
                                     f"{_short(info['label'])} (a regression model)")
    _finite_predictions(args.model, model, X, args.data or "its test split")
    _print_metrics(_metrics(data, model, X, y, info["y_scale"]))
    return 0


def _finite_predictions(path, model, X, data) -> np.ndarray:
    """``model.predict(X)``, which must be finite: a model file whose weights or feature
    scaling turn ``data`` into NaN or inf is an error, not a column of nan."""
    if not np.isfinite(X).all():
        raise ChainruleError(f"{path}: expected a feature scaling (extra.mean, extra.std) that "
                             f"keeps {data} finite, got NaN or inf")
    A = model.predict(X)
    if not np.isfinite(A).all():
        raise ChainruleError(f"{path}: expected finite predictions for {data}, got NaN or inf "
                             f"for {int((~np.isfinite(A)).any(axis=1).sum())} of {len(A)} rows "
                             "(the model's weights or feature scaling overflow on them)")
    return A


def predict(args) -> int:
    model, info, tensors = _open(args.model)
    X, _ = _read_features(args.data, info, tensors, with_label=False)
    A = _finite_predictions(args.model, model, X, args.data)
    if info["task"] == "classification":
        rows = [info["classes"][i] for i in class_indices(A)]
    else:
        rows = [" ".join(f"{v:.6g}" for v in row) for row in unstandardise(A, *info["y_scale"])]
    text = "prediction\n" + "\n".join(str(r) for r in rows) + "\n"
    if args.output:
        from .serialization import atomic_write_bytes
        atomic_write_bytes(args.output, text.encode())
    else:
        sys.stdout.write(text)
    return 0


# -- export --------------------------------------------------------------------------------

def export(args) -> int:
    """Write ``args.model`` as ONNX and/or PyTorch, with what ``predict`` does around it."""
    targets = [(flag, path) for flag, path in (("--onnx", args.onnx), ("--torch", args.torch))
               if path]
    if not targets:
        raise ChainruleError("export expected --onnx PATH, --torch PATH or both, got neither")
    _check_targets(args.model, targets)  # say so before loading anything
    model, info, tensors = _open_any(args.model)
    around = {"standardise": (tensors["mean"], tensors["std"]) if "mean" in tensors else None}
    if info is not None and info["task"] == "regression":
        mean, scale = info["y_scale"]
        around["unstandardise"] = (np.float64(mean), np.float64(scale))
    if info is not None and info["task"] == "classification":
        around["classes"] = info["classes"]
    from .export import onnx_graph, torch_file
    files = []  # (path, bytes, what): both built before either is written
    try:
        if args.onnx:
            metadata = {} if info is None else {"features": json.dumps(info["features"]),
                                                "task": info["task"]}
            proto = onnx_graph.model_proto(model, opset=args.opset, metadata=metadata,
                                           where="chainrule export --onnx", **around)
            files.append((args.onnx, proto.SerializeToString(), "ONNX graph"))
        if args.torch:
            files.append((args.torch, torch_file.torch_bytes(model, **around),
                          "PyTorch weights and architecture"))
    except ModuleNotFoundError as e:  # onnx or torch, imported where they are needed
        raise ChainruleError(f"export needs the {e.name} package, which is not installed "
                             f"(pip install {e.name})") from None
    from .serialization import atomic_write_bytes
    for path, data, what in files:
        atomic_write_bytes(path, data)
        print(f"wrote {what} to {path}", file=sys.stderr)
    return 0


def _check_targets(model_path, targets) -> None:
    """Each ``(flag, path)`` export writes: a file in an existing folder, neither the model
    file nor the other target (compared as files where they exist, else as resolved paths)."""
    for i, (flag, path) in enumerate(targets):
        if os.path.isdir(path):
            raise ChainruleError(f"{flag} {path}: expected a file to write, got a directory")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            up = folder  # the nearest part of the path that exists: a file, or no folder
            while not os.path.lexists(up) and os.path.dirname(up) != up:
                up = os.path.dirname(up)
            if os.path.lexists(up) and not os.path.isdir(up):
                raise ChainruleError(f"{flag} {path}: {up} is a file, not a folder")
            raise ChainruleError(f"{flag} {path}: folder {folder} does not exist")
        if os.path.exists(path) and not os.path.isfile(path):
            raise ChainruleError(f"{flag} {path}: expected a regular file to write, got a "
                                 "special file")
        if _same_file(path, model_path):
            raise ChainruleError(f"{flag} {path}: expected a path other than the model file "
                                 f"{model_path}, which it would overwrite")
        for other_flag, other in targets[:i]:
            if _same_file(path, other):
                raise ChainruleError(f"{other_flag} {other} and {flag} {path} name the same "
                                     "file: expected two different paths")


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): the paths, resolved
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _open_any(path):
    """``(model, cli info or None, tensors)`` of a file from ``train --save`` or ``save``."""
    from .errors import ModelFileError
    from .serialization import load, load_checkpoint
    try:
        model, _, meta, tensors = load_checkpoint(path)
    except ModelFileError:  # not a checkpoint (or broken, which load says again)
        return load(path), None, {}
    info = meta.get("cli") if isinstance(meta, dict) else None
    if info is None:  # a checkpoint of fit: no scaling to fold in
        return model, None, {}
    _check_info(path, model, info, tensors)  # train's file: its scaling must be sound
    return model, info, tensors


def _line(message: str, limit: int = 500) -> str:
    """``message`` on one line of at most ``limit`` characters (it may quote a file)."""
    message = " ".join(message.split())
    return message if len(message) <= limit else message[:limit - 3] + "..."


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # What is wrong is said once, as an error; never as warnings first.
            warnings.simplefilter("ignore")
            return {"train": train, "evaluate": evaluate, "predict": predict,
                    "export": export}[args.command](args)
    except DivergenceError as e:
        print(f"chainrule: {e}", file=sys.stderr)
        return 1
    except ChainruleError as e:
        print(f"chainrule: error: {_line(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:  # a missing, unreadable or unwritable file named on the command line
        where = f"{e.filename}: " if e.filename else ""
        print(f"chainrule: error: {_line(where + str(e.strerror or e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

