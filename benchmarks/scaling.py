"""How chainrule's cost grows: seconds per epoch against rows n and against hidden width.

    python benchmarks/scaling.py            # writes benchmarks/results/scaling.{json,md}
    python benchmarks/scaling.py --quick    # fewer sizes: results/scaling-quick.*

Two sweeps on mnist-b128's setting (784 inputs, 10 classes, batch 128, Adam, float32):

- rows: 784 → 256 → 128 → 10 with n = 5,000 ... 80,000. One epoch is n/128 steps of
  the same size, so its time should be linear in n: the table gives microseconds per row
  and a least-squares line t = a + b·n with its R².
- width: 784 → w → w → 10 with w = 64 ... 1024 on 20,000 rows, where the GEMMs grow like w
  (first layer) to w² (second) and the per-step Python overhead stays fixed.

Each point times chainrule, PyTorch eager and the GEMM floor, interleaved as in run.py
(median of the repeats); the ratios show where chainrule's overhead above the floor is a
fixed cost per step (it shrinks as the work grows) and where it scales with the work.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import CR, FLOOR, PT, build_systems, environment, limit_threads, time_workload  # noqa: E402
from workloads import WORKLOADS, make_data, save_results  # noqa: E402

ROWS = (5_000, 10_000, 20_000, 40_000, 80_000)
WIDTHS = (64, 128, 256, 512, 1024)


def sweep(points, systems_wanted, repeats, pause, log) -> list[dict]:
    rows = []
    for label, w in points:
        log(f"{label}: {w.describe()}")
        X, y = make_data(w)
        systems = build_systems(w, X, y, systems_wanted, None)
        res = time_workload(w, X, y, systems, repeats, lambda m: None, pause)
        row = {"label": label, "n": w.n, "hidden": list(w.hidden)}
        for name, r in res.items():
            row[name] = {k: r.get(k) for k in ("status", "reason", "median", "min", "max",
                                                "ratio_to_floor", "ratio_to_pytorch")}
        log("  " + ", ".join(f"{k} {v['median']:.3f} s" for k, v in row.items()
                             if isinstance(v, dict) and v.get("median") is not None))
        rows.append(row)
        del systems
    return rows


def linear_fit(ns, ts) -> dict:
    """Least squares t = a + b n; R² and the per-row cost at each n."""
    ns, ts = np.asarray(ns, float), np.asarray(ts, float)
    b, a = np.polyfit(ns, ts, 1)
    pred = a + b * ns
    ss_res = float(np.sum((ts - pred) ** 2))
    ss_tot = float(np.sum((ts - ts.mean()) ** 2))
    return {"intercept_s": float(a), "us_per_row": float(b * 1e6),
            "r2": 1 - ss_res / ss_tot if ss_tot else 1.0}


def _fmt(v, spec=".3f") -> str:
    return "–" if v is None else format(v, spec)


def _cell(r, key="median", spec=".3f") -> str:
    return _fmt(r.get(key) if r else None, spec)


def markdown(report) -> str:
    env = report["environment"]
    names = [s for s in (CR, PT, FLOOR) if s in report["systems"]]
    out = [
        "# How chainrule's cost grows" + (" (quick run)" if report["quick"] else ""),
        "",
        f"{env['date']}, commit {env['commit']}; {env['cpu']}, "
        f"**{env['threads']} thread{'s' if env['threads'] != 1 else ''}**; "
        f"median of {report['repeats']} epochs per point, systems interleaved. Load average "
        f"at start {', '.join(f'{x:.2f}' for x in env['load_average_start'])}, at end "
        f"{', '.join(f'{x:.2f}' for x in env['load_average_end'])}.",
        "",
        "## Seconds per epoch against rows (784 → 256 → 128 → 10, batch 128)",
        "",
        "| n | " + " | ".join(f"{s} s" for s in names) + " | chainrule fastest s | "
        "chainrule µs/row | chainrule × floor | chainrule × PyTorch |",
        "|---:|" + "---:|" * (len(names) + 4),
    ]
    for row in report["rows"]:
        c = row.get(CR, {})
        per_row = c.get("median") / row["n"] * 1e6 if c.get("median") else None
        out.append(f"| {row['n']:,} | " + " | ".join(_cell(row.get(s)) for s in names)
                   + f" | {_cell(c, 'min')} | {_fmt(per_row, '.1f')} | "
                   f"{_cell(c, 'ratio_to_floor', '.2f')} | {_cell(c, 'ratio_to_pytorch', '.2f')} |")
    out.append("")
    for name, fit in report["linear_in_n"].items():
        out.append(f"- {name}: t ≈ {fit['intercept_s']:.3f} s + {fit['us_per_row']:.2f} µs × n, "
                   f"R² = {fit['r2']:.4f}; t(n_max) / t(n_min) = {fit['growth']:.1f} for "
                   f"{fit['n_growth']:.0f}× the rows.")
    out += ["", "## Seconds per epoch against width (784 → w → w → 10, 20,000 rows, batch 128)",
            "", "| w | " + " | ".join(f"{s} s" for s in names) + " | chainrule × floor | "
            "chainrule × PyTorch |", "|---:|" + "---:|" * (len(names) + 2)]
    for row in report["widths"]:
        c = row.get(CR, {})
        out.append(f"| {row['hidden'][0]} | " + " | ".join(_cell(row.get(s)) for s in names)
                   + f" | {_cell(c, 'ratio_to_floor', '.2f')} | "
                   f"{_cell(c, 'ratio_to_pytorch', '.2f')} |")
    out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three sizes per sweep")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--no-torch", action="store_true", help="chainrule and floor only")
    parser.add_argument("--pause", type=float, default=0.2)
    args = parser.parse_args(argv)
    wanted = {CR, FLOOR} if args.no_torch else {CR, FLOOR, PT}
    if PT in wanted:
        import torch  # noqa: F401 - before the thread limits, so they reach it
    limiter = limit_threads(args.threads)  # noqa: F841 - keep the limits in force
    env = environment(args.threads)
    started = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - started:7.1f} s] {msg}", flush=True)

    base = dataclasses.replace(WORKLOADS["mnist-b128"], min_repeats=1)
    ns = ROWS[::2] if args.quick else ROWS
    widths = WIDTHS[::2] if args.quick else WIDTHS
    rows = sweep([(f"n={n}", dataclasses.replace(base, n=n)) for n in ns], wanted,
                 args.repeats, args.pause, log)
    wide = sweep([(f"w={w}", dataclasses.replace(base, hidden=(w, w))) for w in widths],
                 wanted, args.repeats, args.pause, log)
    linear = {}
    # Medians, and the fastest epoch of each point: this machine slows down in bursts of
    # seconds to minutes, which a median of a few epochs does not always outvote.
    for name in sorted(wanted):
        for key, label in (("median", name), ("min", f"{name} (fastest epochs)")):
            pts = [(r["n"], r[name][key]) for r in rows if r[name].get(key)]
            if len(pts) >= 2:
                fit = linear_fit(*zip(*pts))
                fit["growth"] = pts[-1][1] / pts[0][1]
                fit["n_growth"] = pts[-1][0] / pts[0][0]
                linear[label] = fit
    env["load_average_end"] = os.getloadavg()
    report = {"quick": args.quick, "environment": env, "repeats": args.repeats,
              "systems": sorted(wanted), "rows": rows, "widths": wide,
              "linear_in_n": linear}
    save_results("scaling-quick" if args.quick else "scaling", report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
