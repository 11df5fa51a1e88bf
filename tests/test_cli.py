"""The command line: train, evaluate and predict round trips, help, bad arguments, and bad
files (CSV and model), each exit status 2 with one short line."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from chainrule.cli import main  # noqa: E402
from chainrule.errors import ChainruleError  # noqa: E402


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@pytest.fixture
def iris_csv(tmp_path):
    from sklearn.datasets import load_iris
    d = load_iris()
    names = [n.replace(" (cm)", "").replace(" ", "_") for n in d.feature_names]
    write_csv(tmp_path / "iris.csv", names + ["species"],
              [list(x) + [d.target_names[t]] for x, t in zip(d.data, d.target)])
    write_csv(tmp_path / "new.csv", names, [list(x) for x in d.data[::50]])
    return tmp_path


def test_train_defaults_digits_reaches_95_percent(capsys):
    assert main(["train", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("test accuracy: ")
    assert float(out.split(":")[1]) >= 0.95


def test_train_evaluate_predict_round_trip_on_a_bundled_data_set(tmp_path, capsys):
    model = str(tmp_path / "wine.safetensors")
    assert main(["train", "--data", "wine", "--epochs", "40", "--hidden", "16", "--save", model,
                 "--no-progress", "--seed", "1"]) == 0
    trained = capsys.readouterr().out
    assert main(["evaluate", model]) == 0
    assert capsys.readouterr().out == trained  # same test split, same model


def test_train_evaluate_predict_round_trip_on_a_csv(iris_csv, capsys):
    model = str(iris_csv / "iris.safetensors")
    assert main(["train", "--data", str(iris_csv / "iris.csv"), "--label", "species",
                 "--epochs", "200", "--batch-size", "16", "--lr", "0.01", "--save", model,
                 "--no-progress"]) == 0
    accuracy = float(capsys.readouterr().out.split(":")[1])
    assert accuracy >= 0.85
    assert main(["evaluate", model, str(iris_csv / "iris.csv")]) == 0
    assert float(capsys.readouterr().out.split(":")[1]) >= 0.85
    assert main(["predict", model, str(iris_csv / "new.csv")]) == 0
    lines = capsys.readouterr().out.split()
    assert lines == ["prediction", "setosa", "versicolor", "virginica"]
    out = iris_csv / "pred.csv"
    assert main(["predict", model, str(iris_csv / "new.csv"), "--output", str(out)]) == 0
    assert out.read_text().split() == lines


def test_regression_prints_r2_and_mse(capsys):
    assert main(["train", "--data", "diabetes", "--epochs", "30", "--hidden", "16",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("test R²: ") and out[1].startswith("test MSE: ")
    assert float(out[0].split(":")[1]) > 0.2


@pytest.mark.parametrize("schedule", ["step", "exponential", "inverse_time", "cosine"])
def test_every_option_of_fit_is_a_flag(schedule, capsys):
    args = ["train", "--data", "iris", "--epochs", "3", "--hidden", "8", "8", "--batch-norm",
            "--dropout", "0.1", "--weight-decay", "1e-4", "--input-noise", "0.05",
            "--clip-grad-norm", "5", "--early-stopping", "2", "--optimizer", "momentum",
            "--schedule", schedule, "--activation", "tanh", "--init", "xavier",
            "--batch-size", "full", "--dtype", "float64", "--no-progress"]
    assert main(args) == 0
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--hidden", "-3"], "--hidden"),
    (["train", "--optimizer", "lbfgs"], "--optimizer"),
    (["train", "--dropout", "1.5"], "--dropout"),
    (["train", "--bogus"], "unrecognized"),
    (["train", "--seed", "-1"], "--seed"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize("argv", [
    ["train", "--data", "no_such.csv"],
    ["evaluate", "no_such.safetensors"],
])
def test_missing_files_exit_2_with_one_line(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no_such" in err


def test_a_hostile_model_file_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x80\x04\x95 not a model")
    assert main(["evaluate", str(path)]) == 2
    assert "bad.safetensors" in capsys.readouterr().err


def test_wrong_columns_for_predict(iris_csv, tmp_path, capsys):
    model = str(tmp_path / "m.safetensors")
    assert main(["train", "--data", str(iris_csv / "iris.csv"), "--epochs", "1",
                 "--save", model, "--no-progress"]) == 0
    write_csv(tmp_path / "other.csv", ["a", "b"], [[1, 2]])
    capsys.readouterr()
    assert main(["predict", model, str(tmp_path / "other.csv")]) == 2
    assert "expected feature columns" in capsys.readouterr().err


def test_python_dash_m_and_help():
    out = subprocess.run([sys.executable, "-m", "chainrule", "train", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for flag in ("--data", "--hidden", "--optimizer", "--lr", "--schedule", "--epochs",
                 "--batch-size", "--dropout", "--batch-norm", "--weight-decay", "--input-noise",
                 "--early-stopping", "--seed", "--save", "--report"):
        assert flag in out


def test_predict_skips_the_label_column_of_a_labelled_file(iris_csv, tmp_path, capsys):
    model = str(tmp_path / "m.safetensors")
    assert main(["train", "--data", str(iris_csv / "iris.csv"), "--label", "species",
                 "--epochs", "2", "--save", model, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["predict", model, str(iris_csv / "iris.csv")]) == 0
    assert len(capsys.readouterr().out.split()) == 1 + 150


def test_output_folders_are_checked_before_training(tmp_path, capsys):
    for flag in ("--save", "--report", "--checkpoint"):
        assert main(["train", "--data", "iris", flag, str(tmp_path / "no" / "x"),
                     "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "does not exist" in err and flag in err


def test_checkpoint_no_shuffle_and_min_delta_flags(tmp_path, capsys):
    import chainrule as cr
    path = tmp_path / "run.safetensors"
    assert main(["train", "--data", "iris", "--epochs", "3", "--checkpoint", str(path),
                 "--no-shuffle", "--early-stopping", "2", "--min-delta", "0.01",
                 "--no-progress"]) == 0
    assert isinstance(cr.load(path), cr.Sequential)


def test_a_sigmoid_output_of_one_half_predicts_the_first_class(iris_csv, tmp_path, capsys):
    # The command line decodes as the estimators do: the most probable class, ties to the
    # first, so P(class 1) = 0.5 exactly (a zero output layer) is class 0.
    from chainrule.serialization import load_checkpoint, save_checkpoint
    with open(iris_csv / "iris.csv", newline="") as f:
        rows = list(csv.reader(f))
    write_csv(tmp_path / "two.csv", rows[0], [r for r in rows[1:] if r[-1] != "virginica"])
    model = str(tmp_path / "m.safetensors")
    assert main(["train", "--data", str(tmp_path / "two.csv"), "--epochs", "1",
                 "--save", model, "--no-progress"]) == 0
    network, _, meta, tensors = load_checkpoint(model)
    assert type(network.modules[-1]).__name__ == "Sigmoid"
    network.modules[-2].W.data[...] = 0.0
    network.modules[-2].W0.data[...] = 0.0
    save_checkpoint(model, network, None, meta, tensors)
    capsys.readouterr()
    assert main(["predict", model, str(iris_csv / "new.csv")]) == 0
    assert capsys.readouterr().out.split() == ["prediction"] + [meta["cli"]["classes"][0]] * 3


# -- hostile input: every bad CSV and forged model file is exit 2 with one bounded line ------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``(folder, model path)``: iris.csv with its model from 'train --save' (one epoch)."""
    from sklearn.datasets import load_iris
    folder = tmp_path_factory.mktemp("trained")
    d = load_iris()
    names = [n.replace(" (cm)", "").replace(" ", "_") for n in d.feature_names]
    write_csv(folder / "iris.csv", names + ["species"],
              [list(x) + [d.target_names[t]] for x, t in zip(d.data, d.target)])
    model = folder / "iris.safetensors"
    assert main(["train", "--data", str(folder / "iris.csv"), "--epochs", "1", "--hidden", "4",
                 "--save", str(model), "--no-progress"]) == 0
    return folder, model


