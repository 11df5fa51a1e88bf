"""Each regularizer of the notes' 6.8 against overfitting on a small training set.

A network much larger than 40 noisy training points need be learns them by heart: training
accuracy 1.0, a wiggly boundary, worse test accuracy. Each method below restrains it:
early stopping (stop when the validation loss turns up), weight decay (J + λ‖W‖²),
perturbation (fresh noise on the inputs every step), dropout (drop units at random) and
batch normalisation (its batch statistics add noise too).

    python examples/regularization.py [--quick] [--plot regularizers.png]
"""

import argparse

import numpy as np

import chainrule as cr

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="tiny settings (for tests)")
parser.add_argument("--plot", metavar="PNG", help="save the decision boundaries")
args = parser.parse_args()
epochs, n_test = (5, 200) if args.quick else (400, 2000)


def moons(n, rng, noise=0.3):
    """Two interleaving half circles, labels 0 and 1."""
    t = rng.uniform(0, np.pi, n)
    y = rng.integers(0, 2, n)
    X = np.where(y[:, None] == 0, np.c_[np.cos(t), np.sin(t)],
                 np.c_[1 - np.cos(t), 0.5 - np.sin(t)])
    return X + noise * rng.normal(size=X.shape), y


rng = np.random.default_rng(0)
X, y = moons(40, rng)          # the small training set
Xv, yv = moons(40, rng)        # validation, for early stopping
Xt, yt = moons(n_test, rng)    # test: what generalisation means


def network(dropout=0.0, batch_norm=False):
    modules = []
    for i, (m, n) in enumerate([(2, 128), (128, 128)]):
        modules.append(cr.Linear(m, n, init="he", rng=i))
        modules += [cr.BatchNorm(n)] if batch_norm else []
        modules.append(cr.ReLU())
        modules += [cr.Dropout(dropout, rng=10 + i)] if dropout else []
    return cr.Sequential(*modules, cr.Linear(128, 1, init="xavier", rng=9), cr.Sigmoid())


RUNS = {  # name: (network options, fit options)
    "none": ({}, {}),
    "early stopping": ({}, {"early_stopping": cr.EarlyStopping(patience=20)}),
    "weight decay λ=1e-3": ({}, {"optimizer": cr.Adam(lr=0.01, weight_decay=1e-3)}),
    "perturbation σ=0.2": ({}, {"input_noise": 0.2}),
    "dropout p=0.5": ({"dropout": 0.5}, {}),
    "batch norm": ({"batch_norm": True}, {}),
}

print(f"40 training points, {epochs} epochs of Adam (η = 0.01), batches of 10")
print(f"{'regularizer':<22}{'epochs':>7}{'train acc':>11}{'test acc':>10}{'test loss':>11}")
models, histories = {}, {}
for name, (net, fit) in RUNS.items():
    model = network(**net)
    h = cr.fit(model, cr.NLL(), X, y, epochs=epochs, batch_size=10, rng=0, progress=False,
               validation_data=(Xv, yv), **{"optimizer": cr.Adam(lr=0.01), **fit})
    models[name], histories[name] = model, h
    train_acc = np.mean((model.predict(X)[:, 0] >= 0.5) == y)
    A = model.predict(Xt)
    test_acc = np.mean((A[:, 0] >= 0.5) == yt)
    print(f"{name:<22}{h.epochs:>7}{train_acc:>11.2f}{test_acc:>10.3f}{cr.NLL()(A, yt):>11.3f}")
h, patience = histories["early stopping"], RUNS["early stopping"][1]["early_stopping"].patience
if h.stopped_early:  # the first epoch without improvement is best + 1; patience=0 stops there
    print(f"early stopping: best epoch k = {h.best_epoch} (0-based), {h.epochs} epochs run = "
          f"k + 1 + max(patience, 1): {h.epochs == h.best_epoch + 1 + max(patience, 1)}")
print("A smaller gap between training and test accuracy, and a lower test loss, is what\n"
      "regularization buys; the unregularized network's test loss shows it is overconfident.")

if args.plot:
    from matplotlib.figure import Figure

    from chainrule.plotting import plot_decision_boundary
    fig = Figure(figsize=(13, 8), layout="constrained")
    for ax, (name, model) in zip(fig.subplots(2, 3).ravel(), models.items()):
        plot_decision_boundary(model, X, y, ax=ax, resolution=120, title=name)
    fig.savefig(args.plot)
    print("wrote", args.plot)
