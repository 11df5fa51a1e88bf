"""Every example runs with tiny settings, prints what its notes section claims, and plots."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

CASES = {  # script: lines or fragments its output must contain
    "two_neuron_backprop.py": ["hand and chainrule agree: True", "gradcheck: max relative error",
                               "(ok)", "< old loss"],
    "batch_sizes.py": ["1 (SGD)", "16 (mini)", "all (batch)"],
    "adaptive_optimizers.py": ["SGD", "Momentum", "Adagrad", "RMSprop", "Adadelta", "Adam",
                               "lowest validation loss"],
    "vanishing_gradients.py": ["sigmoid, gaussian 1/m", "  vanishing", "relu, he 2/m",
                               "diverged"],
    "regularization.py": ["none", "early stopping", "weight decay", "perturbation", "dropout",
                          "batch norm"],
    "custom_module.py": ["gradcheck of PReLU:", "gradcheck: ok", "gradcheck of BuggyPReLU:",
                         "modules.1.a    ", "NOT OK", "learned slopes a"],
}


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_is_short(script):
    assert len((EXAMPLES / script).read_text(encoding="utf-8").splitlines()) <= 100


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs(script, tmp_path):
    plot = tmp_path / "plot.png"
    command = [sys.executable, str(EXAMPLES / script), "--quick"]
    if HAS_MATPLOTLIB:  # the examples print without it; --plot needs it
        command += ["--plot", str(plot)]
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for piece in CASES[script]:
        assert piece in done.stdout, piece
    if HAS_MATPLOTLIB:
        assert plot.read_bytes().startswith(b"\x89PNG")