def one_line_error(argv, capsys, name) -> str:
    """Run the command; it must exit 2 with one line on stderr that names ``name``, at most
    a few hundred characters long, with no warning and no traceback before it."""
    import warnings
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("chainrule: error: ") and err.count("\n") == 1, err[:2000]
    assert len(err) <= 600 and str(name) in err, err
    assert caught == [], [str(w.message) for w in caught]
    return err


# name -> what the message for train says
BAD_CSVS = {"latin-1": "UTF-8", "binary": "binary", "overflow": "float32",
            "huge-digits": "float32", "inf-label": "label column", "nan-label": "label column",
            "overflowing-label": "label column", "unclosed-quote": "columns",
            "stray-carriage-return": "columns"}
IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def bad_csv(name, features=("a", "b"), label="y") -> bytes:
    """A CSV with the columns ``features`` and ``label`` and the defect ``name``."""
    if name == "binary":
        return bytes(range(256)) * 4
    rest = ",1" * (len(features) - 1)  # the other features' values
    rows = {
        "latin-1": [f"1{rest},caf\xe9", f"3{rest},x"],
        "overflow": [f"1{rest},x", f"1e39{rest},z"],
        "huge-digits": [f"1{rest},x", "9" * 50 + f"{rest},z"],
        "inf-label": [f"1{rest},0", f"3{rest},inf", f"5{rest},1", f"7{rest},0"],
        "nan-label": [f"1{rest},0", f"3{rest},nan", f"5{rest},1", f"7{rest},0"],
        "overflowing-label": [f"1{rest},0", f"3{rest},1e39", f"5{rest},1", f"7{rest},0"],
        "unclosed-quote": [f'"1{rest},x', f"2{rest},y"],
        "stray-carriage-return": [f"1{rest},x", f"1e39{rest}\rz,q"],
    }[name]
    text = "\n".join([",".join([*features, label]), *rows]) + "\n"
    return text.encode("latin-1" if name == "latin-1" else "utf-8")


