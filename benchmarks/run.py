"""chainrule side by side with PyTorch, JAX, scikit-learn and the GEMM floor, in one process.

    python benchmarks/run.py            # full run: writes benchmarks/results/latest.{json,md}
    python benchmarks/run.py --quick    # smoke run: fewer rows and repeats, results/quick.*

For each workload of ``workloads.py`` every system is built once and warmed up; then the
systems take turns, one timed epoch each, in an order rotated every repeat, so that load from
other processes falls on all of them alike. The table gives the median seconds per epoch and
its ratios to the GEMM floor and to PyTorch eager. All systems get the same thread count
(NumPy's BLAS through threadpoolctl, ``torch.set_num_threads``).

Peak memory of chainrule's ``fit`` is measured in child processes (one per workload, plus
the 60,000 × 784 case of issue 7), started through a bare launcher interpreter that reports
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` of its one child (see ``_LAUNCHER`` for why
not straight from here). The child also reports its RSS just before ``fit`` and its peak RSS
during ``fit`` (VmHWM, reset through /proc/self/clear_refs just before), and, in a second
child, tracemalloc's peak of the arrays ``fit`` allocates (NumPy reports its data buffers to
tracemalloc).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import importlib.util
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workloads import (  # noqa: E402
    SEED,
    WORKLOADS,
    Chainrule,
    GemmFloor,
    Jax,
    Sklearn,
    Torch,
    build_chainrule,
    make_data,
    quick,
    save_results,
)

MB = 1024 * 1024
FLOOR, CR, PT, TC, SK = "GEMM floor", "chainrule", "pytorch", "torch.compile", "scikit-learn"
JS, JX = "jax jit-step", "jax jit-scan"
SYSTEMS = (FLOOR, CR, PT, TC, JS, JX, SK)

# (workload, system, reference, at most): chainrule's time over the reference's.
# Issue 19's: against the floor and against JAX's compiled epoch measured in the same run.
TARGETS = [
    ("digits-b32", CR, JX, 1.0),
    ("mnist-b128", CR, JX, 0.8),
    ("mnist-b32", CR, JX, 0.8),
    ("mnist-b128", CR, FLOOR, 1.5),
    ("mnist-b32", CR, PT, 0.5),
    ("digits-b32", CR, SK, 0.4),
    ("deep-bn", CR, PT, 0.7),
]
MEMORY_BUDGET_MB = 50  # fit's peak above the data, on 60,000 × 784 float32
NOISY_SPREAD = 1.5  # a system whose slowest epoch took longer than this × its fastest


# -- environment ---------------------------------------------------------------------------

def limit_jax_threads(threads: int) -> list[int]:
    """Run this process on ``threads`` CPUs when it may use more; return the CPUs it has.

    XLA (JAX's compiler) has no thread-count setting of its own for the CPU: it sizes its
    thread pools by the CPUs the process may run on. So before JAX starts, the whole
    process is pinned to the first ``threads`` of them (``os.sched_setaffinity``; every
    other system is limited to the same count anyway). On a machine with exactly
    ``threads`` CPUs this changes nothing.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if threads < len(cpus):
        if "jax" in sys.modules:
            raise RuntimeError("limit_jax_threads must run before jax is imported")
        cpus = cpus[:threads]
        os.sched_setaffinity(0, cpus)
    return cpus


def limit_threads(threads: int):
    """Limit every BLAS/OpenMP pool in this process (and torch's) to ``threads``."""
    from threadpoolctl import threadpool_limits

    limiter = threadpool_limits(limits=threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return limiter


def environment(threads: int) -> dict:
    from threadpoolctl import threadpool_info

    def version(module):
        try:
            return __import__(module).__version__
        except Exception as e:  # an optional peer that is not installed
            return f"unavailable ({type(e).__name__})"

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=HERE,
                               capture_output=True, text=True).stdout.strip()
        commit += " (src/ modified)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = [
        {k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                               "filepath")}
        for d in threadpool_info()
    ]
    torch_threads = None
    if "torch" in sys.modules:
        torch_threads = sys.modules["torch"].get_num_threads()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "chainrule": version("chainrule"),
        "chainrule_adam": ("one compiled pass (chainrule.kernels._adam)"
                           if importlib.util.find_spec("chainrule.kernels._adam") else
                           "NumPy (chainrule.kernels._adam was not built)"),
        "chainrule_kernels": compiled_kernels(),
        "torch": version("torch"),
        "jax": version("jax"),
        "jax_adam": jax_adam_name(),
        "cpus": sorted(os.sched_getaffinity(0)),
        "sklearn": version("sklearn"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "torch_threads": torch_threads,
        "thread_pools": blas,
        "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE",
                                                        "OPENBLAS_L2_SIZE",
                                                        "OPENBLAS_NUM_THREADS",
                                                        "OMP_NUM_THREADS")},
        "load_average_start": os.getloadavg(),
    }


