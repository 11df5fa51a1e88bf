"""ONNX Runtime on an exported chainrule model against chainrule's own ``predict``.

Run ``python benchmarks/export_speed.py [--rounds R] [--threads T] [--dtype float32]``.

The model is a 784-256-128-10 network (``Linear → ReLU → Linear → ReLU → Linear →
Softmax``), exported with ``chainrule.export.to_onnx``. For batch 1 and batch 1024, each round
times chainrule's ``model.predict(X)`` and ONNX Runtime's ``session.run`` on the same ``X``
back to back (A B A B ..., the order alternating between rounds so neither always goes
first), each over enough calls to take about 50 ms. A round's ratio pairs the two times of
that round, so a slow moment of the machine touches both. Both get ``--threads`` threads:
NumPy's BLAS through threadpoolctl, ONNX Runtime through ``intra_op_num_threads`` (and one
inter-op thread). Before timing, the two outputs are checked to agree to 1e-5.

The table gives the median time per call of each, and the median and the 10–90 % range of
the paired ratios chainrule / ONNX Runtime (above 1: ONNX Runtime is faster).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import chainrule as cr
from chainrule.export import to_onnx

SIZES = (784, 256, 128, 10)
BATCHES = (1, 1024)


def build(dtype) -> cr.Sequential:
    modules = []
    for i, (m, n) in enumerate(zip(SIZES, SIZES[1:])):
        modules += [cr.Linear(m, n, init="he", rng=i, dtype=dtype), cr.ReLU()]
    modules[-1] = cr.Softmax()
    return cr.Sequential(*modules)


def per_call(f, target_s: float = 0.05) -> float:
    """Seconds per call of ``f``, over as many calls as take about ``target_s``."""
    calls, elapsed = 1, 0.0
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            f()
        elapsed = time.perf_counter() - start
        if elapsed >= target_s:
            return elapsed / calls
        calls *= max(2, min(100, int(target_s / max(elapsed, 1e-6))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args()

    import onnxruntime as ort
    from threadpoolctl import threadpool_limits

    limiter = threadpool_limits(limits=args.threads)  # noqa: F841 - keep the limits in force
    dtype = np.dtype(args.dtype)
    model = build(dtype).eval()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        to_onnx(model, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    print(f"chainrule {cr.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}; "
          f"{'-'.join(map(str, SIZES))} {args.dtype}; {args.threads} threads; "
          f"{args.rounds} paired rounds\n")
    print("| batch | chainrule predict | ONNX Runtime | chainrule / ONNX Runtime (10–90 %) |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(0)
    for batch in BATCHES:
        X = rng.normal(size=(batch, SIZES[0])).astype(dtype)
        ours = lambda X=X: model.predict(X)  # noqa: E731
        theirs = lambda X=X: session.run(None, {"X": X})  # noqa: E731
        np.testing.assert_allclose(theirs()[0], ours(), rtol=1e-5, atol=1e-5)
        for f in (ours, theirs):  # warm-up
            per_call(f, 0.02)
        times = {"ours": [], "theirs": []}
        for r in range(args.rounds):
            order = (("ours", ours), ("theirs", theirs))
            for name, f in order if r % 2 == 0 else order[::-1]:
                times[name].append(per_call(f))
        ratios = sorted(a / b for a, b in zip(times["ours"], times["theirs"]))
        lo, hi = ratios[len(ratios) // 10], ratios[-1 - len(ratios) // 10]
        print(f"| {batch} | {_fmt(statistics.median(times['ours']))} | "
              f"{_fmt(statistics.median(times['theirs']))} | "
              f"{statistics.median(ratios):.2f} ({lo:.2f}–{hi:.2f}) |")


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


if __name__ == "__main__":
    main()