@pytest.mark.parametrize("name", sorted(BAD_CSVS))
def test_a_bad_csv_for_train_exits_2_with_one_line(tmp_path, capsys, name):
    path = tmp_path / f"{name}.csv"
    path.write_bytes(bad_csv(name))
    err = one_line_error(["train", "--data", str(path), "--epochs", "1", "--no-progress"],
                         capsys, path)
    assert BAD_CSVS[name] in err


@pytest.mark.parametrize("name", sorted(BAD_CSVS))
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_bad_csv_for_predict_and_evaluate_exits_2_with_one_line(trained, tmp_path, capsys,
                                                                  command, name):
    if command == "predict" and name.endswith("-label"):
        pytest.skip("predict reads no labels")
    path = tmp_path / f"{name}.csv"  # the model's own columns, so the defect is what is met
    path.write_bytes(bad_csv(name, IRIS_FEATURES, "species"))
    one_line_error([command, str(trained[1]), str(path)], capsys, path)


def test_a_csv_of_100000_columns_gets_a_short_message(trained, tmp_path, capsys):
    path = tmp_path / "wide.csv"
    header = [f"column_{i}" for i in range(100_000)]
    write_csv(path, header, [[1.0] * 100_000])
    one_line_error(["predict", str(trained[1]), str(path)], capsys, path)
    one_line_error(["train", "--data", str(path), "--label", "nope", "--no-progress"], capsys,
                   path)


@pytest.mark.parametrize("special", ["folder", "fifo"])
def test_a_special_file_as_csv_exits_2_without_waiting(trained, tmp_path, capsys, special):
    import threading
    path = tmp_path / "data.csv"
    if special == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("needs named pipes")
        os.mkfifo(path)
    else:
        path.mkdir()
    for argv in (["predict", str(trained[1]), str(path)],
                 ["train", "--data", str(path), "--no-progress"]):
        done = []
        worker = threading.Thread(target=lambda a=argv, d=done: d.append(main(a)), daemon=True)
        worker.start()
        worker.join(5)
        if worker.is_alive():  # the code before the fix: release it, then fail
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            pytest.fail(f"{argv[0]} waited on a {special}")
        assert done == [2]
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err


def _forge(model_path, out, change):
    """Copy the model file from 'train --save' to ``out`` with ``change(cli, tensors)``."""
    from chainrule.serialization import load_checkpoint, save_checkpoint
    network, _, meta, tensors = load_checkpoint(model_path)
    change(meta["cli"], tensors)
    if "__meta__" in tensors:
        meta = tensors.pop("__meta__")
    save_checkpoint(out, network, None, meta, tensors)


def _set(key, value):
    return lambda cli, t: cli.__setitem__(key, value)


