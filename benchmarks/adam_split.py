"""Adam's compiled pass on one thread and split with a helper thread, by length.

    python benchmarks/adam_split.py [--sizes 235146 1000000 4194304] [--repeats 15]

Times ``chainrule.kernels._adam.adam`` over float32 arrays of each length, asked for one
thread and for two (``kernels/split.h``), in turn; prints the best time of each (the least
disturbed by other processes) and their ratio. ``chainrule.kernels.MIN_SPLIT`` is the length
from which fit asks for two; this is the measurement that sets it.
"""

from __future__ import annotations

import argparse
import os
import timeit

import numpy as np

from chainrule import kernels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[4810, 65536, 235146, 524288, 1_000_000, 4_194_304])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    if kernels._adam is None:
        raise SystemExit("chainrule.kernels._adam was not built")
    print(f"MIN_SPLIT = {kernels.MIN_SPLIT:,}; CPUs {len(os.sched_getaffinity(0))}; "
          f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| weights | 1 thread µs | 2 threads µs | 2 / 1 |\n|---:|---:|---:|---:|")
    for n in args.sizes:
        arrays = [np.random.default_rng(i).random(n, dtype=np.float32) for i in range(5)]
        number = max(1, 20_000_000 // (n * args.repeats))
        best = {}
        for threads in (1, 2, 1, 2):  # interleaved, twice
            t = min(timeit.repeat(
                lambda a=arrays, th=threads: kernels._adam.adam(*a, 0.9, 0.999, 1e-3, 1e-8,
                                                                False, th),
                number=number, repeat=args.repeats)) / number * 1e6
            best[threads] = min(best.get(threads, t), t)
        print(f"| {n:,} | {best[1]:.1f} | {best[2]:.1f} | {best[2] / best[1]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
