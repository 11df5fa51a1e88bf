"""fit(checkpoint=...) and resume: a run stopped after any epoch and resumed loses nothing."""

import numpy as np
import pytest

import chainrule as cr
from cases import assert_same_weights, blobs, mlp
from chainrule.schedules import InverseTime


class Crash(Exception):
    pass


class CrashAt:
    """Dies in the middle of epoch ``epoch`` (after the previous epoch's checkpoint)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_step_end(self, step, logs):
        if logs["epoch"] == self.epoch and step == 1:
            raise Crash


def data(n=48, rng=0):
    """Three classes in five features: the training set, or with ``rng=1`` the validation set."""
    return blobs(n, d=5, sep=1.5, rng=rng)


def model():
    """The network every run here trains: its BatchNorm's running statistics and its Dropout's
    generator are state that a resumed run must get back."""
    return mlp((5, 16, 3), batch_norm=True, dropout=0.2)


def figures(h):
    return ({k: v for k, v in h.history.items() if k != "time"}, h.grad_norms, h.best_epoch,
            h.stopped_early, h.interrupted)


def run(tmp_path, crash_epoch, **kw):
    X, y = data()
    Xv, yv = data(16, rng=1)
    kw = dict(epochs=6, batch_size=8, validation_data=(Xv, yv), rng=3, progress=False, **kw)
    m = model()
    straight = cr.fit(m, cr.NLLM(), X, y, **{**kw, "optimizer": kw["optimizer"]()
                                            if "optimizer" in kw else None})
    path = tmp_path / "run.safetensors"
    with pytest.raises(Crash):
        cr.fit(model(), cr.NLLM(), X, y, checkpoint=path, callbacks=[CrashAt(crash_epoch)],
               **{**kw, "optimizer": kw["optimizer"]() if "optimizer" in kw else None})
    resumed_model, resumed = cr.resume(path, cr.NLLM(), X, y, checkpoint=path,
                                       **{**kw, "optimizer": kw["optimizer"]()
                                          if "optimizer" in kw else None})
    return m, straight, resumed_model, resumed


def assert_same(m1, h1, m2, h2):
    assert figures(h1) == figures(h2)
    assert_same_weights(m1, m2)
    for i in (1,):
        np.testing.assert_array_equal(m1.modules[i].running_mean, m2.modules[i].running_mean)
        np.testing.assert_array_equal(m1.modules[i].running_var, m2.modules[i].running_var)


@pytest.mark.parametrize("crash_epoch", [1, 3, 5])
def test_resumed_run_equals_the_uninterrupted_run(tmp_path, crash_epoch):
    assert_same(*run(tmp_path, crash_epoch))


def test_resume_with_early_stopping_and_a_schedule(tmp_path):
    m1, h1, m2, h2 = run(tmp_path, 2, early_stopping=cr.EarlyStopping(patience=2),
                         optimizer=lambda: cr.Momentum(lr=InverseTime(0.5, 0.1)))
    assert_same(m1, h1, m2, h2)


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    X, y = data()
    Xv, yv = data(16, rng=1)
    path = tmp_path / "done.safetensors"
    es = cr.EarlyStopping(patience=1)
    m1 = model()
    h1 = cr.fit(m1, cr.NLLM(), X, y, epochs=40, optimizer=cr.SGD(lr=1.0),
                validation_data=(Xv, yv), early_stopping=es, rng=0, checkpoint=path)
    assert h1.stopped_early
    m2, h2 = cr.resume(path, cr.NLLM(), X, y, epochs=40, validation_data=(Xv, yv), rng=0)
    assert figures(h1) == figures(h2)
    assert_same_weights(m1, m2)


def test_checkpoint_needs_the_schedule_again(tmp_path):
    X, y = data()
    path = tmp_path / "ck.safetensors"
    cr.fit(model(), cr.NLLM(), X, y, epochs=1, optimizer=cr.SGD(lr=InverseTime(0.1, 1.0)),
           checkpoint=path)
    with pytest.raises(cr.ChainruleError, match="callable lr"):
        cr.resume(path, cr.NLLM(), X, y, epochs=2)


def test_the_checkpoint_holds_a_loadable_model(tmp_path):
    X, y = data()
    path = tmp_path / "ck.safetensors"
    m = model()
    cr.fit(m, cr.NLLM(), X, y, epochs=2, checkpoint=path, rng=0)
    m.eval()
    np.testing.assert_array_equal(cr.load(path).predict(X), m.predict(X))
    assert isinstance(cr.load_optimizer(path), cr.Adam)
    assert [p.name for p in tmp_path.iterdir()] == ["ck.safetensors"]  # no temporary files


def test_a_model_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "m.safetensors"
    cr.save(model(), path)
    X, y = data()
    with pytest.raises(cr.ModelFileError):
        cr.resume(path, cr.NLLM(), X, y)


def test_a_run_stopped_by_a_callback_resumes_to_the_end(tmp_path):
    X, y = data()
    path = tmp_path / "paused.safetensors"

    class PauseAfter:
        def on_epoch_end(self, epoch, logs):
            return epoch == 1

    m1 = model()
    h1 = cr.fit(m1, cr.NLLM(), X, y, epochs=5, rng=0, progress=False)
    cr.fit(model(), cr.NLLM(), X, y, epochs=5, rng=0, progress=False, callbacks=[PauseAfter()],
           checkpoint=path)
    m2, h2 = cr.resume(path, cr.NLLM(), X, y, epochs=5, progress=False)
    assert h2.epochs == 5 and figures(h1) == figures(h2)
    assert_same_weights(m1, m2)


def _long_history(epochs: int, paths, rng=0) -> cr.History:
    """A History of ``epochs`` epochs (loss, val_loss, accuracies, time, a norm per path)."""
    g = np.random.default_rng(rng)
    history = cr.History()
    for _ in range(epochs):
        history.history.setdefault("loss", []).append(float(g.random()))
        for key in ("val_loss", "accuracy", "val_accuracy", "time"):
            history.history.setdefault(key, []).append(float(g.random()))
        for path in paths:
            history.grad_norms.setdefault(path, []).append(float(g.random()))
    history.best_epoch = 0
    return history


def test_a_checkpoint_write_costs_the_new_epoch_not_the_whole_history(tmp_path):
    """A run checkpointed after every epoch re-encoded its whole History each time (0.13 s a
    write at 20,000 epochs, quadratic in the run); now each number is encoded once. The file
    still holds the whole History, exactly, for resume."""
    import time

    from chainrule.checkpoint import read_checkpoint, write_checkpoint
    net = mlp((5, 16, 3))
    paths = [p for p, _ in cr.module.named_parameters(net)]
    history = _long_history(20_000, paths)
    path, rng, opt = tmp_path / "run.safetensors", np.random.default_rng(0), cr.Adam()
    write_checkpoint(path, net, opt, rng, None, history)  # the epochs so far, once
    costs = []
    for _ in range(3):  # the next epochs: the least of three, against a loaded machine
        history.append({k: 0.5 for k in history.history}, {p: 0.25 for p in paths})
        start = time.perf_counter()
        write_checkpoint(path, net, opt, rng, None, history)
        costs.append(time.perf_counter() - start)
    assert min(costs) < 0.05, f"{min(costs) * 1e3:.0f} ms a write"
    saved = read_checkpoint(path).history
    assert saved.history == history.history and saved.grad_norms == history.grad_norms
    assert saved.epochs == 20_003


def test_a_history_changed_before_its_end_is_written_as_it_is(tmp_path):
    """The encoding kept between writes is of the numbers as they were: one changed since
    (a callback editing the History) is written anew, as is a list replaced by another."""
    from chainrule.checkpoint import read_checkpoint, write_checkpoint
    net = mlp((5, 16, 3))
    paths = [p for p, _ in cr.module.named_parameters(net)]
    history = _long_history(1_000, paths)
    path, rng = tmp_path / "run.safetensors", np.random.default_rng(0)
    write_checkpoint(path, net, cr.SGD(), rng, None, history)
    history.history["loss"][10] = 123.0
    history.history["time"] = [7.0] * 1_000
    history.grad_norms[paths[0]][-1] = 0.5  # its last number, the list no longer
    write_checkpoint(path, net, cr.SGD(), rng, None, history)
    saved = read_checkpoint(path).history
    assert saved.history["loss"][10] == 123.0 and saved.history["time"] == [7.0] * 1_000
    assert saved.history == history.history and saved.grad_norms == history.grad_norms