def compiled_kernels() -> list[str]:
    try:
        from chainrule import kernels
    except ImportError:
        return []
    return kernels.available() if kernels._on else []


def jax_adam_name() -> str | None:
    if importlib.util.find_spec("jax") is None:
        return None
    try:
        import optax
    except ImportError:
        return "Adam in jax.numpy (optax's arithmetic; optax is not installed)"
    return f"optax {optax.__version__} adam"


# -- memory (child processes) --------------------------------------------------------------

def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def memory_child(spec: dict) -> None:
    """Run in a child: make the data, then one epoch of ``fit``; print what it cost."""
    import tracemalloc

    limiter = limit_threads(spec["threads"])  # noqa: F841 - keep the limits in force
    import chainrule as cr

    w = dataclasses.replace(WORKLOADS[spec["workload"]], n=spec["n"])
    X, y = make_data(w)
    model = build_chainrule(w)
    gc.collect()
    rss_before = _status_kb("VmRSS")
    try:  # reset the peak-RSS mark so VmHWM below is the peak during fit alone
        Path("/proc/self/clear_refs").write_text("5")
        hwm_reset = True
    except OSError:
        hwm_reset = False
    if spec["tracemalloc"]:
        tracemalloc.start()
    t0 = time.perf_counter()
    cr.fit(model, cr.NLLM(), X, y, optimizer=cr.Adam(), epochs=1, batch_size=w.batch_size,
           shuffle=True, progress=False, rng=SEED)
    seconds = time.perf_counter() - t0
    traced_peak = tracemalloc.get_traced_memory()[1] if spec["tracemalloc"] else None
    print(json.dumps({
        "data_bytes": int(X.nbytes + y.nbytes),
        "rss_before_fit_kb": rss_before,
        "hwm_during_fit_kb": _status_kb("VmHWM") if hwm_reset else None,
        "traced_peak_bytes": traced_peak,
        "fit_seconds": seconds,
    }))


# A tiny launcher between this (large) process and the measured child. Linux carries a
# process's peak RSS across exec and (with vfork, which subprocess uses) gives a child the
# peak of the process that spawned it, so a child spawned from here would report at least
# this process's peak. The launcher is a bare interpreter of ~10 MB; it reports
# getrusage(RUSAGE_CHILDREN).ru_maxrss of its one child, on stdout's last line.
_LAUNCHER = """\
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
sys.stdout.flush()
print("ru_maxrss_kb", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True)
sys.exit(code)
"""


def run_child(args: list[str], timeout: float, launcher: bool = False):
    """Run ``python run.py ARGS`` in a new session; return (exit status or None on a
    timeout, stdout, stderr). The whole session is killed on a timeout (torch.compile's
    worker processes included)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    if launcher:
        cmd = [sys.executable, "-S", "-c", _LAUNCHER, *cmd]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return None, "", "timed out"
    return p.returncode, out, err


def measure_memory(name: str, n: int, threads: int) -> dict:
    """Peak memory of chainrule's one-epoch ``fit`` on workload ``name`` with ``n`` rows."""
    w = WORKLOADS[name]
    row = {"workload": name, "n": n, "d_in": w.d_in}
    for traced in (False, True):
        spec = json.dumps({"workload": name, "n": n, "threads": threads,
                           "tracemalloc": traced})
        code, out, err = run_child(["--memory-child", spec], timeout=900, launcher=True)
        if code != 0:
            row["error"] = (err.strip().splitlines() or ["failed"])[-1]
            return row
        lines = out.strip().splitlines()
        got = json.loads(lines[-2])
        maxrss_kb = int(lines[-1].split()[1])
        if traced:
            row["tracemalloc_peak_mb"] = got["traced_peak_bytes"] / MB
        else:
            data_mb = got["data_bytes"] / MB
            peak_mb = maxrss_kb / 1024  # kB on Linux
            before_mb = got["rss_before_fit_kb"] / 1024
            row.update({
                "data_mb": data_mb,
                "peak_rss_mb": peak_mb,
                "peak_minus_data_mb": peak_mb - data_mb,
                "rss_before_fit_mb": before_mb,
                "fit_peak_increase_mb": (
                    got["hwm_during_fit_kb"] / 1024 - before_mb
                    if got["hwm_during_fit_kb"] is not None else peak_mb - before_mb),
                "fit_seconds": got["fit_seconds"],
            })
    return row


