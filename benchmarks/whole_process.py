"""A whole program, start to finish, per library: import, build, 20 epochs on digits, predict.

    python benchmarks/whole_process.py [--rounds 7] [--epochs 20] [--threads 2]
                                       [--systems chainrule jax pytorch scikit-learn]

What a user waits for when they run a small training script: each library in a fresh
process of its own (``python whole_process.py --child NAME``), which imports the library,
loads scikit-learn's digits (1,797 × 64, standardised, float32, saved once to ``.npy`` by
this process so that no child pays for loading them differently), builds the 64 → 64 → 10
network (ReLU, softmax output under cross-entropy, Adam with lr 1e-3), trains it for
``--epochs`` epochs of shuffled batches of 32 and predicts the training rows. The children:

- **chainrule**: ``cr.fit(model, cr.NLLM(), X, y, optimizer=cr.Adam(), epochs=E,
  batch_size=32)`` and ``model.predict(X)``.
- **jax**: the epoch as one jitted ``lax.scan`` (``workloads.Jax(scan=True)``'s functions,
  compiled on the first call, so compilation is part of the time, as it is for a user).
- **pytorch**: the loop of ``workloads.Torch`` (eager), then ``model(X)`` under ``no_grad``.
- **scikit-learn**: ``MLPClassifier(solver="adam", batch_size=32, max_iter=E)``.

Wall time is measured here around the child (interpreter start to exit); peak memory is the
child's ``ru_maxrss`` (VmHWM), read by a bare launcher interpreter between this process and
the child (see ``run._LAUNCHER`` for why), which also pins the child to the first
``--threads`` CPUs when there are more (XLA sizes its pools by them). BLAS and OpenMP get
``--threads`` through ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``/``MKL_NUM_THREADS``,
PyTorch through ``torch.set_num_threads``. The systems run in turn, the order rotated every
round; ratios chainrule / other are taken round by round (paired) and their medians reported.
Writes ``results/whole_process.{md,json}`` (``--out NAME``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SYSTEMS = ("chainrule", "jax", "pytorch", "scikit-learn")
# chainrule / other, paired medians, at most (issue 19)
TARGETS = [("wall", "jax", 0.35), ("wall", "pytorch", 0.5), ("peak", "jax", 0.5)]
BATCH, HIDDEN, SEED = 32, 64, 0

_LAUNCHER = """\
import os, resource, subprocess, sys
cpus = [int(c) for c in os.environ.pop("WHOLE_PROCESS_CPUS").split(",")]
if len(cpus) < len(os.sched_getaffinity(0)):
    os.sched_setaffinity(0, cpus)
