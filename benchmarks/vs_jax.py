"""chainrule against JAX's compiled epoch, interleaved in one process, paired (issue 19).

    python benchmarks/vs_jax.py [--workloads ...] [--repeats 21] [--threads 2] [--quick]

Per workload the two systems of ``workloads.py`` (chainrule's ``fit``, and JAX with the whole
epoch one jitted ``lax.scan``; ``--step`` adds JAX's jitted step called from Python) are
built in this process, compiled and warmed up (JAX's compile time is reported apart), and
then timed in turn, A B then B A, ``--repeats`` times, with ``--pause`` of rest before each
sample. Epochs shorter than ``--min-sample`` are timed k at a time, the same k for all. The
verdict is on the median of the per-repeat ratios chainrule / JAX (each pair ran within a
fraction of a second, so load from other processes mostly cancels); the table also gives
the ratio of the fastest samples. Threads: NumPy's BLAS through threadpoolctl, JAX through
the CPUs the process may use (``run.limit_jax_threads``). Writes ``results/vs_jax.{md,json}``
(``--out NAME``).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import NOISY_SPREAD, environment, limit_jax_threads, limit_threads  # noqa: E402
from workloads import (  # noqa: E402
    WORKLOADS,
    Chainrule,
    Jax,
    make_data,
    n_batches,
    quick,
    save_results,
)

# chainrule / JAX jit-scan, paired median, at most (issue 19)
TARGETS = {"digits-b32": 1.0, "mnist-b128": 0.8, "mnist-b32": 0.8}


def time_workload(name: str, args, log) -> dict:
    w = quick(WORKLOADS[name]) if args.quick else WORKLOADS[name]
    X, y = make_data(w)
    systems = [Chainrule(w, X, y), Jax(w, X, y, scan=True)]
    if args.step:
        systems.append(Jax(w, X, y, scan=False))
    warm = {}
    for s in systems:
        s.warmup()
        for _ in range(2):  # the first full epochs are slower: calibrate on the second
            t0 = time.perf_counter()
            s.epoch()
        warm[s.name] = time.perf_counter() - t0
    k = max(1, math.ceil(args.min_sample / min(warm.values())))
    got = {s.name: [] for s in systems}
    for r in range(args.repeats):
        order = systems if r % 2 == 0 else systems[::-1]
        for s in order:
            gc.collect()
            time.sleep(args.pause)  # the other system's spinning threads go to sleep
            t0 = time.perf_counter()
            for _ in range(k):
                s.epoch()
            got[s.name].append((time.perf_counter() - t0) / k)
        log(f"  {r + 1}/{args.repeats}: " + ", ".join(f"{s.name} {got[s.name][-1]:.4f}"
                                                       for s in order))
    cr, jx = got["chainrule"], got["jax jit-scan"]
    ratios = [a / b for a, b in zip(cr, jx)]
    steps = n_batches(w, len(X))
    out = {"description": w.describe(), "repeats": args.repeats, "epochs_per_sample": k,
           "steps": steps, "times": got, "ratios": ratios,
           "paired_ratio": statistics.median(ratios), "ratio_min": min(ratios),
           "ratio_max": max(ratios), "fastest_ratio": min(cr) / min(jx),
           "median_us_per_step": {n: statistics.median(t) / steps * 1e6 for n, t in got.items()},
           "compile_seconds": {s.name: s.compile_seconds for s in systems
                               if hasattr(s, "compile_seconds")},
           "loss": {s.name: s.last_loss for s in systems},
           "noisy": any(max(t) > NOISY_SPREAD * min(t) for t in got.values())}
    if args.step:
        out["step_over_scan"] = statistics.median(
            a / b for a, b in zip(got["jax jit-step"], jx))
    limit = TARGETS.get(name)
    out["at_most"], out["met"] = limit, None if limit is None else out["paired_ratio"] <= limit
    return out


def markdown(rep: dict) -> str:
    env = rep["environment"]
    load = lambda k: ", ".join(f"{x:.2f}" for x in rep[k])  # noqa: E731
    out = ["# chainrule against JAX's compiled epoch" + (" (quick)" if rep["quick"] else ""),
           "", f"{env['date']}, commit {env['commit']}; {env['cpu']}; **{rep['threads']} "
           f"threads** (BLAS pools: {'; '.join(p['internal_api'] + ' ' + str(p['num_threads']) for p in env['thread_pools'])}; "  # noqa: E501
           f"CPUs {env['cpus']}); JAX {env['jax']}, {env['jax_adam']}. Load average at "
           f"start {load('load_start')}, at end {load('load_end')}.", "",
           "| workload | repeats × epochs | chainrule µs/step | JAX scan µs/step | "
           "chainrule / JAX scan (paired median) | min – max | fastest | JAX compile s | "
           "at most | met |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in rep["workloads"].items():
        us = r["median_us_per_step"]
        met = {True: "yes", False: "**no**", None: "–"}[r["met"]]
        out.append(f"| {name} | {r['repeats']} × {r['epochs_per_sample']} | "
                   f"{us['chainrule']:.1f} | {us['jax jit-scan']:.1f} | "
                   f"{r['paired_ratio']:.3f} | {r['ratio_min']:.3f} – {r['ratio_max']:.3f} | "
                   f"{r['fastest_ratio']:.3f} | {r['compile_seconds']['jax jit-scan']:.2f} | "
                   f"{r['at_most'] if r['at_most'] is not None else '–'} | {met} |")
    steps = {n: r["step_over_scan"] for n, r in rep["workloads"].items() if "step_over_scan" in r}
    if steps:
        out += ["", "JAX jit-step / jit-scan (paired median): " + ", ".join(
            f"{n} {v:.2f}" for n, v in steps.items()) + "."]
    noisy = [n for n, r in rep["workloads"].items() if r["noisy"]]
    if noisy:
        out += ["", f"Noisy: a sample took more than {NOISY_SPREAD:g}× the fastest of its "
                f"system in {', '.join(noisy)}; rerun on a quiet machine before trusting a "
                "verdict near the line."]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--repeats", type=int, default=None, help="pairs (default 21, quick 5)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--pause", type=float, default=0.1, help="rest before each sample, s")
    parser.add_argument("--min-sample", type=float, default=0.1,
                        help="time shorter epochs k at a time, k × epoch ≥ this (s)")
    parser.add_argument("--step", action="store_true", help="also JAX's jitted step")
    parser.add_argument("--quick", action="store_true", help="a quarter of the rows")
    parser.add_argument("--out", default="vs_jax", help="results name in benchmarks/results/")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (5 if args.quick else 21)
    limit_jax_threads(args.threads)
    limiter = limit_threads(args.threads)  # noqa: F841 - keep the limits in force
    started = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - started:6.1f} s] {msg}", file=sys.stderr, flush=True)

    rep = {"quick": args.quick, "threads": args.threads, "load_start": os.getloadavg(),
           "environment": environment(args.threads), "workloads": {}}
    for name in args.workloads:
        log(name)
        rep["workloads"][name] = time_workload(name, args, log)
    rep["load_end"] = os.getloadavg()
    rep["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    rep["seconds"] = time.perf_counter() - started
    log(f"wrote {save_results(args.out, rep, markdown(rep))}.md and .json")
    return 0 if all(r["met"] is not False for r in rep["workloads"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