# -- torch.compile probe (child process) ---------------------------------------------------

def compile_probe_child(spec: dict) -> None:
    """Run in a child: compile the workload's model and run its warm-up shapes."""
    import torch

    torch.set_num_threads(spec["threads"])
    w = dataclasses.replace(WORKLOADS[spec["workload"]], n=spec["n"])
    X, y = make_data(w)
    t0 = time.perf_counter()
    Torch(w, X, y, compile=True).warmup()
    print(json.dumps({"compile_seconds": time.perf_counter() - t0}))


def probe_compile(w, threads: int, timeout: float) -> tuple[bool, str]:
    spec = json.dumps({"workload": w.name, "n": w.n, "threads": threads})
    code, out, err = run_child(["--compile-probe", spec], timeout=timeout)
    if code is None:
        return False, f"compiling took longer than {timeout:g} s (probe stopped)"
    if code != 0:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        return False, "compile failed: " + (lines[-1][:300] if lines else f"exit {code}")
    got = json.loads(out.strip().splitlines()[-1])
    return True, f"probe compiled in {got['compile_seconds']:.1f} s"


# -- timing --------------------------------------------------------------------------------

def build_systems(w, X, y, wanted, compile_ok: tuple[bool, str] | None) -> dict:
    """``{name: object or (status, reason)}`` for the systems in ``wanted``."""
    systems = {}
    makers = {
        FLOOR: lambda: GemmFloor(w, len(X)),
        CR: lambda: Chainrule(w, X, y),
        PT: lambda: Torch(w, X, y),
        TC: lambda: Torch(w, X, y, compile=True),
        JS: lambda: Jax(w, X, y, scan=False),
        JX: lambda: Jax(w, X, y, scan=True),
        SK: lambda: Sklearn(w, X, y),
    }
    for name in SYSTEMS:
        if name not in wanted:
            continue
        if name == SK and not w.sklearn_ok:
            systems[name] = ("not applicable", "MLPClassifier has no BatchNorm or Dropout")
            continue
        if name in (JS, JX) and not w.sklearn_ok:
            systems[name] = ("not applicable", "the JAX systems have no BatchNorm or Dropout")
            continue
        if name == TC and compile_ok is not None and not compile_ok[0]:
            systems[name] = ("unavailable", compile_ok[1])
            continue
        try:
            systems[name] = makers[name]()
        except Exception as e:  # a peer that is not installed or will not build
            systems[name] = ("unavailable", f"{type(e).__name__}: {e}"[:300])
    return systems


