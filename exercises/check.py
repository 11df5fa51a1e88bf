"""Check the exercises: ``python exercises/check.py [tanh] [linear] [softmax] [nllm] [batchnorm]``.

With no name, every exercise is checked. Each report lists what passed and, for each
problem, one sentence saying what is wrong. The exit status is 0 when every check passes.
"""

import sys
from pathlib import Path

import numpy as np

import chainrule as cr
from chainrule.check import check_loss

sys.path.insert(0, str(Path(__file__).resolve().parent))
import batchnorm  # noqa: E402  (the exercises sit beside this file)
import linear  # noqa: E402
import softmax_nllm  # noqa: E402
import tanh  # noqa: E402

rng = np.random.default_rng(0)
X = rng.normal(size=(4, 3))  # K = 4 samples, 3 features
probabilities = rng.dirichlet(np.ones(3), size=4)  # valid softmax outputs: rows sum to 1
onehot = np.eye(3)[[0, 2, 1, 2]]

CHECKS = {
    "tanh": lambda: cr.check_module(tanh.Tanh(), X),
    "linear": lambda: cr.check_module(linear.Linear(3, 2), X),
    "softmax": lambda: cr.check_module(softmax_nllm.Softmax(), X),
    "nllm": lambda: check_loss(softmax_nllm.NLLM(), probabilities, onehot),
    "batchnorm": lambda: cr.check_module(batchnorm.BatchNorm(3), X),
}

if __name__ == "__main__":
    names = sys.argv[1:] or list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        print(f"unknown exercise {', '.join(unknown)}; expected some of {', '.join(CHECKS)}",
              file=sys.stderr)
        sys.exit(2)
    reports = [CHECKS[name]() for name in names]
    for report in reports:
        print(report, end="\n\n")
    sys.exit(0 if all(r.ok for r in reports) else 1)
