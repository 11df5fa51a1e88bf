"""Data set loaders: bundled scikit-learn data and CSV files."""

import builtins
import warnings

import numpy as np
import pytest

from chainrule import ChainruleError, datasets

pytest.importorskip("sklearn")


@pytest.mark.parametrize("name, n_features, task, n_classes", [
    ("digits", 64, "classification", 10), ("iris", 4, "classification", 3),
    ("wine", 13, "classification", 3), ("breast_cancer", 30, "classification", 2),
    ("diabetes", 10, "regression", 0),
])
def test_bundled_data_sets_are_float32_standardised_splits(name, n_features, task, n_classes):
    d = datasets.load(name)
    assert d.task == task and len(d.classes) == n_classes
    assert d.X_train.dtype == d.X_test.dtype == np.float32
    assert d.X_train.shape[1] == d.X_test.shape[1] == n_features
    assert 0.15 < len(d.X_test) / (len(d.X_train) + len(d.X_test)) < 0.25
    np.testing.assert_allclose(d.X_train.mean(axis=0), 0, atol=1e-4)
    if task == "classification":  # stratified: every class in both splits
        assert set(d.y_train) == set(d.y_test) == set(range(n_classes))


def test_same_seed_same_split_other_seed_other_split():
    a, b, c = datasets.load("iris", rng=0), datasets.load("iris", rng=0), datasets.load("iris",
                                                                                     rng=1)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.X_train, c.X_train)


def test_unknown_name():
    with pytest.raises(ChainruleError, match="digits"):
        datasets.load("mnist")


def test_missing_sklearn_names_the_install_command(monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ChainruleError, match=r"pip install 'chainrule\[sklearn\]'"):
        datasets.load("digits")


def test_csv_with_string_labels(tmp_path):
    path = tmp_path / "d.csv"
    rows = ["x1,x2,kind"] + [f"{i},{i % 3},{'ab'[i % 2]}" for i in range(20)]
    path.write_text("\n".join(rows) + "\n")
    d = datasets.load_csv(path, "kind")
    assert d.task == "classification" and d.classes == ["a", "b"]
    assert d.feature_names == ["x1", "x2"]
    assert len(d.y_train) + len(d.y_test) == 20


def test_csv_regression_is_guessed_from_float_labels(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,y\n" + "".join(f"{i},{i * 0.37}\n" for i in range(30)))
    d = datasets.load_csv(path, "y")
    assert d.task == "regression" and d.y_train.dtype == np.float32


@pytest.mark.parametrize("text, label, match", [
    ("a,b\n1,2\n", "c", "no label column 'c'"),
    ("a,b\n1,x\n2,3\n", "a", "expected numeric features, got 'x'"),
    ("a,b\n1,2,3\n", "b", "expected 2 columns, got 3"),
    ("a,b\n", "b", "at least one data row"),
    ("a,b\n1,nan\n2,3\n", "a", "finite"),
    ("a,b\n1,1e39\n2,3\n", "a", "beyond"),
    ("a,b\n1,inf\n2,1\n3,0\n", "b", "finite numeric labels in column 'b', got 'inf'"),
    ("a,b\n1,nan\n2,1\n3,0\n", "b", "finite numeric labels"),
    (",".join(f"c{i}" for i in range(100_000)) + "\n" + ",".join(["1"] * 100_000) + "\n",
     "y", r"\.\.\. \(100000 columns\)$"),
])
def test_bad_csv_files(tmp_path, text, label, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflowing value is an error, not a warning too
        with pytest.raises(ChainruleError, match=match) as e:
            datasets.load_csv(path, label)
    assert len(str(e.value)) < 600


def test_missing_csv():
    with pytest.raises(ChainruleError, match="cannot read"):
        datasets.load_csv("/nonexistent/file.csv", "y")


def test_read_csv_drops_a_byte_order_mark(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfa,b,y\r\n1,2,x\r\n3,4,z\r\n")
    X, labels, names = datasets.read_csv(path, "y")
    assert names == ["a", "b"] and labels == ["x", "z"]
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
