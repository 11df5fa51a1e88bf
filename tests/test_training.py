"""fit: the three kinds of gradient descent, regularizers, callbacks, History, divergence."""

import os
import signal

import numpy as np
import pytest

import chainrule as cr
from cases import LOSS_IDS, LOSSES, REDUCTIONS, assert_same_weights, blobs, mlp, weights
from chainrule.training import evaluate


class Spy(cr.Identity):
    """Identity that records the inputs it sees, in training and in eval mode."""

    def __init__(self):
        self.train_inputs, self.eval_inputs = [], []

    def forward(self, Z):
        (self.train_inputs if self.training else self.eval_inputs).append(Z.copy())
        return Z


class Recorder:
    """A callback that records every call."""

    def __init__(self, stop_at=None):
        self.epochs, self.steps, self.stop_at = [], [], stop_at

    def on_epoch_end(self, epoch, logs):
        self.epochs.append((epoch, dict(logs)))
        return epoch == self.stop_at

    def on_step_end(self, step, logs):
        self.steps.append(step)


def test_same_seed_gives_bit_identical_weights_and_history():
    X, y = blobs()
    runs = []
    for _ in range(2):
        model = mlp(act=cr.Tanh, dropout=0.3)
        h = cr.fit(model, cr.NLLM(), X, y, epochs=3, batch_size=8, rng=7, input_noise=0.1,
                   validation_split=0.2)
        runs.append((weights(model), h.history))
    assert_same_weights(runs[0][0], runs[1][0])
    assert {k: v for k, v in runs[0][1].items() if k != "time"} == \
        {k: v for k, v in runs[1][1].items() if k != "time"}


def test_batch_gradient_descent_is_one_full_batch_step_done_by_hand():
    X, y = blobs(n=20)
    model, by_hand = mlp(dtype=np.float64), mlp(dtype=np.float64)
    cr.fit(model, cr.NLLM(), X, y, optimizer=cr.SGD(lr=0.1), epochs=1, batch_size=None, rng=0)
    loss = cr.NLLM()
    loss(by_hand(X.astype(np.float64)), y)
    by_hand.backward_from(loss)
    for p in by_hand.parameters():
        p.data -= 0.1 * p.grad  # W ← W − η dL/dW on the whole training set
    for a, b in zip(weights(model), weights(by_hand)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_batch_size_larger_than_the_data_means_the_whole_data():
    X, y = blobs(n=20)
    a, b = mlp(), mlp()
    cr.fit(a, cr.NLLM(), X, y, optimizer=cr.SGD(), epochs=2, batch_size=None, rng=0)
    rec = Recorder()
    cr.fit(b, cr.NLLM(), X, y, optimizer=cr.SGD(), epochs=2, batch_size=1000, rng=0,
           callbacks=[rec])
    assert rec.steps == [0, 0]
    assert_same_weights(a, b)


def test_unshuffled_minibatches_follow_the_data_order():
    X, y = blobs(n=10)
    spy = Spy()
    cr.fit(cr.Sequential(spy, *mlp().modules), cr.NLLM(), X, y, epochs=1, batch_size=4,
           shuffle=False)
    seen = spy.train_inputs
    assert [len(b) for b in seen] == [4, 4, 2]  # the last mini-batch may be smaller
    np.testing.assert_array_equal(np.concatenate(seen), X)


def test_shuffled_epochs_see_every_row_once():
    X, y = blobs(n=10)
    spy = Spy()
    cr.fit(cr.Sequential(spy, *mlp().modules), cr.NLLM(), X, y, epochs=1, batch_size=3, rng=1)
    rows = np.concatenate(spy.train_inputs)
    assert not np.array_equal(rows, X)
    np.testing.assert_array_equal(np.sort(rows, axis=0), np.sort(X, axis=0))


def test_sgd_takes_one_step_per_sample():
    X, y = blobs(n=12)
    rec = Recorder()
    cr.fit(mlp(), cr.NLLM(), X, y, epochs=2, batch_size=1, callbacks=[rec], rng=0)
    assert rec.steps == list(range(12)) * 2


def test_clip_grad_norm_bounds_the_global_norm_of_each_step():
    X, y = blobs(n=16)
    model = mlp()
    W_before = weights(model)
    # With SGD(lr=1) the step W_before - W_after is the clipped gradient itself.
    cr.fit(model, cr.NLLM(), X * 100, y, optimizer=cr.SGD(lr=1.0), epochs=1, batch_size=None,
           clip_grad_norm=0.5, rng=0)
    step = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(W_before, weights(model))))
    assert step == pytest.approx(0.5, rel=1e-5)


