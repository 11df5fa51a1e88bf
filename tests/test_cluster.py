"""Hyper-parameter search and out-of-core training on real local clusters (Dask and Ray).

Every test here starts a cluster and carries ``@pytest.mark.cluster``: deselected by default,
run by CI (``-m "cluster or not cluster"``). Each skips cleanly without its engine. The
estimators travel to the workers by the engine's own pickling; the searches' results must
equal the sequential run's, score for score.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from chainrule.sklearn import MLPClassifier  # noqa: E402

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X[:600]), y[:600]


@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("dask.distributed")
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def _scores(search) -> dict:
    keys = [k for k in search.cv_results_ if "test_score" in k or k.startswith("param")]
    return {k: list(search.cv_results_[k]) for k in keys}


def _grid():
    pipe = make_pipeline(StandardScaler(), MLPClassifier((16,), epochs=5, random_state=0))
    return GridSearchCV(pipe, {"mlpclassifier__learning_rate": [1e-3, 1e-2],
                               "mlpclassifier__batch_size": [16, 64]}, cv=3)


def _randomized():
    return RandomizedSearchCV(MLPClassifier((16,), epochs=5, random_state=0),
                              {"learning_rate": [1e-3, 3e-3, 1e-2, 3e-2],
                               "hidden_layer_sizes": [(8,), (16,), (32,)]},
                              n_iter=4, cv=3, random_state=0)


@pytest.mark.parametrize("make", [_grid, _randomized], ids=["grid", "randomized"])
def test_search_on_dask_workers_equals_the_sequential_search(make, digits, dask_client):
    import joblib

    X, y = digits
    sequential = make().fit(X, y)
    with joblib.parallel_backend("dask"):
        distributed = make().set_params(n_jobs=-1).fit(X, y)
    assert _scores(distributed) == _scores(sequential)
    assert distributed.best_params_ == sequential.best_params_
    # the work really ran in the two worker processes
    assert len(dask_client.scheduler_info()["workers"]) == 2


@pytest.mark.parametrize("make", [_grid, _randomized], ids=["grid", "randomized"])
def test_search_on_ray_equals_the_sequential_search(make, digits, local_ray):
    import joblib
    from ray.util.joblib import register_ray

    register_ray()
    X, y = digits
    sequential = make().fit(X, y)
    with joblib.parallel_backend("ray"):
        distributed = make().set_params(n_jobs=-1).fit(X, y)
    assert _scores(distributed) == _scores(sequential)


def test_hyperband_drives_partial_fit_over_a_dask_array(digits, dask_client):
    da = pytest.importorskip("dask.array")
    model_selection = pytest.importorskip("dask_ml.model_selection")
    X, y = digits
    Xd = da.from_array(X, chunks=(100, X.shape[1]))
    yd = da.from_array(y, chunks=100)
    search = model_selection.HyperbandSearchCV(
        MLPClassifier((16,), random_state=0),
        {"learning_rate": [1e-3, 1e-2, 3e-2], "batch_size": [16, 32]},
        max_iter=9, random_state=0)
    search.fit(Xd, yd, classes=np.unique(y))
    assert search.best_score_ > 0.8
    assert search.best_estimator_.n_iter_ >= 1
    assert set(search.cv_results_["param_learning_rate"]) <= {1e-3, 1e-2, 3e-2}


def test_incremental_trains_over_data_larger_than_a_workers_memory():
    # 1.2 GB of float32 rows, in 30 chunks of 40 MB, on workers allowed 1 GB each (about
    # 400 MB of which the interpreter, NumPy, scikit-learn, Dask and chainrule take): only
    # chunk by chunk can the data be trained on. Workers never pause (a paused worker would
    # wait forever); one that outgrows its limit is restarted and the fit fails instead.
    pytest.importorskip("dask.distributed")
    da = pytest.importorskip("dask.array")
    wrappers = pytest.importorskip("dask_ml.wrappers")
    import dask
    from dask.distributed import Client, LocalCluster

    n, f = 300_000, 1000
    X = da.random.default_rng(0).standard_normal((n, f), chunks=(10_000, f), dtype=np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    with dask.config.set({"distributed.worker.memory.pause": False}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=None, memory_limit="1GB") as cluster, \
            Client(cluster) as client:
        limits = [w["memory_limit"] for w in client.scheduler_info()["workers"].values()]
        assert max(limits) < X.nbytes
        inc = wrappers.Incremental(MLPClassifier((8,), random_state=0, batch_size=256),
                                   scoring="accuracy")
        inc.fit(X, y, classes=[0, 1])
        assert inc.estimator_.n_iter_ == 30  # one partial_fit (one epoch) per chunk
        assert inc.estimator_.model_.dtype == np.float32
        assert inc.score(X[:5000], y[:5000]) > 0.9
