"""Where one step of chainrule's fit spends its time, per call site (cProfile).

    python benchmarks/profile_step.py [--workload digits-b32] [--epochs 20] [--top 25]
                                      [--threads 1] [--no-kernels]

Builds the workload of ``workloads.py``, warms up, then profiles ``--epochs`` epochs of
``fit`` and prints, per function (file:line, or NumPy's and the kernels' C functions), its
own time per step and its calls per step, largest first. cProfile adds about the same cost
to every Python call, so read the ranking and the call counts, not the absolute times; for
instruction counts that other processes cannot disturb, run the same epochs under
``valgrind --tool=callgrind`` and subtract a run with fewer epochs.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="digits-b32")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-kernels", action="store_true", help="CHAINRULE_KERNELS=0")
    args = parser.parse_args(argv)
    if args.no_kernels:
        os.environ["CHAINRULE_KERNELS"] = "0"
    from run import limit_threads
    from workloads import WORKLOADS, Chainrule, make_data, n_batches

    limiter = limit_threads(args.threads)  # noqa: F841 - keep the limits in force
    w = WORKLOADS[args.workload]
    X, y = make_data(w)
    system = Chainrule(w, X, y)
    system.warmup()
    system.epoch()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.epochs):
        system.epoch()
    profile.disable()
    steps = args.epochs * n_batches(w, len(X))
    stats = pstats.Stats(profile).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    rows = sorted(((tt, nc, key) for key, (cc, nc, tt, ct, callers) in stats.items()),
                  reverse=True)
    total = sum(tt for tt, _, _ in rows)
    print(f"{args.workload}: {steps} steps, {total / steps * 1e6:.1f} µs a step under cProfile"
          f" ({args.threads} BLAS thread{'s' if args.threads != 1 else ''}, kernels "
          f"{'off' if args.no_kernels else 'on'})\n")
    print("| own µs/step | calls/step | where |\n|---:|---:|---|")
    for tt, nc, (file, line, name) in rows[:args.top]:
        where = f"{name}" if file == "~" else f"{Path(file).name}:{line} {name}"
        print(f"| {tt / steps * 1e6:.2f} | {nc / steps:.1f} | `{where}` |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