def test_clip_grad_norm_leaves_small_gradients_alone():
    X, y = blobs(n=16)
    a, b = mlp(), mlp()
    cr.fit(a, cr.NLLM(), X, y, optimizer=cr.SGD(), epochs=1, batch_size=None, rng=0)
    cr.fit(b, cr.NLLM(), X, y, optimizer=cr.SGD(), epochs=1, batch_size=None, rng=0,
           clip_grad_norm=1e6)
    assert_same_weights(a, b)


def test_early_stopping_runs_k_plus_1_plus_patience_epochs_and_restores_the_best():
    X, y = blobs(n=60)
    model = mlp()
    val_losses = []
    snapshots = []

    class Snap:
        def on_epoch_end(self, epoch, logs):
            val_losses.append(logs["val_loss"])
            snapshots.append(weights(model))

    # A large step size makes the validation loss go up and down.
    h = cr.fit(model, cr.NLLM(), X, y, optimizer=cr.SGD(lr=2.0), epochs=60, batch_size=4,
               validation_split=0.3, early_stopping=cr.EarlyStopping(patience=3), rng=0,
               callbacks=[Snap()])
    k = int(np.argmin(val_losses))
    assert h.stopped_early and h.best_epoch == k
    assert h.epochs == len(val_losses) == k + 1 + 3
    assert_same_weights(model, snapshots[k])


def test_early_stopping_min_delta_and_no_restore():
    es = cr.EarlyStopping(patience=2, min_delta=0.1, restore_best=False)
    p = cr.Parameter(np.zeros(2), "W")
    assert not es.update(0, 1.0, [p])
    assert not es.update(1, 0.95, [p])  # not better by more than min_delta
    assert es.update(2, 0.5, [p]) is False or es.best == 0.5  # improves: resets
    assert es.best_weights is None


def test_early_stopping_needs_validation_data():
    X, y = blobs()
    with pytest.raises(cr.ChainruleError, match="validation"):
        cr.fit(mlp(), cr.NLLM(), X, y, early_stopping=cr.EarlyStopping())


def test_input_noise_touches_training_batches_only():
    X, y = blobs(n=12)
    spy = Spy()
    model = cr.Sequential(spy, *mlp().modules)
    Xv, yv = blobs(n=5, rng=3)
    cr.fit(model, cr.NLLM(), X, y, epochs=1, batch_size=None, shuffle=False, input_noise=0.5,
           validation_data=(Xv, yv), rng=0)
    noise = spy.train_inputs[0] - X
    assert 0.3 < noise.std() < 0.7
    assert any(np.array_equal(Z, Xv) for Z in spy.eval_inputs)  # validation without noise
    np.testing.assert_array_equal(model.predict(Xv), model.predict(Xv))


@pytest.mark.parametrize("optimizer", [cr.SGD, cr.Adam])
def test_divergence_names_epoch_step_and_layer_and_keeps_finite_weights(optimizer):
    X, y = blobs(n=16)
    model = mlp()
    arrays = [p.data for p in model.parameters()]
    before = {}

    class Remember:
        def on_step_end(self, step, logs):
            before["w"] = weights(model)

    with pytest.raises(cr.DivergenceError, match=r"at epoch \d+, step \d+, layer \d+"):
        cr.fit(model, cr.NLLM(), X * 1e4, y, optimizer=optimizer(lr=1e30), epochs=50,
               batch_size=4, rng=0, callbacks=[Remember()])
    assert all(np.isfinite(w).all() for w in weights(model))
    # the weights of the last good step, in the arrays they were in before fit (whichever of
    # fit's two buffers the failing step left them in)
    for p, a, b in zip(model.parameters(), arrays, before["w"], strict=True):
        assert p.data is a
        np.testing.assert_array_equal(a, b)


def test_divergence_from_a_non_finite_gradient_names_the_first_bad_layer():
    X, y = blobs(n=8)

    class Poison(cr.Identity):
        def backward(self, dLdA):
            return dLdA * np.nan

    model = cr.Sequential(cr.Linear(4, 5, rng=0), Poison(), cr.Linear(5, 3, rng=1), cr.Softmax())
    W = weights(model)
    with pytest.raises(cr.DivergenceError) as info:
        cr.fit(model, cr.NLLM(), X, y, epochs=1, rng=0)
    assert "at epoch 0, step 0, layer 0" in str(info.value)
    assert "modules.0.W" in str(info.value)
    assert_same_weights(model, W)


