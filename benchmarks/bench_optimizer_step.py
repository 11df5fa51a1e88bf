"""One optimizer step on 1M float32 parameters: chainrule against torch.optim.

Run ``python benchmarks/bench_optimizer_step.py [--size N] [--repeats R] [--threads T]``.
Both libraries get the same data, the same hyper-parameters and the same number of threads
(``torch.set_num_threads``; NumPy's ufuncs are single-threaded). After a few warm-up steps
(which create the state), each step is timed ``R`` times and the median is reported; the
last column is chainrule's time over torch's (below 1: chainrule is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from chainrule.optimizers import OPTIMIZERS
from chainrule.parameter import Parameter


def torch_optimizer(torch, name, params):
    optim = torch.optim
    return {
        "SGD": lambda: optim.SGD(params, lr=0.01),
        "Momentum": lambda: optim.SGD(params, lr=0.01, momentum=0.9),
        "Adagrad": lambda: optim.Adagrad(params, lr=0.01, eps=1e-10),
        "RMSprop": lambda: optim.RMSprop(params, lr=0.01, alpha=0.99, eps=1e-8),
        "Adadelta": lambda: optim.Adadelta(params, lr=1.0, rho=0.9, eps=1e-6),
        "Adam": lambda: optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8),
    }[name]()


def median_step_time(step, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    W = rng.normal(size=(1000, args.size // 1000)).astype(np.float32)
    g = rng.normal(size=W.shape).astype(np.float32)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(args.threads)
        print(f"torch {torch.__version__}, {args.threads} thread(s); ", end="")
    print(f"numpy {np.__version__}; {W.size:,} float32 parameters, "
          f"median of {args.repeats} steps")
    print(f"{'optimizer':10s} {'chainrule ms':>13s} {'torch ms':>9s} {'ratio':>6s}")

    for name, cls in OPTIMIZERS.items():
        p = Parameter(W.copy(), "W")
        p.grad[...] = g
        opt = cls()
        ours = median_step_time(lambda opt=opt, p=p: opt.step([p]), args.repeats)
        if torch is None:
            print(f"{name:10s} {ours * 1e3:13.3f} {'-':>9s} {'-':>6s}")
            continue
        w = torch.tensor(W.copy(), requires_grad=True)
        w.grad = torch.tensor(g)
        topt = torch_optimizer(torch, name, [w])
        theirs = median_step_time(topt.step, args.repeats)
        print(f"{name:10s} {ours * 1e3:13.3f} {theirs * 1e3:9.3f} {ours / theirs:6.2f}")


if __name__ == "__main__":
    main()
