"""What the benchmarks run: the workloads of issue 7 and one class per system that trains them.

Every system trains the same network on the same float32 data with Adam (lr 1e-3), ReLU
hidden layers and a softmax output under the multiclass negative log-likelihood, with the
same batch size and thread count. Each system object is built once per workload; after a
warm-up (see :func:`warmup_rows`) each call of ``epoch()`` is one timed pass over the data.
Models keep training from repeat to repeat: the time of an epoch does not depend on the
weights, and reusing the model keeps compiled graphs (torch.compile) and optimizer state
out of the timed region for every system alike.

The GEMM floor is the time of the matrix products that one epoch of forward and backward
cannot avoid, per batch of b rows and for each linear layer ℓ with W: (m, n):

    forward   Z = A_prev @ W           (b, m) @ (m, n)
    backward  dLdW = A_prev.T @ dLdZ   (m, b) @ (b, n)
              dLdA_prev = dLdZ @ W.T   (b, n) @ (n, m)    for every layer but the first

timed alone with NumPy, in the same process and with the same BLAS threads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 0


@dataclass(frozen=True)
class Workload:
    """A network and its data: ``d_in → hidden... → n_classes``, ``n`` rows, one epoch."""

    name: str
    n: int
    d_in: int
    hidden: tuple[int, ...]
    n_classes: int
    batch_size: int
    batch_norm: bool = False
    dropout: float = 0.0
    data: str = "synthetic"  # or "digits": sklearn's load_digits, standardised
    min_repeats: int = 3  # tiny epochs get more repeats so their median settles

    @property
    def layer_sizes(self) -> list[tuple[int, int]]:
        """``(m, n)`` of every Linear layer, first to last."""
        widths = [self.d_in, *self.hidden, self.n_classes]
        return list(zip(widths[:-1], widths[1:]))

    @property
    def sklearn_ok(self) -> bool:
        """scikit-learn's MLPClassifier has neither BatchNorm nor Dropout."""
        return not self.batch_norm and not self.dropout

    def describe(self) -> str:
        inner = " → ".join(str(h) for h in self.hidden)
        extra = ""
        if self.batch_norm or self.dropout:
            extra = f" (each hidden: Linear, BatchNorm, ReLU, Dropout {self.dropout:g})"
        return (f"{self.n:,} × {self.d_in} → {inner} → {self.n_classes}{extra}, "
                f"batch {self.batch_size}, {self.data} data")


WORKLOADS = {
    w.name: w
    for w in [
        Workload("mnist-b128", 20_000, 784, (256, 128), 10, 128),
        Workload("mnist-b32", 20_000, 784, (256, 128), 10, 32),
        Workload("digits-b32", 1797, 64, (64,), 10, 32, data="digits", min_repeats=15),
        Workload("deep-bn", 20_000, 256, (256,) * 6, 10, 128, batch_norm=True, dropout=0.1),
    ]
}