def test_callbacks_see_every_epoch_and_can_stop_training():
    X, y = blobs(n=12)
    rec = Recorder(stop_at=1)
    h = cr.fit(mlp(), cr.NLLM(), X, y, epochs=10, batch_size=6, callbacks=[rec], rng=0)
    assert [e for e, _ in rec.epochs] == [0, 1]
    assert h.epochs == 2 and not h.stopped_early
    assert set(rec.epochs[0][1]) >= {"loss", "accuracy"}
    assert rec.steps == [0, 1, 0, 1]


def test_history_figures_and_grad_norms():
    X, y = blobs(n=30)
    model = mlp()
    h = cr.fit(model, cr.NLLM(), X, y, epochs=3, validation_split=0.2, rng=0)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "time"}
    assert all(len(v) == 3 for v in h.history.values())
    assert list(h.grad_norms) == ["modules.0.W", "modules.0.W0", "modules.2.W", "modules.2.W0"]
    assert all(len(v) == 3 and all(x > 0 for x in v) for v in h.grad_norms.values())
    assert h.best_epoch == int(np.argmin(h.history["val_loss"]))
    assert not h.interrupted and not h.stopped_early
    # val figures are those of the model after the epoch, in eval mode
    Xv, yv = X[-6:], y[-6:]
    final = evaluate(model, cr.NLLM(), Xv, yv)
    assert h.history["val_loss"][-1] == pytest.approx(final["loss"], rel=1e-6)
    assert h.history["val_accuracy"][-1] == final["accuracy"]


def test_regression_history_has_no_accuracy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    Y = X @ np.array([[1.0], [-2.0], [0.5]], np.float32)
    model = cr.Sequential(cr.Linear(3, 1, rng=0))
    h = cr.fit(model, cr.SquareLoss(), X, Y[:, 0], epochs=40, optimizer=cr.Adam(lr=0.05), rng=0)
    assert "accuracy" not in h.history
    assert h.history["loss"][-1] < 1e-2 * h.history["loss"][0]


def test_ctrl_c_stops_after_a_complete_step_and_returns_the_history():
    X, y = blobs(n=40)
    model = mlp()
    snap = {}

    class CtrlC:
        def on_step_end(self, step, logs):
            if step == 2:
                snap["w"] = weights(model)
                os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C

    h = cr.fit(model, cr.NLLM(), X, y, epochs=5, batch_size=4, callbacks=[CtrlC()], rng=0)
    assert h.interrupted and h.epochs == 1
    assert_same_weights(model, snap["w"])  # exactly the state after step 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_predict_restores_mode_and_leaves_gradients_untouched():
    X, y = blobs(n=10)
    model = mlp(dropout=0.5)
    loss = cr.NLLM()
    loss(model(X), y)
    model.backward_from(loss)
    grads = [p.grad.copy() for p in model.parameters()]
    model.modules[2].eval()
    out = model.predict(X)
    assert model.training and model.modules[0].training and not model.modules[2].training
    for a, b in zip(grads, [p.grad for p in model.parameters()]):
        np.testing.assert_array_equal(a, b)
    model.eval()
    np.testing.assert_array_equal(out, model(X))


def test_float64_data_leaves_a_float32_model_float32():
    X, y = blobs()
    model = mlp()
    cr.fit(model, cr.NLLM(), X.astype(np.float64), y, epochs=1, rng=0)
    assert all(p.data.dtype == np.float32 for p in model.parameters())
    assert model.predict(X.astype(np.float64)).dtype == np.float32


def test_progress_false_prints_nothing(capsys):
    X, y = blobs()
    cr.fit(mlp(), cr.NLLM(), X, y, epochs=2, progress=False, rng=0)
    assert capsys.readouterr().err == ""


def test_progress_true_shows_epochs(capsys):
    X, y = blobs()
    cr.fit(mlp(), cr.NLLM(), X, y, epochs=2, progress=True, rng=0)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "loss" in err


@pytest.mark.parametrize("act, init, vanishing", [(cr.Sigmoid, "gaussian", True),
                                                   (cr.ReLU, "he", False)])
