"""The scikit-learn estimators: scikit-learn's own checks, digits, pipelines, partial_fit, files.

The estimators are thin adapters over ``chainrule.fit``; these tests check the adaptation
(parameters, labels, shapes, state carried between calls), not training itself.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, make_regression
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

import chainrule as cr
from cases import weights
from chainrule.optimizers import SGD, Adadelta, Adagrad, Adam, Momentum, RMSprop
from chainrule.serialization import load, save
from chainrule.sklearn import MLPClassifier, MLPRegressor

ESTIMATORS = [MLPClassifier, MLPRegressor]

# API.md section 6, in order, and section 8's tol.
PARAMETERS = [
    "hidden_layer_sizes", "activation", "optimizer", "learning_rate", "batch_size", "epochs",
    "weight_decay", "dropout", "batch_norm", "early_stopping", "validation_fraction",
    "patience", "input_noise", "clip_grad_norm", "random_state", "verbose", "tol",
]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=120, n_features=5, n_targets=3, noise=1.0,
                           random_state=0)
    return StandardScaler().fit_transform(X), y


# -- scikit-learn's checks ---------------------------------------------------------------------

@parametrize_with_checks([MLPClassifier(), MLPRegressor()])
def test_sklearn_check(estimator, check, monkeypatch):
    # check_array_api_input (NumPy namespace only) runs only when this variable is set.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


# -- parameters --------------------------------------------------------------------------------

@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_parameter_names_are_api_md_section_6(Estimator):
    assert list(Estimator().get_params()) == sorted(PARAMETERS)
    assert set(Estimator._parameter_constraints) == set(PARAMETERS)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_parameters_are_stored_unchanged(Estimator):
    given = dict(hidden_layer_sizes=[7, 3], activation="tanh", optimizer="rmsprop",
                 learning_rate=0.02, batch_size=None, epochs=3, weight_decay=1e-3,
                 dropout=0.25, batch_norm=True, early_stopping=True, validation_fraction=0.2,
                 patience=2, tol=1e-3, input_noise=0.1, clip_grad_norm=5.0, random_state=4,
                 verbose=0)
    est = Estimator(**given)
    assert est.get_params() == given
    assert est.get_params()["hidden_layer_sizes"] is given["hidden_layer_sizes"]


BAD_PARAMETERS = [
    ("hidden_layer_sizes", 0), ("hidden_layer_sizes", "100"), ("activation", "softplus"),
    ("optimizer", "lbfgs"), ("optimizer", "Adam"), ("learning_rate", 0.0),
    ("learning_rate", -1e-3), ("learning_rate", "0.01"), ("batch_size", 0),
    ("batch_size", 2.5), ("epochs", 0), ("epochs", 1.5), ("weight_decay", -0.1),
    ("dropout", 1.0), ("dropout", -0.1), ("batch_norm", "yes"), ("early_stopping", 1.5),
    ("validation_fraction", 0.0), ("validation_fraction", 1.0), ("patience", -1),
    ("input_noise", -1.0), ("clip_grad_norm", 0.0), ("random_state", "seed"), ("tol", -1e-4),
    ("verbose", "loud"),
]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize(("name", "value"), BAD_PARAMETERS)
def test_bad_parameter_raises_invalid_parameter_error(Estimator, name, value, iris):
    X, y = iris
    est = Estimator(**{name: value})  # never raises in __init__
    with pytest.raises(InvalidParameterError, match=name):
        est.fit(X, y)
    with pytest.raises(InvalidParameterError, match=name):
        est.partial_fit(X, y, **({"classes": [0, 1, 2]} if Estimator is MLPClassifier else {}))


@pytest.mark.parametrize("sizes", [[0, 3], [4, "8"], [True]])
def test_bad_hidden_layer_size_inside_a_sequence(sizes, iris):
    X, y = iris
    with pytest.raises(ValueError, match=r"hidden_layer_sizes as positive ints"):
        MLPClassifier(hidden_layer_sizes=sizes).fit(X, y)


# -- what the estimators pass to chainrule.fit --------------------------------------------------

FIT_ARGUMENTS = [
    # (estimator parameters, the keyword arguments of chainrule.fit they must become)
    ({}, dict(epochs=50, batch_size=32, validation_split=0.0, early_stopping=None,
              validation_rows=None, input_noise=0.0, clip_grad_norm=None, progress=False)),
    (dict(epochs=3, batch_size=None, input_noise=0.5, clip_grad_norm=2.0, verbose=1),
     dict(epochs=3, batch_size=None, input_noise=0.5, clip_grad_norm=2.0, progress=True)),
    # the estimator splits (at random, stratified for the classifier): 45 of 150 iris rows
    (dict(early_stopping=True, validation_fraction=0.3, patience=4),
     dict(validation_split=0.0, validation_rows=45, early_stopping=("EarlyStopping", 4, 1e-4))),
    (dict(early_stopping=True, tol=0.5), dict(early_stopping=("EarlyStopping", 10, 0.5))),
    (dict(verbose=False, batch_size=7), dict(progress=False, batch_size=7)),
]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize(("params", "expected"), FIT_ARGUMENTS)
def test_parameters_reach_fit(Estimator, params, expected, iris, monkeypatch):
    calls = []

    def spy(model, loss, X, Y, **kwargs):
        calls.append((model, loss, kwargs))
        return cr.History()  # as after a Ctrl-C before the first epoch ended

    monkeypatch.setattr("chainrule.sklearn.fit", spy)
    X, y = iris
    est = Estimator(**params).fit(X, y)
    ((model, loss, kwargs),) = calls
    assert model is est.model_ and kwargs["optimizer"] is est.optimizer_
    assert isinstance(kwargs["rng"], np.random.Generator)
    assert isinstance(loss, cr.NLLM if Estimator is MLPClassifier else cr.SquareLoss)
    es = kwargs["early_stopping"]
    kwargs["early_stopping"] = es if es is None else (type(es).__name__, es.patience,
                                                      es.min_delta)
    validation = kwargs["validation_data"]
    kwargs["validation_rows"] = None if validation is None else len(validation[0])
    assert {k: kwargs[k] for k in expected} == expected
    assert est.loss_curve_ == [] and est.n_iter_ == 0


# -- the network that fit builds ---------------------------------------------------------------

ARCHITECTURES = [
    # (parameters, expected module classes for iris: 4 features, 3 classes)
    (dict(hidden_layer_sizes=()), ["Linear", "Softmax"]),
    (dict(hidden_layer_sizes=5), ["Linear", "ReLU", "Linear", "Softmax"]),
    (dict(hidden_layer_sizes=(6, 5), activation="tanh"),
     ["Linear", "Tanh", "Linear", "Tanh", "Linear", "Softmax"]),
    (dict(hidden_layer_sizes=(6,), activation="leaky_relu", batch_norm=True, dropout=0.5),
     ["Linear", "BatchNorm", "LeakyReLU", "Dropout", "Linear", "Softmax"]),
    (dict(hidden_layer_sizes=(6,), activation="sigmoid"),
     ["Linear", "Sigmoid", "Linear", "Softmax"]),
    (dict(hidden_layer_sizes=(6,), activation="identity"),
     ["Linear", "Identity", "Linear", "Softmax"]),
]


@pytest.mark.parametrize(("params", "classes"), ARCHITECTURES)
def test_architecture(params, classes, iris):
    X, y = iris
    clf = MLPClassifier(**params, epochs=1, random_state=0).fit(X, y)
    assert isinstance(clf.model_, cr.Sequential)
    assert [type(m).__name__ for m in clf.model_.modules] == classes
    linears = [m for m in clf.model_.modules if isinstance(m, cr.Linear)]
    sizes = params["hidden_layer_sizes"]
    sizes = [sizes] if isinstance(sizes, int) else list(sizes)
    assert [(m.m, m.n) for m in linears] == list(zip([4, *sizes], [*sizes, 3]))
    if "dropout" in params:
        assert clf.model_.modules[3].p == params["dropout"]


def test_relu_layers_get_he_init_and_others_glorot(iris):
    X, y = iris
    relu = MLPClassifier((6,), activation="relu", epochs=1, random_state=0).fit(X, y)
    tanh = MLPClassifier((6,), activation="tanh", epochs=1, random_state=0).fit(X, y)
    assert [m.init for m in relu.model_.modules if isinstance(m, cr.Linear)] == ["he", "xavier"]
    assert [m.init for m in tanh.model_.modules if isinstance(m, cr.Linear)] == [
        "xavier", "xavier"]


# (name, class, its default lr, a learning_rate that trains iris in 30 epochs)
OPTIMIZER_NAMES = [("sgd", SGD, 0.01, 0.1), ("momentum", Momentum, 0.01, 0.05),
                   ("adagrad", Adagrad, 0.01, 0.1), ("rmsprop", RMSprop, 0.01, 0.01),
                   ("adadelta", Adadelta, 1.0, 0.5), ("adam", Adam, 1e-3, 0.01)]


@pytest.mark.parametrize(("name", "Optimizer", "default_lr", "lr"), OPTIMIZER_NAMES)
def test_optimizer_name_learning_rate_and_weight_decay(name, Optimizer, default_lr, lr, iris):
    X, y = iris
    default = MLPClassifier((8,), optimizer=name, epochs=2, random_state=0).fit(X, y)
    assert type(default.optimizer_) is Optimizer
    assert default.optimizer_.lr == default_lr  # learning_rate=None: the optimizer's default
    assert default.optimizer_.weight_decay == 0.0
    given = MLPClassifier((8,), optimizer=name, learning_rate=lr, weight_decay=1e-3,
                          epochs=30, random_state=0).fit(X, y)
    assert (given.optimizer_.lr, given.optimizer_.weight_decay) == (lr, 1e-3)
    assert given.optimizer_.t == 30 * -(-len(X) // 32)  # every epoch's steps, one optimizer
    assert given.score(X, y) > 0.8


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_network_dtype_follows_x_as_in_sklearn(Estimator, dtype, iris):
    # float32 X trains a float32 network; anything else float64, so predictions are the same
    # whichever rows are predicted together (sklearn's subset-invariance check, at 1e-7).
    X, y = iris
    est = Estimator((4,), epochs=1, random_state=0).fit((X * 10).astype(dtype), y)
    expected = np.float32 if dtype == np.float32 else np.float64
    assert est.model_.dtype == expected
    regression = np.float32 if dtype == np.float32 else np.float64  # the input's dtype
    assert est.predict(X.astype(dtype)).dtype == (
        np.int64 if Estimator is MLPClassifier else regression)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_batch_norm_trains_where_fit_does_on_a_last_batch_of_one_row(Estimator, iris):
    # 129 = 4 × 32 + 1: fit merges the one-row last batch into the one before it.
    X, y = iris
    est = Estimator((4,), batch_norm=True, batch_size=32, epochs=2, random_state=0)
    est.fit(X[:129], y[:129])
    assert est.optimizer_.t == 2 * 4
    est.partial_fit(X[:129], y[:129])
    assert est.optimizer_.t == 3 * 4
    # early stopping holds out round(0.1 × 144) = 14 rows, leaving 130 = 4 × 32 + 2 ...
    early = Estimator((4,), batch_norm=True, early_stopping=True, epochs=1, random_state=0)
    assert early.fit(X[:144], y[:144]).optimizer_.t == 5
    # ... and of 143 it leaves 129
    assert early.fit(X[:143], y[:143]).optimizer_.t == 4


def test_batch_norm_cannot_train_on_one_row(iris):
    X, _ = iris
    with pytest.raises(ValueError, match=r"at least 2 rows"):
        MLPRegressor((4,), batch_norm=True).fit(X[:1], [1.0])
    MLPRegressor((), batch_norm=True, epochs=1).fit(X[:1], [1.0])  # no hidden layer


# -- classification ----------------------------------------------------------------------------

def test_digits_pipeline_with_defaults_reaches_95_percent(digits):
    X_train, X_test, y_train, y_test = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(random_state=0))
    assert pipe.fit(X_train, y_train).score(X_test, y_test) >= 0.95
    clf = pipe[-1]
    assert clf.n_iter_ == clf.epochs == len(clf.loss_curve_) == clf.history_.epochs
    assert clf.loss_curve_[-1] < clf.loss_curve_[0] / 10
    assert clf.validation_loss_curve_ is None
    assert clf.n_features_in_ == 64


def test_same_random_state_gives_identical_predictions(digits):
    X_train, X_test, y_train, _ = digits
    params = dict(epochs=3, dropout=0.2, input_noise=0.1, random_state=7)

    def proba(**extra):
        pipe = make_pipeline(StandardScaler(), MLPClassifier(**{**params, **extra}))
        return pipe.fit(X_train, y_train).predict_proba(X_test)

    first = proba()
    assert np.array_equal(first, proba())
    assert not np.allclose(first, proba(input_noise=0.0))
    assert not np.allclose(first, proba(random_state=8))
    # A RandomState instance is drawn from, as scikit-learn estimators do.
    assert np.array_equal(proba(random_state=np.random.RandomState(3)),
                          proba(random_state=np.random.RandomState(3)))


LABELS = [
    ("strings", np.array(["setosa", "versicolor", "virginica"])),
    ("non-contiguous ints", np.array([-3, 7, 42])),
    ("integral floats", np.array([-1.0, 2.0, 10.0])),
    ("binary bools", np.array([False, True])),
    ("binary strings", np.array(["no", "yes"])),
    ("binary ints", np.array([3, 9])),
]


@pytest.mark.parametrize(("kind", "names"), LABELS, ids=[kind for kind, _ in LABELS])
def test_labels_of_any_type(kind, names, iris):
    X, y = iris
    keep = y < len(names)
    X, labels = X[keep], names[y[keep]]
    clf = MLPClassifier((16,), epochs=20, learning_rate=0.01, random_state=0).fit(X, labels)
    assert np.array_equal(clf.classes_, names)
    P = clf.predict_proba(X)
    assert P.shape == (len(X), len(names))
    assert np.allclose(P.sum(axis=1), 1.0, atol=1e-12) and (P >= 0).all()
    assert np.array_equal(clf.predict(X), names[P.argmax(axis=1)])
    assert clf.predict(X).dtype == names.dtype
    assert clf.score(X, labels) > 0.9
    binary = len(names) == 2
    last = clf.model_.modules[-2:]
    assert isinstance(last[1], cr.Sigmoid if binary else cr.Softmax)
    assert last[0].n == (1 if binary else len(names))
    assert set(clf.history_.history) >= {"loss", "accuracy"}


def test_binary_probabilities_are_one_minus_p_and_p(iris):
    X, y = iris
    X, y = X[y < 2], y[y < 2]
    clf = MLPClassifier((4,), epochs=2, random_state=0).fit(X, y)
    p = clf.model_.predict(X)[:, 0].astype(np.float64)
    assert np.array_equal(clf.predict_proba(X), np.column_stack([1 - p, p]))


def test_predict_is_the_argmax_of_predict_proba_also_at_a_tie(iris):
    X, y = iris
    clf = MLPClassifier((4,), epochs=1, random_state=0).fit(X[y < 2], y[y < 2])
    out = clf.model_.modules[-2]  # P(class 1) = σ(0) = 0.5 exactly
    out.W.data[...], out.W0.data[...] = 0.0, 0.0
    assert (clf.predict_proba(X) == 0.5).all()
    assert (clf.predict(X) == clf.classes_[0]).all()


def test_one_class_is_an_error(iris):
    X, _ = iris
    with pytest.raises(ValueError, match=r"at least 2 classes, got 1 class: \['a'\]"):
        MLPClassifier().fit(X, ["a"] * len(X))


def test_continuous_targets_are_refused_by_the_classifier(iris):
    X, _ = iris
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X, np.linspace(0, 1, len(X)))


def test_nan_is_refused_with_sklearns_message_before_training(iris):
    X, y = iris
    X = X.copy()
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN") as info:
        MLPClassifier().fit(X, y)
    assert not isinstance(info.value, cr.ChainruleError)


def test_early_stopping_holds_out_a_random_fraction_and_restores_the_best(rng):
    # Random labels: the validation loss soon rises, so training stops early.
    X = rng.normal(size=(200, 5))
    y = rng.integers(0, 2, size=200)
    clf = MLPClassifier((32,), early_stopping=True, validation_fraction=0.25, patience=3,
                        epochs=500, learning_rate=0.01, random_state=0).fit(X, y)
    h = clf.history_
    assert h.stopped_early and clf.n_iter_ < 500
    assert clf.n_iter_ == h.best_epoch + 1 + 3
    assert len(clf.validation_loss_curve_) == len(clf.loss_curve_) == clf.n_iter_
    assert clf.validation_loss_curve_ == h.history["val_loss"]
    assert clf.optimizer_.t == clf.n_iter_ * -(-150 // 32)  # 150 rows trained on


def test_early_stopping_shuffles_before_holding_out(iris):
    # Rows sorted by class, the last 10 % all of class 2 (and no other row of it): held out
    # unshuffled, training would never see class 2 and the validation accuracy would stay 0.
    X, y = iris
    X, y = X[:111], y[:111]
    clf = MLPClassifier((16,), early_stopping=True, patience=50, epochs=20, learning_rate=0.01,
                        random_state=0).fit(X, y)
    assert max(clf.history_.history["val_accuracy"]) > 0.5


def test_verbose_shows_progress(iris, capsys):
    X, y = iris
    MLPClassifier((4,), epochs=2, random_state=0).fit(X, y)
    assert capsys.readouterr().err == ""
    MLPClassifier((4,), epochs=2, verbose=True, random_state=0).fit(X, y)
    assert "epoch 2/2" in capsys.readouterr().err


def test_dataframe_gives_feature_names_in(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = MLPClassifier((4,), epochs=1, random_state=0).fit(frame, y)
    assert list(clf.feature_names_in_) == ["a", "b", "c", "d"]


# -- partial_fit --------------------------------------------------------------------------------

def test_partial_fit_needs_classes_on_its_first_call(iris):
    X, y = iris
    clf = MLPClassifier()
    with pytest.raises(ValueError, match="classes=... .all labels. on its first call"):
        clf.partial_fit(X, y)
    assert not hasattr(clf, "classes_")


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_partial_fit_calls_equal_one_fit_with_as_many_epochs(Estimator, iris):
    # Each partial_fit runs one epoch with the same optimizer (its state and t carry over)
    # and the same generator, so three calls are bit-identical to fit(epochs=3).
    X, y = iris
    params = dict(hidden_layer_sizes=(8,), dropout=0.1, input_noise=0.05, random_state=5)
    whole = Estimator(**params, epochs=3).fit(X, y)
    part = Estimator(**params, epochs=50)
    extra = {"classes": np.unique(y)} if Estimator is MLPClassifier else {}
    optimizer = None
    for i in range(3):
        part.partial_fit(X, y, **extra)
        optimizer = optimizer or part.optimizer_
        assert part.optimizer_ is optimizer and optimizer.t == (i + 1) * 5
        assert part.history_.epochs == 1 and part.n_iter_ == i + 1
    assert part.loss_curve_ == whole.loss_curve_
    for a, b in zip(part.model_.parameters(), whole.model_.parameters()):
        assert np.array_equal(a.data, b.data)
    assert np.array_equal(part.predict(X), whole.predict(X))


def test_partial_fit_after_fit_goes_on_from_fit(iris):
    X, y = iris
    clf = MLPClassifier((8,), epochs=2, random_state=0).fit(X, y)
    model, optimizer, t = clf.model_, clf.optimizer_, clf.optimizer_.t
    clf.partial_fit(X[:40], y[:40])  # one class only in this batch: fine
    assert clf.model_ is model and clf.optimizer_ is optimizer
    assert optimizer.t == t + 2 and clf.n_iter_ == 3
    clf.fit(X, y)  # fit starts afresh
    assert clf.model_ is not model and clf.optimizer_ is not optimizer and clf.n_iter_ == 2


def test_partial_fit_rejects_unknown_labels_and_other_classes(iris):
    X, y = iris
    clf = MLPClassifier((4,), random_state=0).partial_fit(X[:100], y[:100], classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"labels in \[0, 1, 2\], got \[7\]"):
        clf.partial_fit(X[:2], [7, 1])
    with pytest.raises(ValueError, match="as on the first call"):
        clf.partial_fit(X, y, classes=[0, 1])
    clf.partial_fit(X, y, classes=[2, 1, 0])  # the same classes, in any order
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        clf.partial_fit(X[:, :3], y)


@pytest.mark.parametrize("copier", [lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy],
                         ids=["pickle", "deepcopy"])
def test_partial_fit_after_a_copy_keeps_the_optimizer_state(copier, iris):
    X, y = iris
    clf = MLPClassifier((8,), epochs=2, random_state=0).fit(X, y)
    twin = copier(clf)
    assert isinstance(clf.optimizer_, Adam)  # the original is untouched by the copy
    clf.partial_fit(X, y)
    twin.partial_fit(X, y)
    assert twin.optimizer_.t == clf.optimizer_.t == 15
    assert np.array_equal(twin.predict_proba(X), clf.predict_proba(X))


# -- regression ---------------------------------------------------------------------------------

def test_regressor_one_and_many_outputs(regression):
    X, Y = regression
    multi = MLPRegressor((32,), epochs=100, learning_rate=0.01, random_state=0).fit(X, Y)
    assert multi.predict(X).shape == Y.shape and multi.n_outputs_ == 3
    assert multi.score(X, Y) > 0.95
    single = MLPRegressor((32,), epochs=100, learning_rate=0.01, random_state=0).fit(X, Y[:, 0])
    assert single.predict(X).shape == (len(X),) and single.n_outputs_ == 1
    column = MLPRegressor((32,), epochs=100, learning_rate=0.01, random_state=0)
    assert column.fit(X, Y[:, :1]).predict(X).shape == (len(X), 1)
    assert np.array_equal(column.predict(X)[:, 0], single.predict(X))
    assert isinstance(single.model_.modules[-1], cr.Identity)
    assert "accuracy" not in single.history_.history


def test_regressor_standardises_targets(regression):
    # y and 1000·y − 50 give the same standardised targets, hence the same network, and
    # predictions that differ by the same affine map.
    X, Y = regression
    y = Y[:, 1]
    reg = MLPRegressor((16,), epochs=20, random_state=0).fit(X, y)
    big = MLPRegressor((16,), epochs=20, random_state=0).fit(X, 1000 * y - 50)
    assert np.allclose(reg.y_mean_, [y.mean()]) and np.allclose(reg.y_scale_, [y.std()])
    assert np.allclose(big.predict(X), 1000 * reg.predict(X) - 50, rtol=1e-9, atol=1e-6)
    A = reg.model_.predict(X)[:, 0]
    assert np.allclose(reg.predict(X), A * y.std() + y.mean())
    assert abs(np.mean(A)) < 1  # the network itself works in standardised units


def test_constant_target_has_scale_one(regression):
    X, _ = regression
    reg = MLPRegressor((4,), epochs=50, learning_rate=0.01, random_state=0)
    reg.fit(X, np.full(len(X), 3.0))
    assert reg.y_scale_.tolist() == [1.0] and reg.y_mean_.tolist() == [3.0]
    assert np.allclose(reg.predict(X), 3.0, atol=0.2)


def test_regressor_partial_fit_checks_the_number_of_outputs(regression):
    X, Y = regression
    reg = MLPRegressor((4,), random_state=0).partial_fit(X, Y)
    with pytest.raises(ValueError, match=r"expected y with 3 output\(s\), got array of shape"):
        reg.partial_fit(X, Y[:, 0])


# -- scikit-learn tools -------------------------------------------------------------------------

def test_grid_search_over_two_learning_rates_in_two_processes(iris):
    X, y = iris
    grid = GridSearchCV(MLPClassifier((16,), epochs=20, random_state=0),
                        {"learning_rate": [1e-4, 1e-2]}, cv=3, n_jobs=2).fit(X, y)
    assert grid.best_params_ == {"learning_rate": 1e-2}  # 1e-4 barely moves in 20 epochs
    assert list(grid.cv_results_["param_learning_rate"]) == [1e-4, 1e-2]
    assert grid.best_estimator_.optimizer_.lr == 1e-2
    assert grid.score(X, y) > 0.9


@pytest.mark.parametrize(("Estimator", "data"), [(MLPClassifier, "iris"),
                                               (MLPRegressor, "regression")])
def test_cross_val_score_and_clone(Estimator, data, request):
    X, y = request.getfixturevalue(data)
    est = Estimator((16,), epochs=30, learning_rate=0.01, random_state=0)
    scores = cross_val_score(make_pipeline(StandardScaler(), est), X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8
    fitted = clone(est).fit(X, y)
    twin = clone(fitted)
    assert twin.get_params() == est.get_params() and not hasattr(twin, "model_")
    assert np.array_equal(twin.fit(X, y).predict(X), fitted.predict(X))


# -- model files --------------------------------------------------------------------------------

@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_network_saves_and_loads(Estimator, iris, tmp_path):
    X, y = iris
    est = Estimator((8,), batch_norm=True, dropout=0.2, epochs=3, random_state=0).fit(X, y)
    path = tmp_path / "model.safetensors"
    save(est.model_, path, optimizer=est.optimizer_)
    model = load(path)
    assert np.array_equal(model.predict(X), est.model_.predict(X))
    if Estimator is MLPClassifier:
        assert np.array_equal(model.predict(X).argmax(axis=1), est.predict_proba(X).argmax(1))
    else:
        assert np.array_equal(model.predict(X)[:, 0] * est.y_scale_[0] + est.y_mean_[0],
                              est.predict(X))


# -- API.md section 8: what scikit-learn's own MLP tests check ----------------------------------

@pytest.fixture(scope="module")
def multilabel():
    from sklearn.datasets import make_multilabel_classification
    X, Y = make_multilabel_classification(n_samples=300, n_features=10, n_classes=4,
                                          random_state=0)
    return StandardScaler().fit_transform(X), Y


def test_multilabel_indicator_targets(multilabel):
    X, Y = multilabel
    clf = MLPClassifier((32,), epochs=60, learning_rate=0.01, random_state=0).fit(X, Y)
    assert [type(m).__name__ for m in clf.model_.modules[-2:]] == ["Linear", "Sigmoid"]
    assert clf.model_.modules[-2].n == 4 and np.array_equal(clf.classes_, np.arange(4))
    P = clf.predict_proba(X)
    assert P.shape == (300, 4) and P.dtype == np.float64 and ((P >= 0) & (P <= 1)).all()
    assert not np.allclose(P.sum(axis=1), 1.0)  # independent labels
    pred = clf.predict(X)
    assert pred.shape == (300, 4) and set(np.unique(pred)) <= {0, 1}
    assert np.array_equal(pred, (P > 0.5).astype(int))
    subset = np.mean((pred == Y).all(axis=1))
    assert clf.score(X, Y) == subset > 0.6  # subset accuracy, as scikit-learn's
    assert clf.history_.history["accuracy"][-1] <= 1.0
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), P, rtol=1e-5)


def test_multilabel_partial_fit(multilabel):
    X, Y = multilabel
    clf = MLPClassifier((16,), random_state=0)
    for _ in range(3):
        clf.partial_fit(X, Y)
    assert clf.n_iter_ == 3 and clf.predict(X).shape == (300, 4)
    with pytest.raises(ValueError, match=r"multilabel y of 4 columns, got array of shape"):
        clf.partial_fit(X, Y[:, :3])


@pytest.mark.parametrize("bad", [2, 0.5, -1])
def test_multilabel_values_other_than_0_and_1_are_refused(bad, multilabel):
    X, Y = multilabel
    Y = Y.astype(float)
    Y[5, 2] = bad
    with pytest.raises(cr.ChainruleError, match=r"multilabel indicator y of 0s and 1s .* "
                       r"got array of shape \(300, 4\) with values") as info:
        MLPClassifier(epochs=1).fit(X, Y)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_predict_log_proba_is_log_predict_proba_and_finite_where_it_rounds_to_0(n_classes,
                                                                               iris):
    X, y = iris
    keep = y < n_classes
    X, y = X[keep].astype(np.float32), y[keep]
    clf = MLPClassifier((8,), epochs=5, random_state=0).fit(X, y)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), clf.predict_proba(X),
                               rtol=1e-5, atol=1e-7)
    out = clf.model_.modules[-2]
    out.W.data *= 1e4  # saturated float32 outputs: some probabilities are exactly 0
    assert (clf.predict_proba(X) == 0).any()
    logp = clf.predict_log_proba(X)
    assert np.isfinite(logp).all() and logp.max() <= 0
    assert np.array_equal(logp.argmax(axis=1), clf.predict_proba(X).argmax(axis=1))


@pytest.mark.parametrize("container", ["csr_matrix", "csr_array", "csc_matrix"])
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_sparse_input_gives_the_dense_predictions(container, Estimator, iris, monkeypatch):
    sparse = pytest.importorskip("scipy.sparse")
    X, y = iris
    X = np.where(np.abs(X) < 0.5, 0.0, X)
    S = getattr(sparse, container)(X)
    params = dict(hidden_layer_sizes=(8,), epochs=3, random_state=0, early_stopping=True,
                  patience=5)
    dense = Estimator(**params).fit(X, y)
    shapes = []
    kind = sparse.csr_matrix if "matrix" in container else sparse.csr_array
    toarray = kind.toarray
    monkeypatch.setattr(kind, "toarray", lambda self, *a, **k: (shapes.append(self.shape),
                                                                toarray(self, *a, **k))[1])
    est = Estimator(**params).fit(S, y)
    assert max(s[0] for s in shapes) <= 32  # batches, never the whole matrix
    assert np.array_equal(est.predict(S), dense.predict(X))
    if Estimator is MLPClassifier:
        assert np.array_equal(est.predict_proba(S), dense.predict_proba(X))
    extra = {"classes": np.unique(y)} if Estimator is MLPClassifier else {}
    est.partial_fit(S, y, **extra)
    dense.partial_fit(X, y, **extra)
    assert np.array_equal(est.predict(S), dense.predict(X))


def test_sparse_nan_is_a_chainrule_error(iris):
    sparse = pytest.importorskip("scipy.sparse")
    X, y = iris
    X = X.copy()
    X[3, 1] = np.nan
    with pytest.raises(cr.ChainruleError, match=r"finite values in X, got 1 NaN") as info:
        MLPClassifier().fit(sparse.csr_matrix(X), y)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_unit_sample_weight_equals_none_and_integer_weights_equal_repeated_rows(Estimator, iris):
    X, y = iris
    params = dict(hidden_layer_sizes=(8,), epochs=10, random_state=0, batch_size=None,
                  learning_rate=0.01)
    none = Estimator(**params).fit(X, y)
    ones = Estimator(**params).fit(X, y, sample_weight=np.ones(len(X)))
    assert np.array_equal(none.predict(X), ones.predict(X))
    w = np.random.default_rng(0).integers(0, 3, len(X))
    weighted = Estimator(**params).fit(X, y, sample_weight=w)
    repeated = Estimator(**params).fit(X.repeat(w, axis=0), y.repeat(w))
    out = "predict_proba" if Estimator is MLPClassifier else "predict"
    np.testing.assert_allclose(getattr(weighted, out)(X), getattr(repeated, out)(X),
                               rtol=1e-9, atol=1e-12)
    # partial_fit takes weights too; score is weighted
    extra = {"classes": np.unique(y)} if Estimator is MLPClassifier else {}
    Estimator(**params).partial_fit(X, y, sample_weight=w, **extra)
    assert weighted.score(X, y, sample_weight=w) == pytest.approx(
        repeated.score(X.repeat(w, axis=0), y.repeat(w)))


@pytest.mark.parametrize("w", [np.ones(3), -np.ones(150), np.full(150, np.nan)])
def test_bad_sample_weight_is_a_chainrule_error(w, iris):
    X, y = iris
    with pytest.raises(cr.ChainruleError, match="sample_weight") as info:
        MLPClassifier(epochs=1).fit(X, y, sample_weight=w)
    assert isinstance(info.value, ValueError)


def test_early_stopping_stops_on_easy_data_at_scikit_learns_tol():
    r = np.random.default_rng(0)
    X = r.normal(size=(200, 2))
    y = (X[:, 0] > 0).astype(int)
    X[:, 0] += np.where(y == 1, 3.0, -3.0)  # far apart: the validation loss creeps to 0
    clf = MLPClassifier((8,), early_stopping=True, epochs=3000, random_state=0).fit(X, y)
    assert clf.tol == 1e-4 and clf.n_iter_ < 1000
    assert clf.history_.stopped_early
    # tol=0: any fall counts, and the validation loss keeps falling by tiny amounts
    strict = MLPClassifier((8,), early_stopping=True, epochs=1000, tol=0.0, random_state=0)
    assert strict.fit(X, y).n_iter_ > clf.n_iter_


def test_the_validation_split_is_stratified(iris, monkeypatch):
    X, y = iris
    X, y = X[:110], y[:110]  # 50, 50 and 10 rows of the three classes
    seen = {}

    def spy(model, loss, X, Y, **kwargs):
        seen.update(train=np.bincount(Y, minlength=3),
                    val=np.bincount(kwargs["validation_data"][1], minlength=3))
        return cr.History()

    monkeypatch.setattr("chainrule.sklearn.fit", spy)
    MLPClassifier(early_stopping=True, validation_fraction=0.2, random_state=0).fit(X, y)
    assert seen["val"].tolist() == [10, 10, 2] and seen["train"].tolist() == [40, 40, 8]


def test_a_class_too_small_to_split_raises_scikit_learns_error(iris):
    X, y = iris
    X, y = X[:101], y[:101]  # one row of class 2
    with pytest.raises(ValueError, match="least populated class.* only 1 member, which is too few"):
        MLPClassifier(early_stopping=True).fit(X, y)
    MLPClassifier(epochs=1).fit(X, y)  # without early stopping, it trains


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_float32_and_float64_data_start_from_the_same_network(Estimator, iris, monkeypatch):
    X, y = iris
    starts = []
    monkeypatch.setattr("chainrule.sklearn.fit",
                        lambda model, *a, **k: (starts.append(weights(model)), cr.History())[1])
    Estimator((8,), random_state=0).fit(X.astype(np.float32), y)
    Estimator((8,), random_state=0).fit(X, y)
    for w32, w64 in zip(*starts, strict=True):
        assert w32.dtype == np.float32 and w64.dtype == np.float64
        np.testing.assert_array_equal(w32, w64.astype(np.float32))
    monkeypatch.undo()
    params = dict(hidden_layer_sizes=(8,), epochs=5, random_state=0)
    a = Estimator(**params).fit(X.astype(np.float32), y)
    b = Estimator(**params).fit(X, y)
    if Estimator is MLPClassifier:
        np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-4)
        assert np.mean(a.predict(X) == b.predict(X)) >= 0.99
    else:
        np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_divergence_is_also_a_value_error(Estimator, iris):
    from chainrule.sklearn import EstimatorDivergenceError
    X, y = iris
    est = Estimator((8,), optimizer="sgd", learning_rate=1e30, epochs=5, random_state=0)
    with pytest.raises(ValueError, match=r"diverged at epoch \d+, step \d+") as info:
        est.fit(X * 1e10, y)
    assert isinstance(info.value, EstimatorDivergenceError)
    assert isinstance(info.value, cr.DivergenceError)
    assert all(np.isfinite(p.data).all() for p in est.model_.parameters())


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_a_memmap_trains_as_the_array_in_memory(Estimator, iris, tmp_path):
    X, y = iris
    mm = np.memmap(tmp_path / "X", dtype=np.float64, mode="w+", shape=X.shape)
    mm[:] = X
    params = dict(hidden_layer_sizes=(8,), epochs=3, random_state=0)
    disk = Estimator(**params).fit(mm, y)
    memory = Estimator(**params).fit(X, y)
    assert disk.n_features_in_ == 4
    assert np.array_equal(disk.predict(mm), memory.predict(X))
    with pytest.raises(ValueError, match="X has 3 features"):
        disk.predict(np.memmap(tmp_path / "X", dtype=np.float64, mode="r", shape=(150, 3)))


def test_a_dask_array_is_read_a_chunk_at_a_time_by_fit_and_predict(iris):
    da = pytest.importorskip("dask.array")
    X, y = iris
    Xd = da.from_array(X, chunks=(50, 4))
    params = dict(hidden_layer_sizes=(8,), epochs=3, random_state=0)
    lazy = MLPClassifier(**params).fit(Xd, y)
    assert np.array_equal(lazy.predict(Xd), MLPClassifier(**params).fit(X, y).predict(X))


@pytest.mark.parametrize("v", [1e-300, 1e39, 1e200])
def test_uniform_sample_weights_of_any_size_are_no_weights(v):
    rs = np.random.RandomState(0)
    X, y = rs.randn(50, 3).astype(np.float32), rs.randn(50).astype(np.float32)
    a = MLPRegressor((8,), epochs=2, random_state=0).fit(X, y)
    b = MLPRegressor((8,), epochs=2, random_state=0).fit(X, y, sample_weight=np.full(50, v))
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def _multilabel_data():
    rs = np.random.RandomState(0)
    X = rs.randn(120, 5)
    y = (X[:, 0] > 0).astype(int)
    return X, np.c_[y, 1 - y, X[:, 1] > 0].astype(int)


@pytest.mark.parametrize("classes", [None, [0, 1], np.array([0, 1]), [0, 1, 2]])
def test_multilabel_partial_fit_accepts_the_label_values_as_classes(classes):
    X, Y = _multilabel_data()
    clf = MLPClassifier((8,), random_state=0).partial_fit(X, Y, classes=classes)
    clf.partial_fit(X, Y, classes=np.unique(Y))
    assert clf.predict(X).shape == (120, 3)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])


def test_multilabel_partial_fit_refuses_other_classes():
    X, Y = _multilabel_data()
    with pytest.raises(ValueError, match=r"expected classes=None, \[0, 1\] \(the values of a "
                       r"multilabel y\) or range\(3\) \(its labels\) for a multilabel y of 3 "
                       r"columns, got classes=\['a', 'b'\]"):
        MLPClassifier().partial_fit(X, Y, classes=["a", "b"])
    with pytest.raises(ValueError, match=r"expected a multilabel y of 3 columns, got array "
                       r"of shape \(120, 2\)"):
        MLPClassifier().partial_fit(X, Y, classes=[0, 1]).partial_fit(X, Y[:, :2])


def test_a_sparse_multilabel_y_trains_as_the_dense_one():
    import warnings

    sparse = pytest.importorskip("scipy.sparse")
    X, Y = _multilabel_data()
    dense = MLPClassifier((8,), epochs=3, random_state=0).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for S in (sparse.csr_matrix(Y), sparse.csc_array(Y)):
            clf = MLPClassifier((8,), epochs=3, random_state=0).fit(X, S)
            np.testing.assert_array_equal(clf.predict_proba(X), dense.predict_proba(X))
            part = MLPClassifier((8,), random_state=0).partial_fit(X, S, classes=[0, 1])
            assert part.predict(X).shape == (120, 3)
