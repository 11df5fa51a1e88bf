"""chainrule's fit from two source trees, timed in one run, paired (issue 14).

    python benchmarks/paired.py --old /tmp/cr-base --new . [--workloads ...] [--repeats N]
                                [--memory] [--quick] [--tolerance 1.05]

Per workload, one worker process per tree: this interpreter with ``PYTHONPATH=<tree>/src``,
so each imports its own chainrule (the worker reports ``chainrule.__file__``; the run stops
if it is not under that tree). Both build the same workload from this directory's
``workloads.py`` (same data, seed and thread count through threadpoolctl), warm up (the
short warm-up epoch, then two full epochs), and then time epochs in turn over a pipe, the
order swapped every repeat. The ratio new/old of each pair was measured seconds apart, so
load from other processes mostly cancels in it; the verdict is on the median of those ratios.
Epochs shorter than ``--min-sample`` are timed k at a time (the same k for both trees).

``--memory`` runs one epoch of fit on 60,000 × 784 in a fresh worker per tree and reports
what fit adds to the process: the peak of RssAnon (sampled every ~1 ms from here through
/proc/PID/status) and of VmHWM (reset through /proc/self/clear_refs just before fit), each
minus its value just before fit, against the 50 MB above the data of issue 7.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import math
import os
import select
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import MEMORY_BUDGET_MB, NOISY_SPREAD, limit_threads  # noqa: E402
from workloads import (  # noqa: E402
    SEED,
    WORKLOADS,
    Chainrule,
    build_chainrule,
    make_data,
    quick,
    save_results,
)

MEMORY_ROWS = 60_000  # mnist-b128's network on 60,000 × 784 (15,000 with --quick)


def proc_kb(pid="self", fields=("RssAnon", "VmRSS", "VmHWM")) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in fields:
            out[key] = int(line.split()[1])
    return out


# -- worker (one per tree, reads JSON lines on stdin, answers on its own stdout) -----------

def worker(threads: int) -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints go to stderr, never into the protocol

    def send(**msg):
        proto.write(json.dumps(msg) + "\n")

    limiter = limit_threads(threads)  # noqa: F841 - keep the limits in force
    from threadpoolctl import threadpool_info

    import chainrule as cr

    send(file=cr.__file__, version=getattr(cr, "__version__", "?"),
         compiled=sorted(str(f.relative_to(Path(cr.__file__).parent))
                         for f in Path(cr.__file__).parent.rglob("*.so")),
         pools=[f"{p['internal_api']} {p.get('version')} {p.get('architecture')} "
                f"({p['num_threads']} threads)" for p in threadpool_info()])
    system = None
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["cmd"] == "setup":
                w = WORKLOADS[req["workload"]]
                w = quick(w) if req["quick"] else w
                system = Chainrule(w, *make_data(w))
                system.warmup()
                for _ in range(2):  # the first full epoch is slower: calibrate on the second
                    t0 = time.perf_counter()
                    system.epoch()
                send(epoch_s=time.perf_counter() - t0)
            elif req["cmd"] == "time":
                gc.collect()
                t0 = time.perf_counter()
                for _ in range(req["k"]):
                    system.epoch()
                send(s=(time.perf_counter() - t0) / req["k"], loss=system.last_loss)
            elif req["cmd"] == "memory":
                w = dataclasses.replace(WORKLOADS["mnist-b128"], n=req["n"])
                X, y = make_data(w)
                model = build_chainrule(w)
                gc.collect()
                Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
                before = proc_kb()
                send(data_kb=(X.nbytes + y.nbytes) / 1024, **before)
                cr.fit(model, cr.NLLM(), X, y, optimizer=cr.Adam(), epochs=1,
                       batch_size=w.batch_size, shuffle=True, progress=False, rng=SEED)
                send(**proc_kb())
        except Exception:
            send(error=traceback.format_exc())


class Worker:
    def __init__(self, tree: Path, threads: int):
        env = dict(os.environ, PYTHONPATH=str(tree / "src"))
        self.p = subprocess.Popen([sys.executable, __file__, "--worker", str(threads)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=env)
        self.hello = self.read()
        if not Path(self.hello["file"]).resolve().is_relative_to((tree / "src").resolve()):
            self.close()
            sys.exit(f"worker for {tree} imported chainrule from {self.hello['file']}")

    def send(self, cmd, **kw):
        self.p.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.p.stdin.flush()

    def read(self) -> dict:
        line = self.p.stdout.readline()
        msg = json.loads(line) if line else {"error": "worker exited"}
        if "error" in msg:
            raise RuntimeError(msg["error"])
        return msg

    def ask(self, cmd, **kw) -> dict:
        self.send(cmd, **kw)
        return self.read()

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=60)


# -- coordinator ---------------------------------------------------------------------------

def time_workload(name: str, trees: dict, args, log) -> tuple[dict, dict]:
    w = quick(WORKLOADS[name]) if args.quick else WORKLOADS[name]
    workers = {role: Worker(tree, args.threads) for role, tree in trees.items()}
    try:
        warm = {role: wk.ask("setup", workload=name, quick=args.quick)["epoch_s"]
                for role, wk in workers.items()}
        k = max(1, math.ceil(args.min_sample / min(warm.values())))
        reps = max(args.repeats, w.min_repeats)
        got = {role: [] for role in workers}
        for r in range(reps):
            order = list(workers) if r % 2 == 0 else list(workers)[::-1]
            for role in order:
                time.sleep(args.pause)  # the other worker's BLAS threads go to sleep
                got[role].append(workers[role].ask("time", k=k))
            log(f"  {r + 1}/{reps}: " + ", ".join(f"{role} {got[role][-1]['s']:.4f}"
                                                   for role in order))
    finally:
        for wk in workers.values():
            wk.close()
    old, new = ([g["s"] for g in got[role]] for role in ("old", "new"))
    ratios = [b / a for a, b in zip(old, new)]
    paired = statistics.median(ratios)
    return {"description": w.describe(), "repeats": reps, "epochs_per_sample": k,
            "old": old, "new": new, "ratios": ratios,
            "old_median": statistics.median(old), "new_median": statistics.median(new),
            "paired_ratio": paired, "ratio_min": min(ratios), "ratio_max": max(ratios),
            "fastest_ratio": min(new) / min(old),
            "noisy": max(old + new) > NOISY_SPREAD * min(old + new),
            "loss": {role: got[role][-1]["loss"] for role in got},
            "ok": paired <= args.tolerance}, {r: wk.hello for r, wk in workers.items()}


def measure_memory(tree: Path, n: int, threads: int) -> tuple[dict, dict]:
    wk = Worker(tree, threads)
    try:
        wk.send("memory", n=n)
        before = wk.read()
        fd, peak = wk.p.stdout.fileno(), before["RssAnon"]
        while not select.select([fd], [], [], 0.001)[0]:  # sample until fit has returned
            peak = max(peak, proc_kb(wk.p.pid, ("RssAnon",)).get("RssAnon", 0))
        after = wk.read()
    finally:
        wk.close()
    mb = {key: v / 1024 for key, v in before.items()}
    row = {"n": n, "data_mb": mb["data_kb"],
           "anon_before_mb": mb["RssAnon"], "anon_peak_mb": max(peak, after["RssAnon"]) / 1024,
           "anon_after_mb": after["RssAnon"] / 1024,
           "hwm_increase_mb": (after["VmHWM"] - before["VmRSS"]) / 1024}
    row["anon_increase_mb"] = row["anon_peak_mb"] - row["anon_before_mb"]
    row["ok"] = max(row["anon_increase_mb"], row["hwm_increase_mb"]) <= MEMORY_BUDGET_MB
    return row, wk.hello


def commit(tree: Path) -> str:
    git = ["git", "-C", str(tree)]
    try:
        c = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                           text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "src"], capture_output=True,
                           text=True).stdout.strip()
    return c + (" (src/ modified)" if dirty else "")


def markdown(rep: dict) -> str:
    load = lambda k: ", ".join(f"{x:.2f}" for x in rep[k])  # noqa: E731
    out = ["# chainrule paired benchmark: new vs old" + (" (quick)" if rep["quick"] else ""),
           "", f"{rep['date']}; {rep['threads']} threads; tolerance new/old ≤ "
           f"{rep['tolerance']:g}; load average at start {load('load_start')}, at end "
           f"{load('load_end')}.", "", "| tree | path | commit | chainrule from | compiled | "
           "thread pools |", "|---|---|---|---|---|---|"]
    for role, t in rep["trees"].items():
        h = t.get("hello", {})
        out.append(f"| {role} | {t['path']} | {t['commit']} | {h.get('file', '–')} | "
                   f"{', '.join(h.get('compiled', [])) or 'none'} | "
                   f"{'; '.join(h.get('pools', []))} |")
    if rep["workloads"]:
        out += ["", "| workload | repeats × epochs | old s/epoch | new s/epoch | new/old "
                "(paired median) | min – max | fastest new/old | loss old / new | verdict |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for name, r in rep["workloads"].items():
            out.append(
                f"| {name} | {r['repeats']} × {r['epochs_per_sample']} | {r['old_median']:.4f}"
                f" | {r['new_median']:.4f} | {r['paired_ratio']:.3f} | {r['ratio_min']:.3f} – "
                f"{r['ratio_max']:.3f} | {r['fastest_ratio']:.3f} | "
                f"{r['loss']['old']:.4f} / {r['loss']['new']:.4f} | "
                f"{'ok' if r['ok'] else '**slower**'} |")
        out += ["", "s/epoch: median over the repeats. new/old: the median over repeats of the "
                "ratio of the two epochs of one repeat (the order swapped every repeat), which "
                "decides the verdict; min – max: the range of those ratios; fastest: the ratio "
                "of the two trees' fastest epochs, the least disturbed by other processes."]
        noisy = [name for name, r in rep["workloads"].items() if r["noisy"]]
        if noisy:
            out += ["", f"Noisy: an epoch took more than {NOISY_SPREAD:g}× the fastest in "
                    f"{', '.join(noisy)} (other processes were running); rerun on a quiet "
                    "machine, or with --threads 1, before trusting a verdict near the line."]
    if rep["memory"]:
        out += ["", f"## fit's memory, one epoch on {rep['memory'][0]['n']:,} × 784", "",
                "| tree | data MB | RssAnon before fit | peak RssAnon | anon increase | "
                f"VmHWM increase | RssAnon after | ≤ {MEMORY_BUDGET_MB} MB |",
                "|---|---:|---:|---:|---:|---:|---:|---|"]
        for m in rep["memory"]:
            out.append(f"| {m['role']} | {m['data_mb']:.1f} | {m['anon_before_mb']:.1f} | "
                       f"{m['anon_peak_mb']:.1f} | {m['anon_increase_mb']:.1f} | "
                       f"{m['hwm_increase_mb']:.1f} | {m['anon_after_mb']:.1f} | "
                       f"{'yes' if m['ok'] else '**no**'} |")
        out += ["", "MB = 2^20 bytes. *anon increase*: peak RssAnon during fit (sampled every "
                "~1 ms) minus RssAnon just before it, with the data already allocated; "
                "*VmHWM increase*: peak RSS during fit (reset just before) minus RSS before "
                "it. The verdict takes the larger of the two."]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="the reference tree (timing needs both)")
    parser.add_argument("--new", type=Path, help="the tree under test")
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS),
                        choices=list(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=None,
                        help="pairs per workload (default 21, quick 7)")
    parser.add_argument("--memory", action="store_true",
                        help=f"also fit's memory on {MEMORY_ROWS:,} × 784, for each tree")
    parser.add_argument("--quick", action="store_true", help="a quarter of the rows")
    parser.add_argument("--tolerance", type=float, default=1.05)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--pause", type=float, default=0.2, help="rest before each sample, s")
    parser.add_argument("--min-sample", type=float, default=0.1,
                        help="time shorter epochs k at a time, k × epoch ≥ this (s)")
    parser.add_argument("--out", default="paired", help="results name in benchmarks/results/")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker(args.worker)
        return 0
    if args.new is None:
        parser.error("--new is required")
    args.repeats = args.repeats or (7 if args.quick else 21)
    trees = {role: t.resolve() for role, t in (("old", args.old), ("new", args.new)) if t}
    started = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - started:6.1f} s] {msg}", file=sys.stderr, flush=True)

    rep = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
           "quick": args.quick, "threads": args.threads, "tolerance": args.tolerance,
           "load_start": os.getloadavg(), "workloads": {}, "memory": [],
           "trees": {role: {"path": str(t), "commit": commit(t)} for role, t in trees.items()}}
    for name in args.workloads if args.old else []:
        log(f"{name}")
        rep["workloads"][name], hello = time_workload(name, trees, args, log)
        for role, h in hello.items():
            rep["trees"][role]["hello"] = h
    if args.memory:
        for role, tree in trees.items():
            n = MEMORY_ROWS // 4 if args.quick else MEMORY_ROWS
            log(f"memory: {role} fit on {n:,} × 784")
            row, rep["trees"][role]["hello"] = measure_memory(tree, n, args.threads)
            rep["memory"].append({"role": role, **row})
    rep["load_end"] = os.getloadavg()
    rep["seconds"] = time.perf_counter() - started
    log(f"wrote {save_results(args.out, rep, markdown(rep))}.md and .json")
    return 0 if all(r["ok"] for r in [*rep["workloads"].values(), *rep["memory"]]) else 1


if __name__ == "__main__":
    sys.exit(main())