def test_vanishing_gradients_show_in_grad_norms(act, init, vanishing):
    """Notes' 6.7.3: through 10 sigmoid layers, σ' ≤ 1/4 shrinks dL/dW layer after layer."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 16)).astype(np.float32)
    y = rng.integers(0, 4, 64)
    model = mlp((16,) + (32,) * 10 + (4,), act=act, init=init)
    h = cr.fit(model, cr.NLLM(), X, y, epochs=1, batch_size=None, optimizer=cr.SGD(lr=1e-3),
               rng=0)
    first, last = h.grad_norms["modules.0.W"][0], h.grad_norms["modules.20.W"][0]
    if vanishing:
        assert first < 1e-3 * last
    else:
        assert first > 1e-1 * last


@pytest.mark.parametrize("bad, match", [
    (dict(X=np.full((5, 4), np.nan)), "NaN"),
    (dict(X=np.full((5, 4), np.inf)), "inf"),
    (dict(y=np.array([0, 1, 2, 0])), "5 samples in X and 4 in Y"),
    (dict(X=np.zeros((0, 4)), y=np.zeros(0, int)), "non-empty"),
    (dict(y=np.array([0, 1, 2, 3, 0])), "labels in 0..2"),
    (dict(X=np.zeros((5, 3))), "expected input with 4 features, got array of shape"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=-3), "batch_size"),
    (dict(epochs=-1), "epochs"),
    (dict(validation_split=1.5), "validation_split"),
    (dict(input_noise=-1.0), "input_noise"),
])
def test_bad_input_is_rejected_before_any_update(bad, match):
    X, y = blobs(n=5)
    model = mlp()
    W = weights(model)
    kwargs = {k: v for k, v in bad.items() if k not in ("X", "y")}
    with pytest.raises(cr.ChainruleError, match=match) as info:
        cr.fit(model, cr.NLLM(), bad.get("X", X), bad.get("y", y), **kwargs)
    assert isinstance(info.value, ValueError)
    assert_same_weights(model, W)


def test_nan_targets_are_rejected():
    X, _ = blobs(n=5)
    model = cr.Sequential(cr.Linear(4, 1, rng=0))
    with pytest.raises(ValueError, match="NaN"):
        cr.fit(model, cr.SquareLoss(), X, np.array([1.0, np.nan, 0, 0, 0]))


def test_binary_classification_with_nll():
    X, y = blobs(n=80, k=2)
    model = mlp((4, 8, 1), out=cr.Sigmoid)
    h = cr.fit(model, cr.NLL(), X, y, epochs=30, optimizer=cr.Adam(lr=0.01), rng=0)
    assert h.history["accuracy"][-1] > 0.9


def test_a_one_row_last_batch_joins_the_previous_one_with_batchnorm():
    X, y = blobs(n=9)
    model = mlp((4, 6, 3), batch_norm=True)
    rec = Recorder()
    h = cr.fit(model, cr.NLLM(), X, y, epochs=2, batch_size=4, callbacks=[rec], rng=0)
    assert rec.steps == [0, 1, 0, 1]  # batches of 4 and 5 rows, not 4, 4 and 1
    assert h.epochs == 2
    rec = Recorder()
    cr.fit(mlp(), cr.NLLM(), X, y, epochs=1, batch_size=4, callbacks=[rec], rng=0)
    assert rec.steps == [0, 1, 2]  # without BatchNorm the last batch keeps its one row


def test_an_optimizer_copy_keeps_its_state():
    import copy
    X, y = blobs(n=8)
    model, opt = mlp(), cr.Adam()
    cr.fit(model, cr.NLLM(), X, y, optimizer=opt, epochs=1, rng=0)
    model2, opt2 = copy.deepcopy((model, opt))
    for m, o in ((model, opt), (model2, opt2)):
        cr.fit(m, cr.NLLM(), X, y, optimizer=o, epochs=1, rng=1)
    assert_same_weights(model, model2)


def test_a_non_finite_updated_weight_is_undone_and_named():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 3)).astype(np.float32)
    y = rng.normal(size=(16, 1)).astype(np.float32)
    for opt in (cr.SGD(lr=1e39), cr.Adam(lr=1e39)):
        model = mlp((3, 4, 1), act=cr.Tanh, out=None)
        W = weights(model)
        with pytest.raises(cr.DivergenceError, match=r"at epoch 0, step 0, layer \d+ .*"
                                                     r"the updated weight is not finite"):
            cr.fit(model, cr.SquareLoss(), X, y, optimizer=opt, epochs=1, batch_size=None)
        assert_same_weights(model, W)


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_fit_ends_with_the_weights_in_the_arrays_they_started_in(steps):
    # fit writes each step's weights into one of two buffers in turn; whatever the number
    # of steps, arrays taken from p.data before fit hold the weights fit ends with.
    X, y = blobs(n=4 * steps)
    model = mlp()
    arrays = [p.data for p in model.parameters()]
    before = weights(model)
    seen = []

    class Record:
        def on_step_end(self, step, logs):  # the current weights, read through p.data
            seen.append(weights(model))

    cr.fit(model, cr.NLLM(), X, y, epochs=1, batch_size=4, rng=0, callbacks=[Record()])
    assert len(seen) == steps
    for p, a, b, last in zip(model.parameters(), arrays, before, seen[-1], strict=True):
        assert p.data is a
        assert not np.array_equal(a, b)
        np.testing.assert_array_equal(a, last)
    # each step started from the weights of the one before: the same as stepping by hand
    twin, opt, loss = mlp(), cr.Adam(), cr.NLLM()
    for i in range(steps):
        loss(twin(X[4 * i:4 * i + 4]), y[4 * i:4 * i + 4])
        twin.backward_from(loss)
        opt.step(twin.parameters())
    model = mlp()
    cr.fit(model, cr.NLLM(), X, y, epochs=1, batch_size=4, shuffle=False)
    assert_same_weights(model, twin)


def test_divergence_also_restores_batchnorm_running_statistics():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 3)).astype(np.float32)
    model = mlp((3, 4, 1), batch_norm=True, out=None)
    bn = model.modules[1]
    seen = {}

    class Remember:
        def on_step_end(self, step, logs):
            seen["stats"] = bn.running_mean.copy(), bn.running_var.copy()

    with pytest.raises(cr.DivergenceError):
        cr.fit(model, cr.SquareLoss(), X * 1e3, rng.normal(size=16) * 1e6,
               optimizer=cr.SGD(lr=1.0), epochs=50, batch_size=8, callbacks=[Remember()],
               rng=0)
    assert "stats" in seen  # at least one good step before the failing one
    np.testing.assert_array_equal(bn.running_mean, seen["stats"][0])
    np.testing.assert_array_equal(bn.running_var, seen["stats"][1])


def test_ctrl_c_at_the_end_of_an_epoch_takes_no_further_step():
    X, y = blobs(n=16)
    model = mlp()
    snap = {}

    class CtrlCAtEpochEnd:
        def on_epoch_end(self, epoch, logs):
            if epoch == 1:
                snap["w"] = weights(model)
                os.kill(os.getpid(), signal.SIGINT)

    h = cr.fit(model, cr.NLLM(), X, y, epochs=5, batch_size=4, callbacks=CtrlCAtEpochEnd(),
               rng=0)
    assert h.interrupted and h.epochs == 2
    assert_same_weights(model, snap["w"])


@pytest.mark.parametrize("optimizer", ["adam", cr.Adam])
def test_fit_wants_an_optimizer_instance(optimizer):
    X, y = blobs(n=8)
    with pytest.raises(ValueError, match=r"optimizer instance such as cr.Adam"):
        cr.fit(mlp(), cr.NLLM(), X, y, optimizer=optimizer)


def test_ctrl_c_in_a_callback_returns_the_history_so_far():
    X, y = blobs(n=40)
    model = mlp()

    class CtrlC:
        def on_step_end(self, step, logs):
            if logs["epoch"] == 1 and step == 2:
                raise KeyboardInterrupt

    h = cr.fit(model, cr.NLLM(), X, y, epochs=5, batch_size=4, callbacks=[CtrlC()], rng=0,
               progress=False)
    assert h.interrupted and h.epochs == 2  # as with a real Ctrl-C: the epoch so far counts
    assert all(np.isfinite(w).all() for w in weights(model))


# -- sampling="replacement" (the notes' 6.6.2 "get random data point i") ----------------------

class RowIds(cr.SquareLoss):
    """Square loss that records the targets of each batch it sees (row ids, in the tests)."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, A, Y, weights=None):
        self.batches.append(Y[:, 0].astype(int).copy())
        return super().forward(A, Y, weights)


