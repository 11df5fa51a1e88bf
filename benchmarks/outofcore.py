"""fit on a float32 memmap larger than what it may hold, against the same data in memory.

    python benchmarks/outofcore.py [--rows 650000] [--features 784] [--epochs 2]
                                   [--rounds 2] [--dir /tmp] [--keep]

Writes ``rows × features`` float32 standard-normal rows (2.0 GB by default) to a file under
``--dir``, a block at a time, with labels in 0..9 that depend on the first features. Then two
fresh worker processes (this interpreter, one BLAS thread each) train the same network
(Linear(784, 128), ReLU, Linear(128, 10), Softmax; Adam; batch 32; seed 0):

- *memmap*: ``fit`` on ``np.memmap(path, mode="r")``, read a window at a time;
- *memory*: ``fit`` on ``np.fromfile(path)``, the whole array in memory.

Each worker reports its RssAnon once chainrule, the network and the labels are loaded (the
baseline), then runs ``fit``; this process samples the worker's RssAnon from /proc/PID/status
every ~2 ms meanwhile. Printed: the peak RssAnon above the baseline (target for the memmap:
≤ 300 MB), each epoch's time from the History and the time ``fit`` took in all (which for the
memmap includes its one pass checking every value), and the memmap's epoch speed as a
fraction of the in-memory one (target ≥ 70 %), from the fastest epoch of each. The two
workers run in turn ``--rounds`` times, so that load from other processes falls on both. The
file is deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def rss_anon_kb(pid="self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def write_data(path: Path, rows: int, features: int, block: int = 20_000) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(rows, features))
    labels = np.empty(rows, dtype=np.int64)
    for start in range(0, rows, block):
        end = min(start + block, rows)
        X = rng.standard_normal((end - start, features), dtype=np.float32)
        mm[start:end] = X
        labels[start:end] = np.argmax(X[:, :10], axis=1)
    mm.flush()
    del mm
    np.save(path.with_suffix(".labels.npy"), labels)


def worker(mode: str, path: str, rows: int, features: int, epochs: int) -> None:
    import numpy as np

    import chainrule as cr

    y = np.load(Path(path).with_suffix(".labels.npy"))
    model = cr.Sequential(cr.Linear(features, 128, init="he", rng=0), cr.ReLU(),
                          cr.Linear(128, 10, init="xavier", rng=1), cr.Softmax())
    print(json.dumps({"baseline_kb": rss_anon_kb()}), flush=True)
    sys.stdin.readline()  # the parent has read the baseline and samples from now on
    if mode == "memmap":
        X = np.memmap(path, dtype=np.float32, mode="r", shape=(rows, features))
    else:
        X = np.fromfile(path, dtype=np.float32).reshape(rows, features)
    t0 = time.perf_counter()
    history = cr.fit(model, cr.NLLM(), X, y, epochs=epochs, batch_size=32, rng=0,
                     progress=False)
    result = {"fit_s": time.perf_counter() - t0, "epoch_s": history.history["time"],
              "loss": history.history["loss"]}
    Path(path).with_suffix(f".{mode}.json").write_text(json.dumps(result))


def run(mode: str, path: Path, rows: int, features: int, epochs: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, __file__, "--worker", mode, "--path", str(path),
                          "--rows", str(rows), "--features", str(features),
                          "--epochs", str(epochs)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    baseline = json.loads(p.stdout.readline())["baseline_kb"]
    p.stdin.write("go\n")
    p.stdin.flush()
    peak = baseline
    while p.poll() is None:
        try:
            peak = max(peak, rss_anon_kb(p.pid))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.002)
    if p.wait() != 0:
        raise SystemExit(f"{mode} worker failed")
    out = path.with_suffix(f".{mode}.json")
    result = json.loads(out.read_text())
    out.unlink()
    result.update(baseline_mb=baseline / 1024, peak_above_baseline_mb=(peak - baseline) / 1024)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=650_000)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--worker", choices=["memmap", "memory"])
    parser.add_argument("--path")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.path, args.rows, args.features, args.epochs)
        return
    path = Path(args.dir) / f"chainrule-outofcore-{args.rows}x{args.features}.f32"
    try:
        t0 = time.perf_counter()
        write_data(path, args.rows, args.features)
        print(f"data: {args.rows} × {args.features} float32, "
              f"{path.stat().st_size / 2**30:.2f} GiB, written in {time.perf_counter() - t0:.1f} s")
        runs = [(mode, run(mode, path, args.rows, args.features, args.epochs))
                for _ in range(args.rounds) for mode in ("memmap", "memory")]
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
            path.with_suffix(".labels.npy").unlink(missing_ok=True)
    print("| data | peak RssAnon above baseline | epoch times | fit in all | loss, last epoch |")
    print("|---|---|---|---|---|")
    for mode, r in runs:
        print(f"| {mode} | {r['peak_above_baseline_mb']:.0f} MB | "
              + ", ".join(f"{t:.1f} s" for t in r["epoch_s"])
              + f" | {r['fit_s']:.1f} s | {r['loss'][-1]:.4f} |")
    fastest = {m: min(t for mode, r in runs if mode == m for t in r["epoch_s"])
               for m in ("memmap", "memory")}
    peak = max(r["peak_above_baseline_mb"] for mode, r in runs if mode == "memmap")
    print(f"memmap epoch speed: {100 * fastest['memory'] / fastest['memmap']:.0f} % of in memory "
          f"(fastest epochs, {fastest['memmap']:.2f} s against {fastest['memory']:.2f} s; "
          f"target ≥ 70 %); peak RssAnon {peak:.0f} MB above the baseline (target ≤ 300 MB)")


if __name__ == "__main__":
    main()