code = subprocess.call(sys.argv[1:])
sys.stdout.flush()
print("ru_maxrss_kb", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True)
sys.exit(code)
"""


# -- the children: each a user's whole script ----------------------------------------------

def child_chainrule(X, y, epochs: int, threads: int):
    import chainrule as cr

    rng = np.random.default_rng(SEED)
    model = cr.Sequential(cr.Linear(X.shape[1], HIDDEN, rng=rng), cr.ReLU(),
                          cr.Linear(HIDDEN, 10, rng=rng), cr.Softmax())
    cr.fit(model, cr.NLLM(), X, y, optimizer=cr.Adam(), epochs=epochs, batch_size=BATCH,
           shuffle=True, progress=False, rng=SEED)
    return model.predict(X).argmax(axis=1)


def child_jax(X, y, epochs: int, threads: int):
    sys.path.insert(0, str(HERE))
    from workloads import WORKLOADS, Jax

    rng = np.random.default_rng(SEED)  # the notes' N(0, 1/m) weights, zero offsets
    weights = [(rng.normal(0, m ** -0.5, (m, n)).astype(np.float32), np.zeros((1, n), np.float32))
               for m, n in ((X.shape[1], HIDDEN), (HIDDEN, 10))]
    system = Jax(WORKLOADS["digits-b32"], X, y, scan=True, weights=weights)
    for _ in range(epochs):  # the first call compiles
        system._fit(X, y, system.X, system.y)
    return np.asarray(system._forward(system.state[0], system.X)).argmax(axis=1)


def child_pytorch(X, y, epochs: int, threads: int):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    model = nn.Sequential(nn.Linear(X.shape[1], HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        perm = torch.randperm(len(Xt), generator=generator)
        for start in range(0, len(Xt), BATCH):
            idx = perm[start:start + BATCH]
            optimizer.zero_grad()
            loss = criterion(model(Xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
            loss.item()
    with torch.no_grad():
        return model(Xt).argmax(dim=1).numpy()


def child_sklearn(X, y, epochs: int, threads: int):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(HIDDEN,), solver="adam", learning_rate_init=1e-3,
                        alpha=0.0, batch_size=BATCH, max_iter=epochs, shuffle=True, tol=0.0,
                        n_iter_no_change=10**9, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    return clf.predict(X)


CHILDREN = {"chainrule": child_chainrule, "jax": child_jax, "pytorch": child_pytorch,
            "scikit-learn": child_sklearn}


def child(name: str, data: Path, epochs: int, threads: int) -> None:
    X, y = np.load(data / "X.npy"), np.load(data / "y.npy")
    pred = CHILDREN[name](X, y, epochs, threads)
    print(json.dumps({"accuracy": float(np.mean(pred == y))}))


# -- the coordinator -----------------------------------------------------------------------

def save_digits(folder: Path) -> None:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(axis=0)) / np.maximum(X.std(axis=0), 1e-12)
    np.save(folder / "X.npy", np.ascontiguousarray(X, dtype=np.float32))
    np.save(folder / "y.npy", y.astype(np.int64))


def run_one(name: str, data: Path, epochs: int, threads: int) -> dict:
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    env = dict(os.environ, WHOLE_PROCESS_CPUS=",".join(map(str, cpus)),
               OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-S", "-c", _LAUNCHER, sys.executable, str(Path(__file__).resolve()),
           "--child", name, "--data", str(data), "--epochs", str(epochs),
           "--threads", str(threads)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        return {"error": lines[-1][:300] if lines else f"exit {p.returncode}"}
    lines = p.stdout.strip().splitlines()
    return {"wall_s": wall, "peak_mb": int(lines[-1].split()[1]) / 1024,
            **json.loads(lines[-2])}


def markdown(rep: dict) -> str:
    load = lambda k: ", ".join(f"{x:.2f}" for x in rep[k])  # noqa: E731
    out = [f"# The whole process: import, build, {rep['epochs']} epochs on digits, predict", "",
           f"{rep['date']}; {rep['threads']} threads; {rep['rounds']} rounds, the order "
           f"rotated each round; load average at start {load('load_start')}, at end "
           f"{load('load_end')}.", "",
           "| system | wall s (median) | min – max | peak RSS MB (median) | train acc. |",
           "|---|---:|---:|---:|---:|"]
    for name, runs in rep["runs"].items():
        ok = [r for r in runs if "error" in r] == []
        if not ok:
            out.append(f"| {name} | failed: {runs[-1].get('error', '?')} | | | |")
            continue
        walls = [r["wall_s"] for r in runs]
        out.append(f"| {name} | {statistics.median(walls):.3f} | {min(walls):.3f} – "
                   f"{max(walls):.3f} | {statistics.median(r['peak_mb'] for r in runs):.1f} | "
                   f"{runs[-1]['accuracy']:.3f} |")
    out += ["", "| chainrule / | wall (paired median) | min – max | peak memory (paired "
            "median) | at most | met |", "|---|---:|---:|---:|---:|---|"]
    for other, r in rep["ratios"].items():
        limits = {kind: limit for kind, o, limit in TARGETS if o == other}
        met = [("wall" if kind == "wall" else "peak") + (" yes" if r[kind] <= limit else
                                                         " **no**")
               for kind, limit in limits.items()]
        out.append(f"| {other} | {r['wall']:.3f} | {r['wall_min']:.3f} – {r['wall_max']:.3f} | "
                   f"{r['peak']:.3f} | " + ", ".join(f"{k} {v}" for k, v in limits.items())
                   + f" | {', '.join(met) or '–'} |")
    out += ["", "Wall: from starting the child's interpreter to its exit, measured by the "
            "coordinator. Peak RSS: the child's ru_maxrss (MB = 2^20 bytes)."]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--out", default="whole_process",
                        help="results name in benchmarks/results/")
    parser.add_argument("--child", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.data, args.epochs, args.threads)
        return 0
    started = time.perf_counter()
    rep = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
           "epochs": args.epochs, "threads": args.threads, "rounds": args.rounds,
           "load_start": os.getloadavg(), "runs": {name: [] for name in args.systems}}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        save_digits(data)
        for name in args.systems:  # once untimed: the files the children read are cached
            run_one(name, data, 1, args.threads)
        for r in range(args.rounds):
            k = r % len(args.systems)
            for name in args.systems[k:] + args.systems[:k]:
                rep["runs"][name].append(run_one(name, data, args.epochs, args.threads))
            print(f"[{time.perf_counter() - started:6.1f} s] round {r + 1}/{args.rounds}: "
                  + ", ".join(f"{n} {rep['runs'][n][-1].get('wall_s', float('nan')):.2f} s"
                              for n in args.systems), file=sys.stderr, flush=True)
    rep["ratios"] = {}
    cr = rep["runs"].get("chainrule", [])
    for other in args.systems:
        runs = rep["runs"][other]
        if other == "chainrule" or any("error" in r for r in cr + runs):
            continue
        wall = [a["wall_s"] / b["wall_s"] for a, b in zip(cr, runs)]
        rep["ratios"][other] = {
            "wall": statistics.median(wall), "wall_min": min(wall), "wall_max": max(wall),
            "peak": statistics.median(a["peak_mb"] / b["peak_mb"] for a, b in zip(cr, runs))}
    rep["load_end"] = os.getloadavg()
    rep["seconds"] = time.perf_counter() - started
    sys.path.insert(0, str(HERE))
    from workloads import save_results
    save_results(args.out, rep, markdown(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
