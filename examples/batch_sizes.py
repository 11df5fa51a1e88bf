"""SGD vs mini-batch vs batch gradient descent on one regression problem (notes' 6.7.1).

What the notes say (Concepts 23 and 25), measured here with the same step size η for all:
- batch gradient descent (batch_size=None) takes one exact, smooth step per epoch: steady,
  but little progress per pass over the data;
- stochastic gradient descent (batch_size=1) takes n cheap but noisy steps per epoch: far
  more progress per epoch than batch descent, and the loss jitters from step to step;
- mini-batches (here 16) are "more accurate than SGD": much less step noise, and each step
  is a matrix product that NumPy does efficiently.
SGD runs twice: over epochs (each row once per epoch, fit's default) and as the
pseudocode of the notes' 6.6.2 has it, a random point each step (sampling="replacement").
The script checks each claim it prints, and names the batch size that got furthest: on this
problem, at the full settings, the mini-batches rather than SGD, whose noise costs it more
than its sixteen times as many steps bring.

    python examples/batch_sizes.py [--quick] [--plot batch_sizes.png]
"""

import argparse
import time

import numpy as np

import chainrule as cr

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="tiny settings (for tests)")
parser.add_argument("--plot", metavar="PNG", help="save loss curves to this file")
args = parser.parse_args()
epochs, n = (3, 64) if args.quick else (40, 256)

rng = np.random.default_rng(0)
X = rng.uniform(-2, 2, size=(n, 1))
Y = np.sin(2 * X) + 0.1 * rng.normal(size=(n, 1))


class StepLosses:
    """Callback: the loss of every optimizer step (to see the noise)."""

    def __init__(self):
        self.losses = []

    def on_step_end(self, step, logs):
        self.losses.append(logs["loss"])


runs, noise_of = {}, {}
print(f"{n} samples, {epochs} epochs, plain SGD updates W ← W − η ∂L/∂W with η = 0.05")
print(f"{'batch size':<16}{'steps/epoch':>12}{'final loss':>12}{'step noise':>12}{'time':>8}")
RUNS = [("1 (SGD)", 1, "epochs"), ("1, replacement", 1, "replacement"),
        ("16 (mini)", 16, "epochs"), ("all (batch)", None, "epochs")]
for label, batch_size, sampling in RUNS:
    model = cr.Sequential(cr.Linear(1, 32, init="xavier", rng=1), cr.Tanh(),
                          cr.Linear(32, 1, init="xavier", rng=2), cr.Identity())
    steps = StepLosses()
    t0 = time.perf_counter()
    history = cr.fit(model, cr.SquareLoss(), X, Y, optimizer=cr.SGD(lr=0.05), epochs=epochs,
                     batch_size=batch_size, sampling=sampling, rng=0, callbacks=[steps],
                     progress=False)
    seconds = time.perf_counter() - t0
    # Step noise: spread of consecutive step losses relative to their level, last quarter.
    per_epoch = len(steps.losses) // epochs
    last = np.array(steps.losses[-max(2, len(steps.losses) // 4):])
    noise = float(np.std(np.diff(last)) / np.mean(last))
    runs[label], noise_of[label] = (history, steps.losses), noise
    print(f"{label:<16}{per_epoch:>12}{history.history['loss'][-1]:>12.4f}{noise:>12.2f}"
          f"{seconds:>7.2f}s")

final = {label: h.history["loss"][-1] for label, (h, _) in runs.items()}
print("SGD and mini-batches make more progress per epoch than batch descent:",
      final["1 (SGD)"] < final["all (batch)"] and final["16 (mini)"] < final["all (batch)"])
print("SGD's steps are noisier than mini-batches':", noise_of["1 (SGD)"] > noise_of["16 (mini)"])
print(f"lowest training loss after {epochs} epochs:", min(final, key=final.get))

if args.plot:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    for label, (history, losses) in runs.items():
        left.plot(history.history["loss"], label=label)
        right.plot(np.linspace(0, epochs, len(losses)), losses, label=label, linewidth=0.8,
                   alpha=0.6 if len(losses) > 10 * epochs else 1.0)
    left.set(xlabel="epoch", ylabel="training loss (mean over the epoch)", yscale="log",
             title="Progress per pass over the data")
    right.set(xlabel="epoch", ylabel="loss of each step's batch", ylim=(0, 1.0),
              title="Step by step: SGD is noisy")
    left.legend(), right.legend()
    fig.savefig(args.plot)
    print("wrote", args.plot)