def quick(w: Workload) -> Workload:
    """A smaller version for smoke runs: a quarter of the synthetic rows."""
    if w.data != "synthetic":
        return dataclasses.replace(w, min_repeats=3)
    return dataclasses.replace(w, n=w.n // 4, min_repeats=1)


def make_data(w: Workload, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """``X: (n, d_in)`` float32 and integer labels ``y: (n,)`` in ``0..n_classes-1``.

    Synthetic data are standard normal inputs labelled by a random linear teacher (so there
    is something to learn); "digits" is scikit-learn's 8×8 digits, standardised per pixel.
    """
    if w.data == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = (X - X.mean(axis=0)) / np.maximum(X.std(axis=0), 1e-12)
        return np.ascontiguousarray(X, dtype=np.float32), y.astype(np.int64)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((w.n, w.d_in), dtype=np.float32)
    teacher = rng.standard_normal((w.d_in, w.n_classes), dtype=np.float32)
    y = np.argmax(X @ teacher, axis=1).astype(np.int64)
    return X, y


def warmup_rows(w: Workload, n: int) -> int:
    """Rows of the warm-up epoch: two full batches plus the epoch's short last batch (if any),
    so every batch shape of the timed epoch has been seen (and compiled) before timing."""
    return min(n, 2 * w.batch_size + n % w.batch_size)


def n_batches(w: Workload, n: int) -> int:
    return math.ceil(n / w.batch_size)


# -- systems -------------------------------------------------------------------------------

class Chainrule:
    """``cr.fit(model, cr.NLLM(), X, y, optimizer=cr.Adam(), shuffle=True, progress=False)``."""

    name = "chainrule"

    def __init__(self, w: Workload, X: np.ndarray, y: np.ndarray, seed: int = SEED):
        import chainrule as cr

        self.cr, self.w, self.X, self.y = cr, w, X, y
        self.model = build_chainrule(w, seed)
        self.optimizer = cr.Adam()
        self.rng = np.random.default_rng(seed)
        self.last_loss = math.nan

    def _fit(self, X, y) -> None:
        cr = self.cr
        history = cr.fit(self.model, cr.NLLM(), X, y, optimizer=self.optimizer, epochs=1,
                         batch_size=self.w.batch_size, shuffle=True, progress=False,
                         rng=self.rng)
        self.last_loss = history.history["loss"][-1]

    def warmup(self) -> None:
        k = warmup_rows(self.w, len(self.X))
        self._fit(self.X[:k], self.y[:k])

    def epoch(self) -> None:
        self._fit(self.X, self.y)

    def accuracy(self) -> float:
        return float(np.mean(self.model.predict(self.X).argmax(axis=1) == self.y))


def build_chainrule(w: Workload, seed: int = SEED):
    """``Linear → [BatchNorm] → ReLU → [Dropout]`` per hidden layer, then ``Linear → Softmax``."""
    import chainrule as cr

    rng = np.random.default_rng(seed)
    modules = []
    for m, n in w.layer_sizes[:-1]:
        modules.append(cr.Linear(m, n, rng=rng))
        if w.batch_norm:
            modules.append(cr.BatchNorm(n))
        modules.append(cr.ReLU())
        if w.dropout:
            modules.append(cr.Dropout(w.dropout, rng=rng))
    m, n = w.layer_sizes[-1]
    modules += [cr.Linear(m, n, rng=rng), cr.Softmax()]
    return cr.Sequential(*modules)


class Torch:
    """PyTorch eager (or ``torch.compile``d): the training loop a PyTorch user writes.

    Index batches from ``torch.randperm`` (no DataLoader), ``torch.optim.Adam``,
    ``nn.CrossEntropyLoss`` on the logits. With ``compile=True`` the model (forward and
    backward) goes through ``torch.compile``; the optimizer step stays eager.
    """

    def __init__(self, w: Workload, X: np.ndarray, y: np.ndarray, seed: int = SEED,
                 compile: bool = False):
        import torch
        from torch import nn

        self.torch, self.w = torch, w
        self.name = "torch.compile" if compile else "pytorch"
        torch.manual_seed(seed)
        layers = []
        for m, n in w.layer_sizes[:-1]:
            layers.append(nn.Linear(m, n))
            if w.batch_norm:
                layers.append(nn.BatchNorm1d(n))
            layers.append(nn.ReLU())
            if w.dropout:
                layers.append(nn.Dropout(w.dropout))
        layers.append(nn.Linear(*w.layer_sizes[-1]))
        self.model = nn.Sequential(*layers)
        self.forward = torch.compile(self.model) if compile else self.model
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.criterion = nn.CrossEntropyLoss()
        self.X = torch.from_numpy(X)
        self.y = torch.from_numpy(y.astype(np.int64))
        self.generator = torch.Generator().manual_seed(seed)
        self.last_loss = math.nan

    def _fit(self, X, y) -> None:
        torch, model, opt, criterion = self.torch, self.forward, self.optimizer, self.criterion
        b, n = self.w.batch_size, len(X)
        self.model.train()
        perm = torch.randperm(n, generator=self.generator)
        total = 0.0
        for start in range(0, n, b):
            idx = perm[start:start + b]
            xb, yb = X[idx], y[idx]
            opt.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        self.last_loss = total / n

    def warmup(self) -> None:
        k = warmup_rows(self.w, len(self.X))
        self._fit(self.X[:k], self.y[:k])

    def epoch(self) -> None:
        self._fit(self.X, self.y)

    def accuracy(self) -> float:
        torch = self.torch
        self.model.eval()
        with torch.no_grad():
            pred = self.model(self.X).argmax(dim=1)
        self.model.train()
        return float((pred == self.y).float().mean())


class Sklearn:
    """``MLPClassifier(solver="adam", batch_size=b, max_iter=1, early_stopping=False)``.

    ``alpha=0`` (no L2 penalty, like the others) and ``warm_start=True`` so that repeats keep
    training the same weights, as the other systems do (scikit-learn starts a new Adam state
    on each ``fit``, which costs only the allocation). Its ConvergenceWarning is silenced.
    """

    name = "scikit-learn"

    def __init__(self, w: Workload, X: np.ndarray, y: np.ndarray, seed: int = SEED):
        from sklearn.neural_network import MLPClassifier

        self.w, self.X, self.y = w, X, y
        self.clf = MLPClassifier(
            hidden_layer_sizes=w.hidden, activation="relu", solver="adam",
            learning_rate_init=1e-3, alpha=0.0, batch_size=w.batch_size, max_iter=1,
            shuffle=True, early_stopping=False, n_iter_no_change=10**9, tol=0.0,
            warm_start=True, random_state=seed,
        )
        self.last_loss = math.nan

    def _fit(self, X, y) -> None:
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.clf.fit(X, y)
        self.last_loss = float(self.clf.loss_)

    def warmup(self) -> None:
        # All classes must be present in the first fit: the warm-up uses every row.
        self._fit(self.X, self.y)

    def epoch(self) -> None:
        self._fit(self.X, self.y)

    def accuracy(self) -> float:
        return float(self.clf.score(self.X, self.y))


class GemmFloor:
    """The matrix products of one epoch's forward and backward passes, and nothing else.

    Buffers are allocated once (``out=``), so only the BLAS calls are timed; the inputs are
    standard normal (values do not change a GEMM's time, but denormals would).
    """

    name = "GEMM floor"

    def __init__(self, w: Workload, n: int, seed: int = SEED):
        rng = np.random.default_rng(seed)
        b = w.batch_size
        self.batches = [b] * (n // b) + ([n % b] if n % b else [])
        self.buffers = {}
        for rows in set(self.batches):
            layers = []
            for m, k in w.layer_sizes:
                layers.append({
                    "A_prev": rng.standard_normal((rows, m), dtype=np.float32),
                    "W": rng.standard_normal((m, k), dtype=np.float32) / np.float32(np.sqrt(m)),
                    "Z": np.empty((rows, k), np.float32),
                    "dLdZ": rng.standard_normal((rows, k), dtype=np.float32),
                    "dLdW": np.empty((m, k), np.float32),
                    "dLdA_prev": np.empty((rows, m), np.float32),
                })
            # float32 throughout: one float64 array would make every product a float64 one
            assert all(a.dtype == np.float32 for L in layers for a in L.values())
            self.buffers[rows] = layers
        self.flops_per_epoch = sum(
            2 * rows * m * k * (3 if i else 2)
            for rows in self.batches for i, (m, k) in enumerate(w.layer_sizes)
        )
        self.last_loss = math.nan

    def warmup(self) -> None:
        self.epoch()

    def epoch(self) -> None:
        matmul = np.matmul
        for rows in self.batches:
            layers = self.buffers[rows]
            for L in layers:
                matmul(L["A_prev"], L["W"], out=L["Z"])
            for i in range(len(layers) - 1, -1, -1):
                L = layers[i]
                matmul(L["A_prev"].T, L["dLdZ"], out=L["dLdW"])
                if i:
                    matmul(L["dLdZ"], L["W"].T, out=L["dLdA_prev"])

    def accuracy(self) -> float:
        return math.nan


# -- JAX -----------------------------------------------------------------------------------

def jax_adam():
    """Adam as a pure function pair, ``(init, update)``: optax's ``adam(1e-3)`` when optax is
    installed, otherwise the same arithmetic written out in ``jax.numpy``, as optax does it::

        m ← β₁m + (1−β₁) g;   v ← β₂v + (1−β₂) g²;   t ← t + 1
        W ← W − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + eps)

    (optax's ``scale_by_adam`` with ``eps_root=0``, then ``scale_by_learning_rate``.)
    ``update(grads, state, params) -> (new params, new state)``. The second value of the
    result says which one ran.
    """
    import jax
    import jax.numpy as jnp

    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    try:
        import optax
    except ImportError:
        optax = None
    if optax is not None:
        tx = optax.adam(lr, b1=b1, b2=b2, eps=eps)

        def update(grads, state, params):
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        return (tx.init, update), f"optax {optax.__version__} adam"

    def init(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return (jnp.zeros([], jnp.int32), zeros, jax.tree_util.tree_map(jnp.zeros_like, params))

    def update(grads, state, params):
        count, mu, nu = state
        mu = jax.tree_util.tree_map(lambda g, m: (1 - b1) * g + b1 * m, grads, mu)
        nu = jax.tree_util.tree_map(lambda g, v: (1 - b2) * (g * g) + b2 * v, grads, nu)
        count = count + 1
        t = count.astype(jnp.float32)
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - lr * ((m / c1) / (jnp.sqrt(v / c2) + eps)), params, mu, nu)
        return params, (count, mu, nu)

    return (init, update), "Adam in jax.numpy (optax's arithmetic; optax is not installed)"


class Jax:
    """JAX on the CPU, the network as a pure function of its weights, Adam as :func:`jax_adam`.

    Two forms, as a JAX user writes them:

    - ``scan=False`` (**jax jit-step**): one ``jax.jit``-compiled training step (forward,
      ``jax.value_and_grad``, Adam), called from a Python loop over batches indexed from a
      NumPy permutation; the losses stay on the device until the epoch ends (no sync per
      step).
    - ``scan=True`` (**jax jit-scan**): the whole epoch as one compiled function: a
      ``jax.random.permutation`` of the rows, ``lax.scan`` of the step over the full
      batches (each gathers its rows from the data, which stay on the device), and one more
      step for the short last batch.

    The weights and the optimizer state are donated to each call (updated in place).
    Compilation (``jit(...).lower(...).compile()``) happens in ``warmup`` and is reported as
    ``compile_seconds``, never inside a timed epoch. The initial weights are chainrule's
    (same seed), so both learn the same. Threads: XLA sizes its CPU thread pool by the CPUs
    this process may run on, which ``run.py`` sets (``os.sched_setaffinity``) before JAX
    starts. ``weights``: ``[(W, W0), ...]`` per layer, instead of chainrule's.
    """

    def __init__(self, w: Workload, X: np.ndarray, y: np.ndarray, seed: int = SEED,
                 scan: bool = False, weights: list | None = None):
        import jax
        import jax.numpy as jnp

        if w.batch_norm or w.dropout:
            raise NotImplementedError("the JAX systems have no BatchNorm or Dropout")
        self.jax, self.jnp, self.w = jax, jnp, w
        self.name = "jax jit-scan" if scan else "jax jit-step"
        self.scan = scan
        (adam_init, adam_update), self.adam = jax_adam()
        if weights is None:  # chainrule's initial weights: both learn the same
            weights = [(layer.W.data, layer.W0.data)
                       for layer in build_chainrule(w, seed).modules if hasattr(layer, "W")]
        params = [(jnp.asarray(W), jnp.asarray(W0)) for W, W0 in weights]
        self.state = (params, adam_init(params))
        self.X_host, self.y_host = X, y.astype(np.int32)
        self.X, self.y = jnp.asarray(X), jnp.asarray(self.y_host)
        self.rng = np.random.default_rng(seed)
        self.key = jax.random.PRNGKey(seed)
        self.last_loss = math.nan
        self.compile_seconds = math.nan

        def forward(params, xb):
            A = xb
            for W, W0 in params[:-1]:
                A = jax.nn.relu(A @ W + W0)
            W, W0 = params[-1]
            return A @ W + W0  # logits; the softmax is inside the loss

        def loss_fn(params, xb, yb):
            logp = jax.nn.log_softmax(forward(params, xb))
            return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

        def step(state, xb, yb):
            params, opt_state = state
            loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
            params, opt_state = adam_update(grads, opt_state, params)
            return (params, opt_state), loss

        b = w.batch_size

        def epoch(state, X, y, key):
            n = X.shape[0]
            full = n // b
            perm = jax.random.permutation(key, n)

            def body(state, idx):
                state, loss = step(state, X[idx], y[idx])
                return state, loss * b

            state, losses = jax.lax.scan(body, state, perm[:full * b].reshape(full, b))
            total = jnp.sum(losses)
            if n % b:
                idx = perm[full * b:]
                state, loss = step(state, X[idx], y[idx])
                total = total + loss * (n % b)
            return state, total / n

        self._step = jax.jit(step, donate_argnums=0)
        self._epoch = jax.jit(epoch, donate_argnums=0)
        self._forward = jax.jit(forward)

    def _batches(self, n: int):
        b = self.w.batch_size
        order = self.rng.permutation(n)
        return [order[i:i + b] for i in range(0, n, b)]

    def _fit(self, X, y, Xj, yj) -> None:
        if self.scan:
            self.key, sub = self.jax.random.split(self.key)
            self.state, loss = self._epoch(self.state, Xj, yj, sub)
            self.last_loss = float(loss)
            return
        losses = []
        for idx in self._batches(len(X)):
            self.state, loss = self._step(self.state, X.take(idx, axis=0), y.take(idx))
            losses.append(loss * len(idx))
        self.last_loss = float(self.jnp.sum(self.jnp.stack(losses))) / len(X)

    def warmup(self) -> None:
        """Compile (timed: ``compile_seconds``), then run the short warm-up epoch."""
        import time

        jax = self.jax
        t0 = time.perf_counter()
        if self.scan:
            for n in sorted({len(self.X), warmup_rows(self.w, len(self.X))}):
                self._epoch.lower(self.state, self.X[:n], self.y[:n],
                                  jax.random.PRNGKey(0)).compile()
        else:
            b, n = self.w.batch_size, len(self.X)
            for rows in sorted({b, n % b} - {0}):
                self._step.lower(self.state, self.X_host[:rows], self.y_host[:rows]).compile()
        self._forward.lower(self.state[0], self.X).compile()
        self.compile_seconds = time.perf_counter() - t0
        k = warmup_rows(self.w, len(self.X))
        self._fit(self.X_host[:k], self.y_host[:k], self.X[:k], self.y[:k])
        jax.block_until_ready(self.state)

    def epoch(self) -> None:
        self._fit(self.X_host, self.y_host, self.X, self.y)
        self.jax.block_until_ready(self.state)

    def accuracy(self) -> float:
        pred = np.asarray(self._forward(self.state[0], self.X)).argmax(axis=1)
        return float(np.mean(pred == self.y_host))


RESULTS = Path(__file__).resolve().parent / "results"


def save_results(stem: str, report: dict, md: str) -> Path:
    """Write ``results/<stem>.json`` (the report) and ``results/<stem>.md`` (its table), print
    the table, and return the path without suffix."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (RESULTS / f"{stem}.md").write_text(md)
    print(md)
    return RESULTS / stem
