"""Write a new module, check its backward pass with gradcheck, and train with it.

A module needs forward (cache what backward needs), backward (return ∂L/∂input and
overwrite each parameter's .grad), parameters, train and eval; chainrule.Module supplies
all but the first two. Here: a parametric ReLU, f(z) = z for z ≥ 0 and a·z below, with one
learnable slope a per unit (He et al. 2015). Its derivatives, from the chain rule:

    ∂L/∂Z = ∂L/∂A * (1 where z ≥ 0, else a)
    ∂L/∂a = Σ over rows of ∂L/∂A * (0 where z ≥ 0, else z)

cr.save stores only the documented modules, so a model with PReLU is saved by hand
(np.savez of its parameters) or the module is contributed to chainrule.

    python examples/custom_module.py [--quick] [--plot prelu.png]
"""

import argparse

import numpy as np

import chainrule as cr

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="tiny settings (for tests)")
parser.add_argument("--plot", metavar="PNG", help="save the learned slopes and loss curves")
args = parser.parse_args()
epochs = 3 if args.quick else 60


class PReLU(cr.Module):
    """f(z) = z if z ≥ 0 else a·z, with a learnable slope a per unit: ``(1, n)``."""

    _params = ("a",)

    def __init__(self, n, a=0.25, dtype=np.float32):
        self.a = cr.Parameter(np.full((1, n), a, dtype), "a")  # not "W": no weight decay

    def forward(self, Z):
        self.Z, self.negative = Z, Z < 0  # all that backward needs
        return np.where(self.negative, self.a.data * Z, Z)

    def backward(self, dLdA):
        self.a.grad[...] = np.sum(dLdA * np.where(self.negative, self.Z, 0), axis=0,
                                  keepdims=True)
        return dLdA * np.where(self.negative, self.a.data, 1)


class BuggyPReLU(PReLU):
    """The same with a classic slip: ∂L/∂a forgets the factor z."""

    def backward(self, dLdA):
        dLdZ = super().backward(dLdA)
        self.a.grad[...] = np.sum(dLdA * self.negative, axis=0, keepdims=True)
        return dLdZ


rng = np.random.default_rng(0)
X, Y = rng.normal(size=(6, 3)), rng.integers(0, 2, 6)
for cls in (PReLU, BuggyPReLU):
    model = cr.Sequential(cr.Linear(3, 4, rng=1), cls(4), cr.Linear(4, 1, rng=2), cr.Sigmoid())
    report = cr.gradcheck(model, cr.NLL(), X, Y)
    print(f"gradcheck of {cls.__name__}:\n{report}\n")

# Training with it: fit, explain and the optimizers treat it like any built-in module.
X = rng.normal(size=(512, 2))
y = (np.abs(X[:, 0]) + np.abs(X[:, 1]) < 1.2).astype(int)  # a diamond: needs a kink
histories = {}
for name, act in [("PReLU", lambda: PReLU(32)), ("ReLU", cr.ReLU)]:
    model = cr.Sequential(cr.Linear(2, 32, init="he", rng=3), act(),
                          cr.Linear(32, 1, init="xavier", rng=4), cr.Sigmoid())
    histories[name] = cr.fit(model, cr.NLL(), X, y, optimizer=cr.Adam(lr=0.01),
                             epochs=epochs, validation_split=0.25, rng=0, progress=False)
    print(f"{name}: validation accuracy {histories[name].history['val_accuracy'][-1]:.3f}")
    if name == "PReLU":
        slopes = model.modules[1].a.data.ravel()
        print(f"learned slopes a: min {slopes.min():.3f}, mean {slopes.mean():.3f}, "
              f"max {slopes.max():.3f} (all started at 0.25; a < 0 makes a |z|-like unit)")

if args.plot:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(10, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.hist(slopes, bins=16)
    left.set(xlabel="learned slope a", ylabel="units", title="PReLU slopes after training")
    for name, h in histories.items():
        right.plot(h.history["val_loss"], label=name)
    right.set(xlabel="epoch", ylabel="validation loss", title="PReLU vs ReLU")
    right.legend()
    fig.savefig(args.plot)
    print("wrote", args.plot)