def time_workload(w, X, y, systems: dict, repeats: int, log, pause: float = 0.2) -> dict:
    results = {}
    live = []
    for name, s in systems.items():
        if isinstance(s, tuple):
            results[name] = {"status": s[0], "reason": s[1]}
            continue
        t0 = time.perf_counter()
        try:
            s.warmup()
        except Exception as e:
            results[name] = {"status": "unavailable",
                             "reason": f"warm-up failed: {type(e).__name__}: {e}"[:300]}
            continue
        results[name] = {"status": "ok", "warmup_seconds": time.perf_counter() - t0,
                         "times": [], "cpu_times": []}
        if hasattr(s, "compile_seconds"):  # JAX: compiled in the warm-up, never timed
            results[name]["compile_seconds"] = s.compile_seconds
        live.append(name)
        log(f"  {name}: warm-up {results[name]['warmup_seconds']:.2f} s")
    for r in range(repeats):
        order = live[r % len(live):] + live[:r % len(live)] if live else []
        for name in order:
            gc.collect()
            time.sleep(pause)  # let the previous system's spinning BLAS/OpenMP threads sleep
            t0, c0 = time.perf_counter(), time.process_time()
            systems[name].epoch()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            results[name]["times"].append(wall)
            results[name]["cpu_times"].append(cpu)
        log(f"  repeat {r + 1}/{repeats}: " + ", ".join(
            f"{name} {results[name]['times'][-1]:.3f}" for name in live))
    for name in live:
        res, s = results[name], systems[name]
        times = res["times"]
        res.update({"median": statistics.median(times), "min": min(times), "max": max(times),
                    "cpu_median": statistics.median(res["cpu_times"]),
                    "final_loss": s.last_loss})
        acc = s.accuracy()
        res["train_accuracy"] = None if math.isnan(acc) else acc
        if name == FLOOR:
            res["gflops"] = s.flops_per_epoch / res["median"] / 1e9
    for ref, key in ((FLOOR, "ratio_to_floor"), (PT, "ratio_to_pytorch"),
                     (JX, "ratio_to_jax_scan")):
        if results.get(ref, {}).get("status") != "ok":
            continue
        for name in live:
            res = results[name]
            res[key] = res["median"] / results[ref]["median"]
            res["paired_" + key] = statistics.median(
                a / b for a, b in zip(res["times"], results[ref]["times"]))
    return results


# -- report --------------------------------------------------------------------------------

def evaluate_targets(workloads: dict, memory: list) -> list:
    rows = []
    for wname, system, ref, limit in TARGETS:
        res = workloads.get(wname, {}).get("systems", {})
        a, b = res.get(system, {}), res.get(ref, {})
        row = {"workload": wname, "what": f"{system} / {ref}", "at_most": limit}
        if a.get("status") == "ok" and b.get("status") == "ok":
            ratio = a["median"] / b["median"]
            paired = statistics.median(x / y for x, y in zip(a["times"], b["times"]))
            row.update({"ratio": ratio, "paired_ratio": paired,
                        "min_ratio": a["min"] / b["min"], "met": ratio <= limit})
            floor = res.get(FLOOR, {})
            if ref != FLOOR and floor.get("status") == "ok":
                # The GEMMs alone, over the reference: no NumPy network can go below it.
                row["floor_ratio"] = floor["median"] / b["median"]
        else:
            row.update({"ratio": None, "met": None})
        rows.append(row)
    for m in memory:
        if m.get("n") == 60_000 and "fit_peak_increase_mb" in m:
            rows.append({
                "workload": f"fit on 60,000 × {m['d_in']}", "what": "peak during fit − RSS "
                "before fit (MB)", "at_most": MEMORY_BUDGET_MB,
                "ratio": m["fit_peak_increase_mb"], "paired_ratio": None, "min_ratio": None,
                "met": m["fit_peak_increase_mb"] <= MEMORY_BUDGET_MB,
            })
    return rows


