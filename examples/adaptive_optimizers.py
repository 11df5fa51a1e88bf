"""Optimizers with adaptive step sizes (named in the notes' 6.7.2) on the same two problems.

The chapter names Momentum, Adadelta and Adam and defers their formulas to an appendix; the
formulas here are the papers' and PyTorch's (see docs/notes/optimizing.md).

1. A long, narrow valley J(w) = ½(w₁² + 25 w₂²): with η near its limit 2/25, gradient
   descent zig-zags across the steep w₂ direction; momentum averages the zig-zag into a
   smooth curve; Adagrad, RMSprop, Adadelta and Adam scale each weight's step by its own
   gradient history, so w₁ and w₂ take steps of similar size (paths head diagonally).
2. A small network fitting sin(2x), mini-batches of 16, each optimizer with its usual η.

Naming: what some course appendices call "Adadelta" (a running average of g² scaling a
fixed η) is RMSprop here; chainrule's Adadelta is Zeiler's, which needs no η at all (lr=1.0).

    python examples/adaptive_optimizers.py [--quick] [--plot optimizers.png]
"""

import argparse

import numpy as np

import chainrule as cr

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="tiny settings (for tests)")
parser.add_argument("--plot", metavar="PNG", help="save trajectories and loss curves")
args = parser.parse_args()
steps, epochs = (20, 3) if args.quick else (100, 40)

CURVATURE = np.array([[1.0, 25.0]])  # J(w) = ½ Σ cᵢ wᵢ²,  ∂J/∂w = c * w
valley = {  # (optimizer on the valley, optimizer on the network)
    "SGD": (cr.SGD(lr=0.075), cr.SGD(lr=0.05)),
    "Momentum": (cr.Momentum(lr=0.01, beta=0.9), cr.Momentum(lr=0.01)),
    "Adagrad": (cr.Adagrad(lr=1.0), cr.Adagrad(lr=0.05)),
    "RMSprop": (cr.RMSprop(lr=0.1, rho=0.9), cr.RMSprop(lr=0.003)),
    "Adadelta": (cr.Adadelta(lr=1.0, rho=0.9, eps=1e-2), cr.Adadelta()),  # eps sets its first steps
    "Adam": (cr.Adam(lr=0.3), cr.Adam(lr=0.01)),
}

print(f"1. the valley J(w) = ½(w₁² + 25 w₂²) from w = (-4, 1.5), {steps} steps")
print(f"{'optimizer':<10}{'J(w) at the end':>16}   w at the end")
paths = {}
for name, (opt, _) in valley.items():
    w = cr.Parameter(np.array([[-4.0, 1.5]]), "W")
    path = [w.data.copy()]
    for _ in range(steps):
        w.grad[...] = CURVATURE * w.data  # the gradient, as a backward pass would set it
        opt.step([w])
        path.append(w.data.copy())
    paths[name] = np.concatenate(path)
    J = 0.5 * float(np.sum(CURVATURE * w.data**2))
    print(f"{name:<10}{J:>16.2e}   ({w.data[0, 0]:+.4f}, {w.data[0, 1]:+.4f})")

rng = np.random.default_rng(0)
X = rng.uniform(-2, 2, size=(256, 1))
Y = np.sin(2 * X) + 0.1 * rng.normal(size=(256, 1))
print(f"\n2. a 1-32-32-1 tanh network on sin(2x), {epochs} epochs of mini-batches of 16")
print(f"{'optimizer':<10}{'η':>8}{'training loss':>15}{'validation loss':>17}")
histories = {}
for name, (_, opt) in valley.items():
    model = cr.Sequential(cr.Linear(1, 32, init="xavier", rng=1), cr.Tanh(),
                          cr.Linear(32, 32, init="xavier", rng=2), cr.Tanh(),
                          cr.Linear(32, 1, init="xavier", rng=3), cr.Identity())
    h = cr.fit(model, cr.SquareLoss(), X, Y, optimizer=opt, epochs=epochs, batch_size=16,
               validation_split=0.25, rng=0, progress=False)
    histories[name] = h
    print(f"{name:<10}{opt.lr:>8g}{h.history['loss'][-1]:>15.4f}{h.history['val_loss'][-1]:>17.4f}")
best = min(histories, key=lambda k: histories[k].history["val_loss"][-1])
print(f"lowest validation loss: {best}")

if args.plot:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    g1, g2 = np.meshgrid(np.linspace(-4.5, 1.5, 200), np.linspace(-2, 2, 200))
    left.contour(g1, g2, 0.5 * (g1**2 + 25 * g2**2), levels=np.geomspace(0.01, 60, 12),
                 colors="0.75", linewidths=0.7)
    for name, path in paths.items():
        left.plot(path[:, 0], path[:, 1], marker=".", markersize=3, linewidth=1, label=name)
    left.plot([0], [0], "k*", markersize=12)
    left.set(xlabel="w₁", ylabel="w₂", title="Paths on J(w) = ½(w₁² + 25 w₂²)",
             xlim=(-4.5, 1.5), ylim=(-2, 2))
    for name, h in histories.items():
        right.plot(h.history["val_loss"], label=name)
    right.set(xlabel="epoch", ylabel="validation loss", yscale="log",
              title="Fitting sin(2x) with each optimizer")
    left.legend(fontsize="small"), right.legend(fontsize="small")
    fig.savefig(args.plot)
    print("wrote", args.plot)