def _ids_fit(n=100, **kwargs):
    X = np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32)
    loss = RowIds()
    model = cr.Sequential(cr.Linear(2, 1, rng=0))
    history = cr.fit(model, loss, X, np.arange(n), progress=False, **kwargs)
    return loss.batches, model, history


def test_replacement_draws_every_batch_uniformly_with_replacement():
    batches, model, _ = _ids_fit(epochs=2, batch_size=32, sampling="replacement", rng=3,
                                 optimizer=cr.SGD(lr=1e-4))
    assert [len(b) for b in batches] == [32] * 8  # ceil(100 / 32) = 4 full batches per epoch
    draws = np.random.default_rng(3)  # exactly these draws, batch after batch
    for b in batches:
        assert np.array_equal(b, draws.integers(0, 100, 32))
    seen = np.concatenate(batches[:4])
    assert len(np.unique(seen)) < len(seen)  # rows repeat within an epoch ...
    assert len(np.unique(seen)) < 100  # ... and some are not drawn at all


def test_replacement_with_batch_gradient_descent_draws_n_rows_once_per_epoch():
    batches, _, history = _ids_fit(epochs=3, batch_size=None, sampling="replacement", rng=0)
    assert [len(b) for b in batches] == [100] * 3 and history.epochs == 3
    assert all(len(np.unique(b)) < 100 for b in batches)