def _fmt(x, spec=".3f", missing="–"):
    return missing if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def markdown(report: dict) -> str:
    env = report["environment"]
    out = [
        "# chainrule benchmark" + (" (quick run)" if report["quick"] else ""),
        "",
        f"{env['date']}, commit {env['commit']}; {env['cpu']}, {env['cores']} cores; "
        f"**{env['threads']} thread{'s' if env['threads'] != 1 else ''}** for every system. "
        "Median of the repeats (one epoch each, systems interleaved); × floor, × PyTorch and "
        "× JAX scan are ratios of medians (below 1: faster than the reference), *paired* the "
        "median of the per-repeat ratios. Load average at start "
        f"{', '.join(f'{x:.2f}' for x in env['load_average_start'])}, at end "
        f"{', '.join(f'{x:.2f}' for x in env['load_average_end'])}.",
        "",
    ]
    for wname, wres in report["workloads"].items():
        out += [f"## {wname}", "", f"{wres['description']}; {wres['repeats']} repeats.", "",
                "| system | s/epoch | min – max | × floor | × PyTorch | × JAX scan | "
                "× JAX scan, paired | CPU s | loss | train acc. |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, r in wres["systems"].items():
            if r["status"] != "ok":
                out.append(f"| {name} | {r['status']}: {r['reason']} | | | | | | | | |")
                continue
            extra = f" ({r['gflops']:.0f} GFLOP/s)" if "gflops" in r else ""
            out.append(
                f"| {name}{extra} | {r['median']:.4f} | {r['min']:.4f} – {r['max']:.4f} | "
                f"{_fmt(r.get('ratio_to_floor'), '.2f')} | "
                f"{_fmt(r.get('ratio_to_pytorch'), '.2f')} | "
                f"{_fmt(r.get('ratio_to_jax_scan'), '.2f')} | "
                f"{_fmt(r.get('paired_ratio_to_jax_scan'), '.2f')} | {r['cpu_median']:.3f} | "
                f"{_fmt(r['final_loss'], '.3f')} | {_fmt(r['train_accuracy'], '.3f')} |")
        out.append("")
        noisy = [name for name, r in wres["systems"].items()
                 if r["status"] == "ok" and r["max"] > NOISY_SPREAD * r["min"]]
        if noisy:
            out += [f"Noisy: the slowest epoch took more than {NOISY_SPREAD:g}× the fastest "
                    f"for {', '.join(noisy)} (other processes were running); the paired and "
                    "minimum ratios under Targets are the steadier reading.", ""]
        compiled = [f"{name} {r['compile_seconds']:.2f} s" for name, r in wres["systems"].items()
                    if r["status"] == "ok" and "compile_seconds" in r]
        if compiled:
            out += ["JAX compilation, in the warm-up and not in any epoch: " + ", ".join(compiled)
                    + ".", ""]
        for name, r in wres["systems"].items():
            if name == TC and r["status"] == "ok":
                out.append(f"torch.compile: warm-up with compilation {r['warmup_seconds']:.1f} "
                           f"s in this process ({wres.get('compile_probe', '')}).")
                out.append("")
    out += ["## Targets (issues 7 and 19)", "",
            "| workload | ratio | measured (medians) | paired | of minimums | floor alone | "
            "at most | met |",
            "|---|---|---:|---:|---:|---:|---:|---|"]
    for t in report["targets"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        out.append(f"| {t['workload']} | {t['what']} | {_fmt(t['ratio'], '.2f')} | "
                   f"{_fmt(t.get('paired_ratio'), '.2f')} | {_fmt(t.get('min_ratio'), '.2f')} | "
                   f"{_fmt(t.get('floor_ratio'), '.2f')} | {t['at_most']} | {met} |")
    out += ["", "*measured*: ratio of the medians, which decides *met*. *paired*: the median "
            "over repeats of the two systems' ratio within one repeat. *of minimums*: the "
            "ratio of the fastest epochs, the least disturbed by other processes. *floor "
            "alone*: the GEMM floor's median over the reference's, the best that chainrule "
            "could reach with NumPy's BLAS; a target below it cannot be met by doing the same "
            "matrix products.", ""]
    if report["memory"]:
        out += ["## Peak memory of chainrule's fit (one epoch, child process)", "",
                "| workload | rows | data MB | peak RSS MB | peak − data | RSS before fit | "
                "fit's peak increase | tracemalloc peak |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for m in report["memory"]:
            if "error" in m:
                out.append(f"| {m['workload']} | {m['n']:,} | failed: {m['error']} |"
                           " | | | | |")
                continue
            out.append(
                f"| {m['workload']} | {m['n']:,} | {m['data_mb']:.1f} | {m['peak_rss_mb']:.1f} "
                f"| {m['peak_minus_data_mb']:.1f} | {m['rss_before_fit_mb']:.1f} | "
                f"{m['fit_peak_increase_mb']:.1f} | {_fmt(m.get('tracemalloc_peak_mb'), '.1f')}"
                " |")
        out += ["",
                "*peak RSS*: the child's `ru_maxrss` (interpreter, NumPy, chainrule, data and "
                "fit). *peak − data* also counts the interpreter and libraries (about "
                "the RSS before fit minus the data). *fit's peak increase*: the peak RSS during "
                "fit (VmHWM, reset just before fit) minus the RSS just before it: what fit "
                "itself adds. *tracemalloc peak*: the largest total of Python/NumPy "
                "allocations made during fit and alive at once (a second child).", ""]
    pools = "; ".join(
        f"{p['internal_api']} {p.get('version') or ''} {p.get('architecture') or ''} "
        f"({p['num_threads']} threads)".replace("  ", " ")
        for p in env["thread_pools"])
    ob = {k: v for k, v in env["openblas_env"].items() if v is not None}
    out += ["## Environment", "",
            f"Python {env['python']}, NumPy {env['numpy']}, PyTorch {env['torch']} "
            f"(torch threads {env['torch_threads']}), JAX {env['jax']} ({env['jax_adam']}), "
            f"scikit-learn {env['sklearn']}, "
            f"chainrule {env['chainrule']}; its Adam update: {env['chainrule_adam']}; its "
            f"compiled kernels: {', '.join(env['chainrule_kernels']) or 'none'}.", "",
            f"Thread pools: {pools}. CPUs this process ran on: {env['cpus']}.", "",
            "OpenBLAS/OpenMP variables: " + (", ".join(f"{k}={v}" for k, v in ob.items())
                                             if ob else "none set") + ".", ""]
    return "\n".join(out)


# -- main ----------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: a quarter of the rows, fewer repeats, results/quick.*")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed epochs per system (default 7, quick 3; at least 3)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="threads for every system (default: this machine's cores)")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS),
                        choices=list(WORKLOADS))
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory children")
    parser.add_argument("--compile-timeout", type=float, default=600,
                        help="seconds allowed to the torch.compile probe of each workload")
    parser.add_argument("--pause", type=float, default=0.2,
                        help="seconds of rest before each timed epoch (default 0.2)")
    parser.add_argument("--out", default=None,
                        help="results name in benchmarks/results/ (default latest, quick)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--compile-probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(json.loads(args.memory_child))
        return 0
    if args.compile_probe:
        compile_probe_child(json.loads(args.compile_probe))
        return 0

    repeats = args.repeats or (3 if args.quick else 7)
    if repeats < 3 and not args.quick:
        parser.error("--repeats must be at least 3 (medians of fewer are not reported)")
    wanted = set(args.systems)
    started = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - started:7.1f} s] {msg}", flush=True)

    if JS in wanted or JX in wanted:
        limit_jax_threads(args.threads)
    if PT in wanted or TC in wanted:
        try:
            import torch  # noqa: F401 - imported before the limits so they reach it
        except ImportError:
            pass
    limiter = limit_threads(args.threads)  # noqa: F841 - keep the limits in force
    env = environment(args.threads)
    log(f"threads {args.threads}; BLAS: " + ", ".join(
        f"{p['internal_api']} {p['architecture']}" for p in env["thread_pools"]
        if p.get("architecture")))
    ob = {k: v for k, v in env["openblas_env"].items() if v is not None}
    if ob:
        log(f"note: {ob} are set; see benchmarks/README.md")

    memory = []
    if not args.no_memory and CR in wanted:
        cases = [(w, (quick(WORKLOADS[w]) if args.quick else WORKLOADS[w]).n)
                 for w in args.workloads]
        cases.append(("mnist-b128", 15_000 if args.quick else 60_000))
        for name, n in cases:
            log(f"memory: chainrule fit on {name} with {n:,} rows")
            memory.append(measure_memory(name, n, args.threads))

    workloads = {}
    for wname in args.workloads:
        w = quick(WORKLOADS[wname]) if args.quick else WORKLOADS[wname]
        log(f"{wname}: {w.describe()}")
        X, y = make_data(w)
        compile_ok = None
        if TC in wanted:
            log(f"  torch.compile probe (at most {args.compile_timeout:g} s)")
            compile_ok = probe_compile(w, args.threads, args.compile_timeout)
            log(f"  torch.compile: {compile_ok[1]}")
        systems = build_systems(w, X, y, wanted, compile_ok)
        reps = max(repeats, w.min_repeats)
        results = time_workload(w, X, y, systems, reps, log, args.pause)
        workloads[wname] = {"description": w.describe(), "n": len(X), "repeats": reps,
                            "batch_size": w.batch_size, "systems": results}
        if compile_ok is not None:
            workloads[wname]["compile_probe"] = compile_ok[1]
        del systems

    env["load_average_end"] = os.getloadavg()
    report = {"quick": args.quick, "environment": env, "workloads": workloads,
              "memory": memory, "targets": evaluate_targets(workloads, memory),
              "seconds": time.perf_counter() - started}
    stem = args.out or ("quick" if args.quick else "latest")
    log(f"wrote {save_results(stem, report, markdown(report))}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
