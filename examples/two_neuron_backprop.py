"""Back-propagation by hand on the notes' two-neuron network, against chainrule (6.5.7–6.5.9).

    x ─ w¹, w0¹ ─▶ z¹ ─ σ ─▶ a¹ ─ w², w0² ─▶ z² ─ σ ─▶ a²,   L = (a² − y)²

Each derivative below is one factor of the chain rule, written out as in the notes; then the
same numbers come from chainrule's backward pass, from cr.explain, and from finite
differences (gradcheck). One step of gradient descent closes the loop.

    python examples/two_neuron_backprop.py [--quick] [--plot loss_slope.png]
"""

import argparse
import math

import numpy as np

import chainrule as cr
from chainrule.explain import explain

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="(no effect: this one is instant)")
parser.add_argument("--plot", metavar="PNG", help="plot L(w¹) and its tangent of slope ∂L/∂w¹")
args = parser.parse_args()

x, y, eta = 2.0, 1.0, 0.1
w1, w01, w2, w02 = 0.5, -0.25, -1.5, 0.5


def sigma(z):
    return 1 / (1 + math.exp(-z))


# -- by hand: forward, then the chain rule backwards --------------------------------------
z1 = w1 * x + w01
a1 = sigma(z1)
z2 = w2 * a1 + w02
a2 = sigma(z2)
L = (a2 - y) ** 2
dL_da2 = 2 * (a2 - y)            # ∂L/∂a²
da2_dz2 = a2 * (1 - a2)          # ∂a²/∂z² = σ′(z²), from the output
dL_dz2 = dL_da2 * da2_dz2        # ∂L/∂z²
dL_dw2 = a1 * dL_dz2             # ∂L/∂w² = a¹ ∂L/∂z²
dL_dw02 = dL_dz2                 # ∂L/∂w0² = ∂L/∂z²
dL_da1 = dL_dz2 * w2             # ∂L/∂a¹ = ∂L/∂z² w²
dL_dz1 = dL_da1 * a1 * (1 - a1)  # ∂L/∂z¹ = ∂L/∂a¹ σ′(z¹)
dL_dw1 = x * dL_dz1              # ∂L/∂w¹ = x ∂L/∂z¹
dL_dw01 = dL_dz1                 # ∂L/∂w0¹ = ∂L/∂z¹

# -- the same network in chainrule (float64, so the digits agree) -------------------------
first, second = cr.Linear(1, 1, dtype=np.float64), cr.Linear(1, 1, dtype=np.float64)
model = cr.Sequential(first, cr.Sigmoid(), second, cr.Sigmoid())
for p, v in [(first.W, w1), (first.W0, w01), (second.W, w2), (second.W0, w02)]:
    p.data[:] = v
loss = cr.SquareLoss()
X, Y = np.array([[x]]), np.array([[y]])
value = loss(model(X), Y)
model.backward_from(loss)

print(f"forward: z¹ = {z1:.6f}, a¹ = {a1:.6f}, z² = {z2:.6f}, a² = {a2:.6f}, L = {L:.6f}"
      f" (chainrule: {value:.6f})\n")
print(f"{'derivative':<10}{'by hand':>14}{'chainrule':>14}")
rows = [("∂L/∂w²", dL_dw2, second.W), ("∂L/∂w0²", dL_dw02, second.W0),
        ("∂L/∂w¹", dL_dw1, first.W), ("∂L/∂w0¹", dL_dw01, first.W0)]
for name, hand, p in rows:
    print(f"{name:<10}{hand:>14.8f}{p.grad.item():>14.8f}")
agree = all(abs(hand - p.grad.item()) < 1e-12 for _, hand, p in rows)
print("hand and chainrule agree:", agree)

values = explain(model, loss, X, Y).layers[0]["values"]  # layer 2's signed values
print(f"explain: z² = {values['Z'].item():.8f} (by hand {z2:.8f}), ∂L/∂z² = "
      f"{values['dLdZ'].item():.8f} (by hand {dL_dz2:.8f}), ∂L/∂W² = "
      f"{values['dLdW'].item():.8f} (by hand {dL_dw2:.8f})")
check = cr.gradcheck(model, loss, X, Y)
print(f"gradcheck: max relative error {check.max_rel_error:.1e} ({'ok' if check.ok else 'NOT OK'})")

# -- one step of gradient descent: w ← w − η ∂L/∂w ----------------------------------------
cr.SGD(lr=eta).step(model.parameters())
by_hand = [w1 - eta * dL_dw1, w01 - eta * dL_dw01, w2 - eta * dL_dw2, w02 - eta * dL_dw02]
print("after one SGD step (η = 0.1), w¹, w0¹, w², w0²:",
      " ".join(f"{p.data.item():.6f}" for p in model.parameters()),
      "| by hand:", " ".join(f"{v:.6f}" for v in by_hand))
print(f"new loss {loss(model(X), Y):.6f} < old loss {L:.6f}")

if args.plot:
    from matplotlib.figure import Figure

    def L_of(w):  # the loss as a function of w¹ alone
        a = sigma(w2 * sigma(w * x + w01) + w02)
        return (a - y) ** 2
    ws = np.linspace(w1 - 3, w1 + 3, 200)
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(ws, [L_of(w) for w in ws], label="L(w¹)")
    ax.plot(ws, L + dL_dw1 * (ws - w1), "--", label=f"tangent, slope ∂L/∂w¹ = {dL_dw1:.4f}")
    ax.plot([w1], [L], "o", color="crimson", label="current w¹")
    ax.set(xlabel="w¹", ylabel="loss L", title="The derivative back-propagation computes",
           ylim=(0, 1.1 * max(L_of(w) for w in ws)))
    ax.legend()
    fig.savefig(args.plot)
    print("wrote", args.plot)
