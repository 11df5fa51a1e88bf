"""Data larger than memory: fit on memmaps, HDF5, zarr, Dask arrays and sparse matrices.

``fit`` reads such data a window at a time (``chainrule.arrays``). These tests check that it
trains exactly as on the same array in memory where the data fit in one window, that an epoch
over many windows visits every row once in a block-and-window order that ``rng`` reproduces,
that it never reads more than a window at once nor the whole array, and that bad data is
refused before any update.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.arrays import Dataset, Rows

N, F = 600, 6


def _data(dtype=np.float32):
    r = np.random.default_rng(0)
    X = r.normal(size=(N, F)).astype(dtype)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    return X, y


def _model(dtype=np.float32):
    return cr.Sequential(cr.Linear(F, 8, rng=1, dtype=dtype), cr.ReLU(),
                         cr.Linear(8, 2, rng=2, dtype=dtype), cr.Softmax())


def _fit(X, y, **kwargs):
    model = _model()
    kwargs = {"epochs": 3, "batch_size": 32, "rng": 0, "progress": False, **kwargs}
    history = cr.fit(model, cr.NLLM(), X, y, **kwargs)
    return model, history


def _same(a, b):
    (ma, ha), (mb, hb) = a, b
    for p, q in zip(ma.parameters(), mb.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    drop = {"time"}
    assert {k: v for k, v in ha.history.items() if k not in drop} == {
        k: v for k, v in hb.history.items() if k not in drop}


# -- the array-likes ------------------------------------------------------------------------

def _memmap(X, tmp_path):
    mm = np.memmap(tmp_path / "X.f32", dtype=X.dtype, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    return np.memmap(tmp_path / "X.f32", dtype=X.dtype, mode="r", shape=X.shape)


def _h5py(X, tmp_path):
    h5py = pytest.importorskip("h5py")
    f = h5py.File(tmp_path / "X.h5", "w")
    return f.create_dataset("X", data=X, chunks=(64, X.shape[1]))


def _zarr(X, tmp_path):
    zarr = pytest.importorskip("zarr")
    z = zarr.create_array(store=str(tmp_path / "X.zarr"), shape=X.shape, chunks=(50, X.shape[1]),
                          dtype=X.dtype)
    z[:] = X
    return z


def _dask(X, tmp_path):
    da = pytest.importorskip("dask.array")
    return da.from_array(X, chunks=(100, X.shape[1]))


KINDS = {"memmap": _memmap, "h5py": _h5py, "zarr": _zarr, "dask": _dask,
         "Rows": lambda X, tmp_path: Rows(_memmap(X, tmp_path))}


@pytest.mark.parametrize("make", KINDS.values(), ids=KINDS.keys())
def test_fit_in_one_window_equals_fit_in_memory(make, tmp_path):
    X, y = _data()
    A = make(X, tmp_path)
    assert cr.arrays.kind(A) == "rows"
    for extra in ({}, {"validation_split": 0.2}, {"shuffle": False},
                  {"sampling": "replacement"}, {"sample_weight": np.linspace(0.5, 2, N)}):
        _same(_fit(A, y, **extra), _fit(X, y, **extra))


@pytest.mark.parametrize("make", KINDS.values(), ids=KINDS.keys())
def test_out_of_core_targets_and_validation_data(make, tmp_path):
    # An autoencoder-like fit: Y is read window by window as X is, and so is validation data.
    X, _ = _data(np.float64)
    A = make(X, tmp_path)
    model = cr.Sequential(cr.Linear(F, 3, rng=1, dtype=np.float64),
                          cr.Linear(3, F, rng=2, dtype=np.float64))
    twin = cr.Sequential(cr.Linear(F, 3, rng=1, dtype=np.float64),
                         cr.Linear(3, F, rng=2, dtype=np.float64))
    kw = dict(epochs=2, rng=0, progress=False, optimizer=cr.SGD(lr=0.05))
    h = cr.fit(model, cr.SquareLoss(), A, A, validation_data=(A, A), **kw)
    kw["optimizer"] = cr.SGD(lr=0.05)
    h2 = cr.fit(twin, cr.SquareLoss(), X, X, validation_data=(X, X), **kw)
    assert h.history["loss"] == h2.history["loss"]
    assert h.history["val_loss"] == pytest.approx(h2.history["val_loss"], rel=1e-12)


def test_a_float64_memmap_trains_a_float32_model_without_copying_it(tmp_path):
    X, y = _data(np.float64)
    _same(_fit(_memmap(X, tmp_path), y), _fit(X, y))


# -- many windows ----------------------------------------------------------------------------

def _epoch_rows(rows: Rows, seed, shuffle=True, batch=32):
    """The row ids of one epoch's batches (Y holds each row's id)."""
    data = Dataset(rows, np.arange(len(rows)), shuffle=shuffle)
    batches = [(s, min(s + batch, len(rows))) for s in range(0, len(rows), batch)]
    return [Yb for _, Yb, _ in data.epoch(np.random.default_rng(seed), batches)]


def test_an_epoch_over_windows_visits_every_row_once_in_block_and_window_order(tmp_path):
    X, _ = _data()
    rows = Rows(_memmap(X, tmp_path), block_rows=50, window_blocks=3)  # 12 blocks, 4 windows
    batches = _epoch_rows(rows, 0)
    assert [len(b) for b in batches] == [32] * 18 + [24]
    order = np.concatenate(batches)
    assert sorted(order) == list(range(N))
    for w in range(4):  # each window: its 150 rows are 3 whole blocks, in a random order
        window = order[150 * w:150 * (w + 1)]
        blocks = np.unique(window // 50)
        assert len(blocks) == 3 and sorted(window) == [
            r for b in blocks for r in range(50 * b, 50 * b + 50)]
        assert not np.all(np.diff(window) > 0)
    assert np.array_equal(order, np.concatenate(_epoch_rows(rows, 0)))  # rng reproduces it
    assert not np.array_equal(order, np.concatenate(_epoch_rows(rows, 1)))
    unshuffled = np.concatenate(_epoch_rows(rows, 0, shuffle=False))
    assert np.array_equal(unshuffled, np.arange(N))


def test_a_batch_spans_two_windows_at_their_edge(tmp_path):
    X, _ = _data()
    rows = Rows(_memmap(X, tmp_path), block_rows=50, window_blocks=3)
    batches = _epoch_rows(rows, 0, batch=100)  # batch 1 holds rows 100..199 of the order
    order = np.concatenate(batches)
    first_window_blocks = set(order[:150] // 50)
    assert set(batches[1][:50] // 50) <= first_window_blocks
    assert not set(batches[1][50:] // 50) & first_window_blocks


class Counted:
    """An array-like that records every read and refuses to be turned into one array."""

    def __init__(self, A):
        self.A, self.shape, self.dtype, self.reads = A, A.shape, A.dtype, []

    def __getitem__(self, rows):
        out = self.A[rows]
        self.reads.append(len(out))
        return out

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was materialised")


def test_fit_reads_only_windows_and_never_the_whole_array():
    X, y = _data()
    A = Counted(X)
    model = _model()
    rows = Rows(A, block_rows=40, window_blocks=2)  # windows of 80 rows
    cr.fit(model, cr.NLLM(), rows, y, epochs=2, rng=0, progress=False, validation_split=0.25)
    assert max(A.reads) <= 80
    # the probe and the feature check (2 rows each), the check of every value (each row
    # once), then 2 epochs of 450 rows and 2 validations of 150
    assert sum(A.reads) == 2 + 2 + N + 2 * 450 + 2 * 150
    model.predict(X)  # the trained model is an ordinary one


def test_an_array_like_without_row_slicing_is_refused():
    class NoRows:
        shape, dtype = (10, 3), np.dtype(np.float32)

        def __getitem__(self, rows):
            raise TypeError("no slicing here")

    with pytest.raises(cr.ChainruleError, match=r"row slicing X\[a:b\].*TypeError") as info:
        _fit(NoRows(), np.zeros(10, int))
    assert isinstance(info.value, ValueError)

    class WrongRows(NoRows):
        def __getitem__(self, rows):
            return np.zeros((1, 3))

    with pytest.raises(ValueError,
                       match=r"a slice of rows 0:2 expected 2 rows of shape \(3,\), got 1 rows"):
        _fit(WrongRows(), np.zeros(10, int))


def test_zarr_3_arrays_without_len_are_read(tmp_path):
    X, y = _data()
    z = _zarr(X, tmp_path)
    with pytest.raises(TypeError):
        len(z)
    _same(_fit(z, y, epochs=1), _fit(X, y, epochs=1))


@pytest.mark.parametrize("make", [_memmap, _dask], ids=["memmap", "dask"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_on_disk_are_refused_before_any_update(make, bad, tmp_path):
    X, y = _data()
    X[N - 3, 2] = bad
    model = _model()
    before = [p.data.copy() for p in model.parameters()]
    rows = Rows(make(X, tmp_path), block_rows=100, window_blocks=2)
    with pytest.raises(cr.ChainruleError, match=r"finite values in X \(rows 400..599\).*"
                       + ("NaN" if np.isnan(bad) else "inf")) as info:
        cr.fit(model, cr.NLLM(), rows, y, progress=False)
    assert isinstance(info.value, ValueError)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, b)


def test_out_of_core_labels_out_of_range_are_refused(tmp_path):
    X, y = _data()
    y[-1] = 5
    labels = np.memmap(tmp_path / "y", dtype=np.int64, mode="w+", shape=y.shape)
    labels[:] = y
    with pytest.raises(ValueError, match=r"labels in 0..1 .* got labels from 0 to 5"):
        _fit(X, labels)


# -- sparse ----------------------------------------------------------------------------------

@pytest.mark.parametrize("container", ["csr_matrix", "csr_array", "csc_matrix", "coo_array"])
def test_sparse_X_trains_as_dense_one_batch_made_dense_at_a_time(container, monkeypatch):
    sparse = pytest.importorskip("scipy.sparse")
    X, y = _data()
    X[np.abs(X) < 1] = 0  # mostly zeros
    S = getattr(sparse, container)(X)
    shapes = []
    dense = sparse.csr_matrix.toarray if "matrix" in container else sparse.csr_array.toarray

    def toarray(self, *args, **kwargs):
        shapes.append(self.shape)
        return dense(self, *args, **kwargs)

    kind = sparse.csr_matrix if "matrix" in container else sparse.csr_array
    monkeypatch.setattr(kind, "toarray", toarray)
    _same(_fit(S, y, validation_split=0.2), _fit(X, y, validation_split=0.2))
    assert shapes and max(s[0] for s in shapes) <= 120  # batches, the 120 validation rows


def test_sparse_nan_is_refused():
    sparse = pytest.importorskip("scipy.sparse")
    X, y = _data()
    X[4, 1] = np.nan
    with pytest.raises(cr.ChainruleError, match=r"finite values in X, got 1 NaN value\(s\) "
                       r"in sparse matrix of shape \(600, 6\)") as info:
        _fit(sparse.csr_matrix(X), y)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("kwargs", "match"), [({"block_rows": 0}, "block_rows ≥ 1, got 0"),
                                               ({"window_blocks": 0}, "window_blocks ≥ 1"),
                                               ({"window_blocks": 1.5}, "window_blocks ≥ 1")])
def test_rows_checks_its_sizes(kwargs, match, tmp_path):
    X, _ = _data()
    with pytest.raises(ValueError, match=match):
        Rows(_memmap(X, tmp_path), **kwargs)


def test_a_run_over_many_windows_stopped_and_resumed_ends_as_the_run_never_stopped(tmp_path):
    X, y = _data()
    rows = Rows(_memmap(X, tmp_path), block_rows=50, window_blocks=3)
    whole, h = _fit(rows, y, epochs=3)
    path = tmp_path / "run.ckpt"
    _fit(rows, y, epochs=1, checkpoint=path)
    model, resumed = cr.resume(path, cr.NLLM(), rows, y, epochs=3, batch_size=32,
                               progress=False)
    _same((model, resumed), (whole, h))
    assert h.history["loss"] != _fit(X, y, epochs=3)[1].history["loss"]  # not memory's order


class _ShortRows:
    """An array-like whose ``.shape`` promises twice the rows it holds."""

    def __init__(self, A):
        self.A, self.shape, self.dtype = A, (2 * len(A), *A.shape[1:]), A.dtype

    def __getitem__(self, rows):
        return self.A[rows]


@pytest.mark.parametrize("sampling", ["epochs", "replacement"])
def test_an_array_like_with_fewer_rows_than_its_shape_is_refused(sampling):
    X = _data()[0][:500]
    with pytest.raises(cr.errors.InputError,
                       match=r"fit expected X to hold the rows its \.shape \(1000, 6\) "
                             r"promises: a slice of rows 0:1000 expected 1000 rows of shape "
                             r"\(6,\), got 500 rows"):
        cr.fit(_model(), cr.NLLM(), _ShortRows(X), np.zeros(1000, int), epochs=1,
               sampling=sampling, progress=False)


def test_a_dask_array_of_unknown_chunk_sizes_is_refused():
    da = pytest.importorskip("dask.array")
    from chainrule.sklearn import MLPClassifier

    X = da.from_array(_data()[0][:60], chunks=(20, F))
    X = X[X[:, 0] > -100]  # shape (nan, 6)
    message = (r"X has an unknown number of rows \(a Dask array with unknown chunk sizes: "
               r"call X\.compute_chunk_sizes\(\)\)")
    with pytest.raises(cr.errors.InputError, match=message):
        cr.fit(_model(), cr.NLLM(), X, np.zeros(60, int), epochs=1, progress=False)
    with pytest.raises(cr.errors.InputError, match=message):
        MLPClassifier(epochs=1).fit(X, np.r_[np.zeros(30), np.ones(30)])
    with pytest.raises(cr.errors.InputError, match=message):
        MLPClassifier(epochs=1).fit(X, np.r_[np.zeros(30), np.ones(30)],
                                    sample_weight=np.ones(60))
