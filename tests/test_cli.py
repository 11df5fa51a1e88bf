"""The command line: train, evaluate and predict round trips, help, and bad arguments."""

import csv
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")

from chainrule.cli import main  # noqa: E402


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