def test_replacement_is_reproducible_and_differs_from_epochs():
    a = _ids_fit(epochs=2, sampling="replacement", rng=5)
    b = _ids_fit(epochs=2, sampling="replacement", rng=5)
    c = _ids_fit(epochs=2, rng=5)
    assert_same_weights(a[1], b[1])
    assert a[2].history["loss"] == b[2].history["loss"]
    assert sorted(np.concatenate(c[0][:4])) == list(range(100))  # "epochs": each row once
    assert not np.array_equal(np.concatenate(a[0]), np.concatenate(c[0]))


def test_replacement_takes_full_batches_even_with_batchnorm():
    # 97 = 3 × 32 + 1: "epochs" merges the last row into the batch before; "replacement"
    # draws ceil(97 / 32) = 4 batches of 32.
    X, y = blobs(97)
    model = mlp((4, 6, 3), batch_norm=True)
    opt = cr.SGD(lr=0.01)
    cr.fit(model, cr.NLLM(), X, y, optimizer=opt, epochs=2, sampling="replacement", rng=0,
           progress=False)
    assert opt.t == 8


def test_unknown_sampling_is_an_error():
    X, y = blobs()
    with pytest.raises(cr.ChainruleError, match=r"sampling in \('epochs', 'replacement'\), "
                       r"got 'bootstrap'"):
        cr.fit(mlp(), cr.NLLM(), X, y, sampling="bootstrap", progress=False)


# -- sample_weight ------------------------------------------------------------------------------

@pytest.mark.parametrize(("loss", "out", "k"), [(cr.NLLM, cr.Softmax, 3), (cr.NLL, cr.Sigmoid, 1),
                                               (cr.SquareLoss, None, 1),
                                               (cr.AbsoluteLoss, None, 1)])
def test_unit_weights_train_exactly_as_no_weights(loss, out, k):
    X, y = blobs(70)
    y = y if k == 3 else (y == 1).astype(float)
    runs = []
    for w in (None, np.ones(70)):
        model = mlp((4, 8, k), out=out)
        h = cr.fit(model, loss(), X, y, sample_weight=w, epochs=3, rng=0, progress=False,
                   validation_split=0.2)
        runs.append((weights(model), {k: v for k, v in h.history.items() if k != "time"}))
    assert_same_weights(runs[0][0], runs[1][0])  # the same gradients, bit for bit
    for key, values in runs[0][1].items():  # the loss, summed per row, to the last bits
        assert runs[1][1][key] == pytest.approx(values, rel=1e-14), key


def _full_batch(X, y, w=None, epochs=5):
    model = mlp((4, 8, 3), dtype=np.float64)
    h = cr.fit(model, cr.NLLM(), X, y, sample_weight=w, optimizer=cr.SGD(lr=0.5),
               epochs=epochs, batch_size=None, rng=0, progress=False)
    return weights(model), h.history