FORGED_CLI = [
    ("task-unknown", _set("task", "clustering"), "cli.task"),
    ("task-number", _set("task", 1), "cli.task"),
    ("task-regression", _set("task", "regression"), "cli.classes"),
    ("classes-empty", _set("classes", []), "cli.classes"),
    ("classes-short", _set("classes", ["a"]), "cli.classes"),
    ("classes-string", _set("classes", "abc"), "cli.classes"),
    ("classes-numbers", _set("classes", [1, 2, 3]), "cli.classes"),
    ("classes-many", _set("classes", [str(i) for i in range(10_000)]), "cli.classes"),
    ("classes-repeated", _set("classes", ["setosa"] * 3), "cli.classes"),
    ("classes-line-break", _set("classes", ["setosa", "x\nINJECTED", "virginica"]),
     "cli.classes"),
    ("classes-carriage-return", _set("classes", ["setosa", "x\r", "virginica"]), "cli.classes"),
    ("features-empty", _set("features", []), "cli.features"),
    ("features-short", _set("features", ["a", "b"]), "cli.features"),
    ("features-string", _set("features", "abcd"), "cli.features"),
    ("features-numbers", _set("features", [1, 2, 3, 4]), "cli.features"),
    ("data-number", _set("data", 1), "cli.data"),
    ("label-number", _set("label", 5), "cli.label"),
    ("seed-negative", _set("seed", -1), "cli.seed"),
    ("seed-string", _set("seed", "x"), "cli.seed"),
    ("test-size-two", _set("test_size", 2), "cli.test_size"),
    ("test-size-string", _set("test_size", "x"), "cli.test_size"),
    ("y-scale-string", _set("y_scale", "x"), "cli.y_scale"),
    ("y-scale-short", _set("y_scale", [1]), "cli.y_scale"),
    ("y-scale-zero", _set("y_scale", [0, 0]), "cli.y_scale"),
    ("y-scale-nan", _set("y_scale", [float("nan"), 1]), "cli.y_scale"),
    ("y-scale-huge", _set("y_scale", [0, 1e308]), "cli.y_scale"),
    ("missing-key", lambda cli, t: cli.pop("features"), "metadata 'cli'"),
    ("extra-key", _set("code", "x"), "metadata 'cli'"),
    ("cli-not-object", lambda cli, t: t.update(__meta__={"cli": [1, 2]}), "train --save"),
    ("no-cli", lambda cli, t: t.update(__meta__={}), "train --save"),
    ("mean-wrong-shape", lambda cli, t: t.update(mean=np.zeros(3, np.float32)), "extra.mean"),
    ("std-zero", lambda cli, t: t.update(std=np.zeros(4, np.float32)), "extra.std"),
    ("std-integer", lambda cli, t: t.update(std=np.ones(4, np.int32)), "extra.std"),
    ("extra-tensor", lambda cli, t: t.update(x=np.ones(4, np.float32)), "tensors"),
    ("no-std", lambda cli, t: t.pop("std"), "tensors"),
]


@pytest.mark.parametrize("change, field", [c[1:] for c in FORGED_CLI],
                         ids=[c[0] for c in FORGED_CLI])
def test_forged_cli_metadata_exits_2_with_one_line(trained, tmp_path, capsys, change, field):
    folder, model = trained
    forged = tmp_path / "forged.safetensors"
    _forge(model, forged, change)
    for argv in (["predict", str(forged), str(folder / "iris.csv")],
                 ["evaluate", str(forged), str(folder / "iris.csv")],
                 ["evaluate", str(forged)]):
        err = one_line_error(argv, capsys, forged)
        assert field in err, err


@pytest.mark.parametrize("data, fragment", [("/dev/zero", "special file"),
                                            ("digits", "features and classes")])
def test_forged_training_data_of_a_model_file_exits_2(trained, tmp_path, capsys, data,
                                                      fragment):
    if not os.path.exists("/dev/zero") and data == "/dev/zero":
        pytest.skip("needs /dev/zero")
    forged = tmp_path / "forged.safetensors"
    _forge(trained[1], forged, _set("data", data))
    err = one_line_error(["evaluate", str(forged)], capsys, data if "/" in data else forged)
    assert fragment in err


