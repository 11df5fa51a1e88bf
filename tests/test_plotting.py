"""Plots: files written, axes labelled, best epoch marked, log scale for gradient norms."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import chainrule as cr  # noqa: E402
from chainrule.errors import ChainruleError, InputError  # noqa: E402
from chainrule.plotting import (  # noqa: E402
    compare_histories,
    plot_curves,
    plot_decision_boundary,
    plot_grad_norms,
    plot_history,
)
from chainrule.training import History  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def made_history(classification=True, epochs=6, best=3) -> History:
    h = History()
    loss = [1.0 / (e + 1) for e in range(epochs)]
    val = [abs(e - best) * 0.1 + 0.2 for e in range(epochs)]
    h.history = {"loss": loss, "val_loss": val, "time": [0.1] * epochs}
    if classification:
        h.history |= {"accuracy": [0.5 + 0.05 * e for e in range(epochs)],
                      "val_accuracy": [0.5 + 0.04 * e for e in range(epochs)]}
    h.grad_norms = {"modules.0.W": [1e-6 * (e + 1) for e in range(epochs)],
                    "modules.0.W0": [1e-7] * epochs,
                    "modules.2.W": [0.5] * epochs, "modules.2.W0": [0.1] * epochs}
    h.best_epoch = best
    return h


def labels(ax) -> tuple[str, str, str]:
    return ax.get_xlabel(), ax.get_ylabel(), ax.get_title()


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.mark.parametrize("classification, n_axes", [(True, 3), (False, 2)])
def test_plot_history_panels_labels_and_file(tmp_path, classification, n_axes):
    path = tmp_path / "curves.png"
    fig = plot_history(made_history(classification), path)
    assert path.read_bytes().startswith(PNG)
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temporary file left
    axes = fig.axes
    assert len(axes) == n_axes
    assert labels(axes[0]) == ("epoch (0-based)", "loss", "Loss per epoch")
    assert legend_texts(axes[0]) == ["training loss", "validation loss", "best epoch (3)"]
    if classification:
        assert labels(axes[1])[1:] == ("accuracy", "Accuracy per epoch")
        assert "best epoch (3)" in legend_texts(axes[1])
    grads = axes[-1]
    assert grads.get_yscale() == "log"
    assert "‖∂L/∂W‖" in grads.get_ylabel() and "log scale" in grads.get_title()
    # One curve per layer (weights only), numbered in order.
    assert legend_texts(grads) == ["layer 1 (modules.0.W)", "layer 2 (modules.2.W)"]
    # The star sits on the validation curve at the best epoch.
    star = [line for line in axes[0].get_lines() if line.get_label() == "best epoch (3)"][0]
    assert list(star.get_xdata()) == [3]
    assert list(star.get_ydata()) == [pytest.approx(0.2)]


def test_history_plot_delegates(tmp_path):
    model = cr.Sequential(cr.Linear(2, 4, rng=0), cr.Tanh(), cr.Linear(4, 1, rng=1),
                          cr.Sigmoid())
    X = np.random.default_rng(0).normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(int)
    history = cr.fit(model, cr.NLL(), X, y, epochs=3, validation_split=0.25, rng=0,
                     progress=False)
    fig = history.plot(tmp_path / "h.svg")
    assert (tmp_path / "h.svg").read_text().lstrip().startswith("<?xml")
    assert len(fig.axes) == 3
    assert history.plot() is not None  # no path: the figure only


def test_zero_gradients_do_not_break_the_log_scale(tmp_path):
    h = made_history()
    h.grad_norms = {"modules.0.W": [0.0] * 6}
    fig = plot_grad_norms(h, tmp_path / "g.png")
    assert fig.axes[0].get_yscale() == "linear"
    assert (tmp_path / "g.png").exists()


def test_parts_and_comparison(tmp_path):
    h = made_history()
    assert len(plot_curves(h, tmp_path / "c.png").axes) == 2
    fig = compare_histories({"SGD": h, "Adam": made_history(best=1)}, tmp_path / "cmp.png",
                            keys=("loss", "val_loss"), logy=True, title="optimizers:")
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "val loss"]
    assert legend_texts(fig.axes[0]) == ["SGD", "Adam"]
    assert fig.axes[0].get_title() == "optimizers: loss"
    assert {p.name for p in tmp_path.iterdir()} == {"c.png", "cmp.png"}


def blobs(k, n=60, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0], [3, 3], [0, 3]])[:k]
    y = np.arange(n) % k
    return centers[y] + rng.normal(scale=0.5, size=(n, 2)), y


@pytest.mark.parametrize("k, head, loss", [(2, cr.Sigmoid, cr.NLL), (3, cr.Softmax, cr.NLLM)])
def test_decision_boundary(tmp_path, k, head, loss):
    X, y = blobs(k)
    model = cr.Sequential(cr.Linear(2, 8, rng=0), cr.ReLU(),
                          cr.Linear(8, 1 if k == 2 else k, rng=1), head())
    cr.fit(model, loss(), X, y, epochs=5, rng=0, progress=False)
    path = tmp_path / "boundary.png"
    fig = plot_decision_boundary(model, X, y, path, resolution=50, title="blobs")
    assert path.read_bytes().startswith(PNG)
    ax = fig.axes[0]
    assert labels(ax) == ("x₁", "x₂", "blobs")
    assert len(fig.axes) == (2 if k == 2 else 1)  # a probability colour bar for one output
    assert model.training  # predict left the mode alone


def test_decision_boundary_into_given_axes():
    from matplotlib.figure import Figure
    fig = Figure()
    ax = fig.add_subplot(1, 2, 2)
    X, y = blobs(2)
    model = cr.Sequential(cr.Linear(2, 1, rng=0), cr.Sigmoid())
    assert plot_decision_boundary(model, X, y, ax=ax, resolution=20) is fig


@pytest.mark.parametrize("X, y, match", [
    (np.zeros((5, 3)), np.zeros(5), "2 features"),
    (np.zeros((5, 2)), np.zeros(4), "5 rows and 4 labels"),
])
def test_decision_boundary_bad_input(X, y, match):
    model = cr.Sequential(cr.Linear(2, 1, rng=0), cr.Sigmoid())
    with pytest.raises(InputError, match=match):
        plot_decision_boundary(model, X, y)


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    with pytest.raises(ChainruleError, match=r"pip install 'chainrule\[plot\]'"):
        plot_history(made_history())


def test_matplotlib_is_lazy_and_pyplot_never_used():
    code = ("import sys, chainrule, chainrule.plotting\n"
            "assert 'matplotlib' not in sys.modules\n"
            "from chainrule.training import History\n"
            "h = History(); h.history = {'loss': [1.0, 0.5]}; h.best_epoch = 1\n"
            "h.plot()\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
