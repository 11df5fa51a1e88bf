"""Vanishing and exploding gradients in a 10-layer network (notes' 6.7.3).

Back-propagation multiplies, layer after layer, by Wᵀ and by the diagonal f′(z):
    ∂L/∂Zˡ = (∂L/∂Zˡ⁺¹ Wˡ⁺¹ᵀ) * f′(Zˡ)
A sigmoid's f′ is at most 1/4, so with the notes' weights (Var W = 1/m) the signal shrinks
about 4× per layer and the first layers barely learn. ReLU's f′ is 0 or 1 and He's
Var W = 2/m makes up for the half that is 0: the signal keeps its size. Weights twice too
large make it grow about 2× per layer instead: exploding gradients. cr.explain measures
the chain as r = ‖∂L/∂Z¹‖ / ‖∂L/∂Zᴸ‖ and flags r < 1e-3 "vanishing", r > 1e2 "exploding"
(chainrule's thresholds, beyond the notes).

    python examples/vanishing_gradients.py [--quick] [--plot vanishing.png]
"""

import argparse

import numpy as np

import chainrule as cr
from chainrule.explain import explain

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="tiny settings (for tests)")
parser.add_argument("--plot", metavar="PNG", help="save gradient norms and loss curves")
args = parser.parse_args()
epochs, n, depth, width = (2, 128, 10, 32) if args.quick else (30, 1024, 10, 32)

rng = np.random.default_rng(0)
X = rng.normal(size=(n, width)).astype(np.float32)
y = (X[:, 0] * X[:, 1] > 0).astype(int)  # XOR of two signs: needs the hidden layers

CONFIGS = {  # name: (activation, init, scale of the initial weights)
    "sigmoid, gaussian 1/m": (cr.Sigmoid, "gaussian", 1.0),
    "tanh, xavier": (cr.Tanh, "xavier", 1.0),
    "relu, gaussian 1/m": (cr.ReLU, "gaussian", 1.0),
    "relu, he 2/m": (cr.ReLU, "he", 1.0),
    "relu, he, W × 2": (cr.ReLU, "he", 2.0),
}


def network(act, init, scale):
    modules = []
    for i in range(depth - 1):
        modules += [cr.Linear(width, width, init=init, rng=i), act()]
    model = cr.Sequential(*modules, cr.Linear(width, 1, init="xavier", rng=99), cr.Sigmoid())
    for p in model.parameters():
        p.data *= scale
    return model


print(f"{depth} layers of {width} units, {n} samples; explain on {min(n, 256)} of them, then "
      f"{epochs} epochs of SGD (η = 0.05, batches of 32)")
print(f"{'network':<24}{'r = ‖∂L/∂Z¹‖/‖∂L/∂Zᴸ‖':>24}{'‖∂L/∂W¹‖/‖∂L/∂Wᴸ‖':>20}{'flag':>11}"
      f"{'loss':>9}{'accuracy':>10}")
norms, histories = {}, {}
for name, (act, init, scale) in CONFIGS.items():
    model = network(act, init, scale)
    report = explain(model, cr.NLL(), X[:256], y[:256])
    first = report.layers[-1]  # layer 1, the end of the longest chain
    norms[name] = [layer["norms"]["dLdW"] for layer in reversed(report.layers)]
    try:
        h = cr.fit(model, cr.NLL(), X, y, optimizer=cr.SGD(lr=0.05), epochs=epochs,
                   batch_size=32, rng=0, progress=False)
        histories[name] = h
        result = f"{h.history['loss'][-1]:>9.3f}{h.history['accuracy'][-1]:>10.2f}"
    except cr.DivergenceError:
        result = f"{'diverged':>19}"
    print(f"{name:<24}{first['r']:>24.1e}{report.ratio(first):>20.1e}"
          f"{first['flag'] or '—':>11}{result}")
print("accuracy 0.5 is chance: the sigmoid network has not learned. With W × 2 the backward\n"
      "signal ∂L/∂Z grows layer by layer and every ‖∂L/∂W‖ is large: the steps overshoot.")

if args.plot:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    for name, values in norms.items():
        left.plot(range(1, depth + 1), values, marker="o", label=name)
    left.set(xlabel="layer ℓ (1 = next to the input)", ylabel="‖∂L/∂Wˡ‖ at initialisation",
             yscale="log", title="Gradient reaching each layer")
    for name, h in histories.items():
        right.plot(h.history["loss"], label=name)
    right.set(xlabel="epoch", ylabel="training loss (NLL)", title="What that does to training")
    left.legend(fontsize="small"), right.legend(fontsize="small")
    fig.savefig(args.plot)
    print("wrote", args.plot)