@pytest.mark.skipif(sys.platform == "win32", reason="resource limits")
def test_a_failed_write_names_the_file(trained, tmp_path):
    folder, model = trained
    out = tmp_path / "predictions.csv"
    script = ("import resource, signal, sys\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))\n"
              "from chainrule.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    result = subprocess.run([sys.executable, "-c", script, "predict", str(model),
                             str(folder / "iris.csv"), "--output", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and str(out) in result.stderr, result.stderr
    assert "File too large" in result.stderr and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # nor a temporary file


@pytest.mark.parametrize("change", [_set("features", ["a"]), _set("y_scale", [0, 0]),
                                    lambda cli, t: t.update(__meta__={"cli": [1, "a"]})],
                         ids=["features", "y-scale", "cli-a-list"])
def test_forged_cli_metadata_is_refused_by_export_too(trained, tmp_path, capsys, change):
    pytest.importorskip("onnx")
    forged = tmp_path / "forged.safetensors"
    _forge(trained[1], forged, change)
    one_line_error(["export", str(forged), "--onnx", str(tmp_path / "m.onnx")], capsys, forged)
    assert not (tmp_path / "m.onnx").exists()


def test_a_feature_scaling_that_overflows_exits_2(trained, tmp_path, capsys):
    folder, model = trained
    forged = tmp_path / "forged.safetensors"
    _forge(model, forged, lambda cli, t: t.update(std=np.full(4, 1e-45, np.float32)))
    for command in ("predict", "evaluate"):
        err = one_line_error([command, str(forged), str(folder / "iris.csv")], capsys, forged)
        assert "feature scaling" in err


def _trained_weights(tmp_path, name, *flags):
    """The weights ``train`` saves on iris with ``flags``, and the model."""
    import chainrule as cr
    path = tmp_path / f"{name}.safetensors"
    assert main(["train", "--data", "iris", "--epochs", "2", "--hidden", "8",
                 "--batch-size", "16", "--save", str(path), "--no-progress", *flags]) == 0
    model = cr.load(path)
    return [p.data.copy() for p in model.parameters()], model


def test_sampling_flag_reaches_fit(tmp_path, capsys):
    """--sampling is fit's sampling=: "epochs" is the default run bit for bit, "replacement"
    draws other batches from the same seed; another value exits 2."""
    default, _ = _trained_weights(tmp_path, "default")
    epochs, _ = _trained_weights(tmp_path, "epochs", "--sampling", "epochs")
    replacement, _ = _trained_weights(tmp_path, "replacement", "--sampling", "replacement")
    assert all(np.array_equal(a, b) for a, b in zip(default, epochs, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(default, replacement, strict=True))
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["train", "--sampling", "bootstrap"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--sampling" in err and "'bootstrap'" in err


def test_the_notes_dropout_and_batch_norm_convention_flags(tmp_path, capsys):
    """--dropout-scaling and --batch-norm-eps-inside build the hidden Dropout and BatchNorm
    with the notes' conventions; their defaults train the default run bit for bit."""
    import chainrule as cr
    net = ["--dropout", "0.2", "--batch-norm"]
    default, _ = _trained_weights(tmp_path, "default", *net)
    same, _ = _trained_weights(tmp_path, "same", *net, "--dropout-scaling", "inverted",
                               "--batch-norm-eps-inside", "variance")
    assert all(np.array_equal(a, b) for a, b in zip(default, same, strict=True))
    notes, model = _trained_weights(tmp_path, "notes", *net, "--dropout-scaling", "notes",
                                    "--batch-norm-eps-inside", "std")
    assert [m.scaling for m in model.modules if isinstance(m, cr.Dropout)] == ["notes"]
    assert [m.eps_inside for m in model.modules if isinstance(m, cr.BatchNorm)] == ["std"]
    assert not all(np.array_equal(a, b) for a, b in zip(default, notes, strict=True))
    capsys.readouterr()
    for argv, message in ((["--dropout-scaling", "notes"], "expected --dropout P with P > 0"),
                          (["--batch-norm-eps-inside", "std"], "expected --batch-norm")):
        assert main(["train", "--data", "iris", "--no-progress", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    for flag in ("--dropout-scaling", "--batch-norm-eps-inside"):
        with pytest.raises(SystemExit) as info:
            main(["train", flag, "both"])
        assert info.value.code == 2 and flag in capsys.readouterr().err


@pytest.mark.parametrize("line", ["e39," * 400_000 + "x", "1" * 4_000_000 + ",2,x"],
                         ids=["many-exponents", "one-long-number"])
def test_the_range_check_of_a_csv_is_linear_in_its_size(line):
    """A line with many candidates for a value beyond float32 is read once, not once per
    candidate (the old search went back to the line's start for each: seconds for 2 MB)."""
    import time

    from chainrule.cli import _check_range
    text = "a,b,label\n" + "1,2,x\n" * 1000 + line + "\n" + "1,2,x\n" * 1000
    start = time.perf_counter()
    _check_range("big.csv", text, ["a", "b", "label"], 2)  # all inf or non-numbers: no error
    assert time.perf_counter() - start < 0.5
    with pytest.raises(ChainruleError, match=r"big.csv line 2004, column 'b'"):
        _check_range("big.csv", text + "1,2,x\n1,1e39,x\n", ["a", "b", "label"], 2)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("flag", ["--save", "--checkpoint", "--report"])
def test_a_fifo_to_write_exits_2_before_training(iris_csv, tmp_path, capsys, flag):
    import threading
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    argv = ["train", "--data", str(iris_csv / "iris.csv"), "--epochs", "1", "--no-progress",
            flag, str(fifo)]
    done = []
    worker = threading.Thread(target=lambda: done.append(main(argv)), daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():  # the code before the fix: release it, then fail
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        pytest.fail(f"train {flag} waited on a FIFO")
    assert done == [2]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{flag} {fifo}: expected a regular file" in err, err


@pytest.mark.parametrize("bom", [False, True], ids=["plain", "byte-order-mark"])
def test_train_save_predict_with_and_without_a_byte_order_mark(iris_csv, tmp_path, capsys,
                                                               bom):
    """Excel's "CSV UTF-8" starts with a BOM: it is no part of the first column's name."""
    mark = b"\xef\xbb\xbf" if bom else b""
    for name in ("iris.csv", "new.csv"):
        (tmp_path / f"m-{name}").write_bytes(mark + (iris_csv / name).read_bytes())
    model = tmp_path / "m.safetensors"
    assert main(["train", "--data", str(tmp_path / "m-iris.csv"), "--epochs", "1",
                 "--hidden", "4", "--save", str(model), "--no-progress"]) == 0
    from chainrule.serialization import load_checkpoint
    features = load_checkpoint(model)[2]["cli"]["features"]
    assert features[0] == "sepal_length", features
    capsys.readouterr()
    assert main(["predict", str(model), str(tmp_path / "m-new.csv")]) == 0
    assert capsys.readouterr().out.count("\n") == 4  # header and 3 rows
    assert main(["evaluate", str(model), str(tmp_path / "m-iris.csv")]) == 0


@pytest.mark.parametrize("label", ["x\ny", "x\ry", "tab\there", "x\u2028y"])
def test_a_class_name_with_a_control_character_exits_2_at_train_time(tmp_path, capsys, label):
    """predict writes one class name per line: a line break in one would shift every row."""
    path = tmp_path / "labels.csv"
    rows = [[i, i % 3, label if i % 2 else "plain"] for i in range(20)]
    write_csv(path, ["a", "b", "y"], rows)
    err = one_line_error(["train", "--data", str(path), "--epochs", "1", "--no-progress"],
                         capsys, path)
    assert "control characters" in err


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's VmHWM")
@pytest.mark.parametrize("task", ["regression", "one-class"])
def test_a_csv_of_100000_columns_and_3_rows_is_refused_within_200_mb(tmp_path, task):
    """Too few rows for the validation split (or one class): said before a network of 100,000
    inputs is built (the code before built one, 300 MB, for fit to refuse the split)."""
    path = tmp_path / "wide.csv"
    labels = [0.5, 1.5, 2.5] if task == "regression" else [1, 1, 1]
    write_csv(path, [f"c{i}" for i in range(100_000)] + ["y"],
              [[1.0 + r] * 100_000 + [labels[r]] for r in range(3)])
    # The peak of this process alone: VmHWM (ru_maxrss would count the forked pytest too).
    script = ("import sys\n"
              "from chainrule.cli import main\n"
              "code = main(sys.argv[1:])\n"
              "status = open('/proc/self/status').read()\n"
              "print(status.split('VmHWM:')[1].split()[0], file=sys.stderr)\n"
              "sys.exit(code)\n")
    argv = ["train", "--data", str(path), "--no-progress"]
    if task == "regression":
        argv += ["--task", "regression"]
    result = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True,
                            text=True, timeout=120)
    *lines, peak = result.stderr.splitlines()
    assert int(peak) < 200 * 1024, f"peak {int(peak) // 1024} MB"
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("chainrule: error: ") and str(path) in lines[0], lines
    assert "validation" in lines[0] or "2 classes" in lines[0], lines


def test_a_csv_of_only_a_label_column_exits_2_saying_it_needs_features(tmp_path, capsys):
    path = tmp_path / "label-only.csv"
    write_csv(path, ["y"], [[i % 2] for i in range(20)])
    err = one_line_error(["train", "--data", str(path), "--no-progress"], capsys, path)
    assert "at least one feature column" in err, err