def test_integer_weights_equal_repeated_rows_and_zero_weights_removed_rows():
    X, y = blobs(40)
    X = X.astype(np.float64)
    w = np.random.default_rng(1).integers(0, 4, 40)
    weighted = _full_batch(X, y, w)
    repeated = _full_batch(X.repeat(w, axis=0), y.repeat(w))
    for a, b in zip(weighted[0], repeated[0]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(weighted[1]["loss"], repeated[1]["loss"], rtol=1e-12)
    np.testing.assert_allclose(weighted[1]["accuracy"], repeated[1]["accuracy"], rtol=1e-12)


def test_weighted_history_and_validation_by_hand():
    X, y = blobs(50)
    w = np.linspace(0.0, 2.0, 50)
    model = mlp()
    A = model.predict(X).astype(np.float64)
    rows = -np.log(A[np.arange(50), y])
    right = A.argmax(axis=1) == y
    train, val = slice(0, 40), slice(40, 50)
    h = cr.fit(model, cr.NLLM(), X, y, sample_weight=w, batch_size=None, epochs=1, rng=0,
               validation_split=0.2, progress=False)
    # the epoch's loss is that of the step, taken from the weights before it
    assert h.history["loss"][0] == pytest.approx(
        np.dot(w[train], rows[train]) / w[train].sum(), rel=1e-6)
    assert h.history["accuracy"][0] == pytest.approx(
        np.dot(w[train], right[train]) / w[train].sum())
    # the validation rows keep their weights, after the update
    A = model.predict(X[val]).astype(np.float64)
    expected = np.dot(w[val], -np.log(A[np.arange(10), y[val]])) / w[val].sum()
    assert h.history["val_loss"][0] == pytest.approx(expected, rel=1e-6)
    again = cr.fit(mlp(), cr.NLLM(), X[train], y[train], sample_weight=w[train],
                   batch_size=None, epochs=1, rng=0, progress=False,
                   validation_data=(X[val], y[val], w[val]))
    assert again.history["val_loss"] == h.history["val_loss"]


@pytest.mark.parametrize(("w", "match"), [
    (np.ones(59), r"sample_weight of shape \(60,\), one per row, got array of shape \(59,\)"),
    (np.ones((60, 1)), r"shape \(60,\), one per row, got array of shape \(60, 1\)"),
    (np.r_[np.ones(59), -1.0], r"sample_weight ≥ 0, got 1 negative value\(s\), the smallest -1"),
    (np.r_[np.ones(59), np.nan], r"finite sample_weight, got 1 NaN or inf"),
    (np.r_[np.ones(59), np.inf], r"finite sample_weight, got 1 NaN or inf"),
    (np.zeros(60), r"at least one sample_weight > 0"),
    (["a"] * 60, r"sample_weight as 60 numbers"),
])
def test_bad_sample_weight_is_refused_before_any_update(w, match):
    X, y = blobs()
    model = mlp()
    before = weights(model)
    with pytest.raises(cr.ChainruleError, match=match) as info:
        cr.fit(model, cr.NLLM(), X, y, sample_weight=w, progress=False)
    assert isinstance(info.value, ValueError)
    assert_same_weights(model, before)


def test_multilabel_accuracy_is_the_fraction_of_rows_with_every_label_right():
    # NLL on 3 labels per row: accuracy counts rows, never more than 1.
    X, _ = blobs(60)
    Y = (X[:, :3] > 0).astype(float)
    model = mlp((4, 8, 3), out=cr.Sigmoid)
    h = cr.fit(model, cr.NLL(), X, Y, epochs=2, rng=0, progress=False)
    A = model.predict(X)
    assert evaluate(model, cr.NLL(), X, Y)["accuracy"] == np.mean(
        ((A >= 0.5) == (Y >= 0.5)).all(axis=1))
    assert 0 <= h.history["accuracy"][-1] <= 1


# -- weighted losses, by finite differences and by hand ----------------------------------------

@pytest.mark.parametrize("case", LOSSES, ids=LOSS_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_weighted_loss_gradient_by_central_differences(case, reduction):
    A, Y = case.data(n=6)
    w = np.array([0.0, 0.5, 1.0, 2.0, 3.0, 0.25])
    loss = case.make(reduction)
    loss(A, Y, w)
    analytic = loss.backward()
    numeric = np.zeros_like(A)
    eps = 1e-6
    for idx in np.ndindex(A.shape):
        up, down = A.copy(), A.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (case.make(reduction)(up, Y, w) - case.make(reduction)(down, Y, w)) / (
            2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
    # by hand: Σᵢ wᵢ Lᵢ of the unweighted per-row losses, over the n rows for "mean"
    per_row = [case.make("sum")(A[i:i + 1], Y[i:i + 1]) for i in range(6)]
    expected = np.dot(w, per_row) / (len(w) if reduction == "mean" else 1.0)
    assert loss(A, Y, w) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("case", [c for c in LOSSES if c.activation], ids=lambda c: c.id)
def test_weighted_fused_gradient_equals_the_chain_through_the_activation(case):
    A, Y = case.data(n=6)
    w = np.array([0.0, 0.5, 1.0, 2.0, 3.0, 0.25])
    activation = case.activation()
    Z = np.random.default_rng(1).normal(size=A.shape)
    A = activation.forward(Z)
    loss = case.make()
    loss(A, Y, w)
    np.testing.assert_allclose(loss.fused_backward(), activation.backward(loss.backward()),
                               rtol=1e-9, atol=1e-12)


def test_weights_all_zero_in_a_batch_give_zero_loss_and_gradient():
    loss = cr.SquareLoss()
    A = np.ones((3, 2))
    assert loss.forward(A, np.zeros((3, 2)), np.zeros(3)) == 0.0
    assert not loss.backward().any()


# -- sample_weight: unbiased mini-batches, any scale --------------------------------------------

def _step_losses(w, **kwargs):
    """Each step's loss of a model that predicts 0 (and does not move: lr = 0) on 4 rows."""
    model = cr.Sequential(cr.Linear(1, 1, dtype=np.float64))
    for p in model.parameters():
        p.data[...] = 0.0
    seen = []

    class Record:
        def on_step_end(self, step, logs):
            seen.append(logs["loss"])

    X, Y = np.zeros((4, 1)), np.array([[10.0], [0.0], [0.0], [0.0]])
    cr.fit(model, cr.SquareLoss(), X, Y, sample_weight=w, optimizer=cr.SGD(lr=0.0),
           batch_size=2, rng=0, progress=False, callbacks=[Record()], **kwargs)
    return np.array(seen)


def test_weighted_mini_batch_losses_are_unbiased_for_the_repeated_rows():
    # L = (0 - 10)² = 100 on row 0, 0 elsewhere; w = [3, 1, 1, 1] is the data with row 0
    # three times: over its ordered pairs of distinct rows, a batch of 2 has mean loss 50.
    w = np.array([3.0, 1.0, 1.0, 1.0])
    rows6 = np.repeat(np.arange(4), w.astype(int))
    pairs6 = [(a, b) for a in range(6) for b in range(6) if a != b]
    L = np.where(np.arange(4) == 0, 100.0, 0.0)
    assert np.mean([(L[rows6[a]] + L[rows6[b]]) / 2 for a, b in pairs6]) == 50.0
    # each epoch's two batches split the 4 rows: their losses average to the expectation,
    # 50 (a batch's own Σ wᵢ would give 75 and 0, i.e. 37.5)
    losses = _step_losses(w, epochs=20).reshape(20, 2)
    np.testing.assert_allclose(losses.mean(axis=1), 50.0, rtol=1e-14)
    np.testing.assert_allclose(sorted(losses[0]), [0.0, 100.0], rtol=1e-14)
    # over all 12 ordered pairs of the 4 rows, as fit weighs them (w / w̄)
    loss, wn = cr.SquareLoss(), w / w.mean()
    A, Y = np.zeros((4, 1)), L[:, None] ** 0.5
    pairs = [[a, b] for a in range(4) for b in range(4) if a != b]
    assert np.mean([loss.forward(A[p], Y[p], wn[p]) for p in pairs]) == pytest.approx(
        50.0, rel=1e-14)
    # with replacement too, the steps' mean tends to 50
    assert _step_losses(w, epochs=2000, sampling="replacement").mean() == pytest.approx(
        50.0, rel=0.05)


@pytest.mark.parametrize("v", [1e-300, 1e-45, 1e38, 1e200, 3.0])
def test_uniform_weights_of_any_size_train_exactly_as_no_weights(v):
    rs = np.random.RandomState(0)
    X, Y = rs.randn(50, 3).astype(np.float32), rs.randn(50, 1).astype(np.float32)
    runs = []
    for w in (None, np.full(50, v)):
        model = cr.Sequential(cr.Linear(3, 1, rng=0, dtype=np.float32))
        h = cr.fit(model, cr.SquareLoss(), X, Y, sample_weight=w, epochs=2, rng=0,
                   batch_size=8, validation_split=0.2, progress=False)
        runs.append((weights(model), {k: v for k, v in h.history.items() if k != "time"}))
    assert_same_weights(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


def test_weights_far_apart_train_and_validate_as_their_ratios():
    X, y = blobs(60)
    w = np.linspace(1.0, 4.0, 60)
    runs = []
    for scale in (1.0, 1e300, 1e-300):
        model = mlp()
        h = cr.fit(model, cr.NLLM(), X, y, sample_weight=w * scale, epochs=2, rng=0,
                   validation_data=(X, y, w * scale), progress=False)
        runs.append((weights(model), {k: v for k, v in h.history.items() if k != "time"}))
    for other in runs[1:]:
        for a, b in zip(runs[0][0], other[0]):
            np.testing.assert_allclose(a, b, rtol=1e-6)
        for key, values in runs[0][1].items():
            np.testing.assert_allclose(other[1][key], values, rtol=1e-6)


def test_weight_ratios_that_overflow_the_dtype_are_refused():
    from chainrule.arrays import normalised_weights

    w = np.r_[1.0, np.zeros(70_000)]  # row 0 weighs 70001 times the mean
    with pytest.raises(cr.errors.InputError, match=r"ratios to their mean fit in the model's "
                       r"float16 \(at most 65504\), got a weight 70001 times the mean"):
        normalised_weights(w, np.float16, "fit")
    assert normalised_weights(w, np.float32, "fit").max() == 70001.0
    X, y = blobs(60)
    with pytest.raises(ValueError, match=r"sample_weight > 0 among the training rows, got 48 "
                       r"weights that are all zero"):
        cr.fit(mlp(), cr.NLLM(), X, y, sample_weight=np.r_[np.zeros(48), np.ones(12)],
               validation_split=0.2, progress=False)
