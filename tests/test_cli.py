"""The `kerasdl` command: listing, training, evaluating, and one clear line for each user mistake."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kerasdl.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse exits on --help and on bad flags
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json_has_models_and_data_sets(capsys):
    code, out, _ = run_cli(capsys, "list", "--json")
    listing = json.loads(out)
    mlp = next(m for m in listing["models"] if m["name"] == "mlp")
    assert {"name", "family", "task", "default_data", "lesson"} <= set(mlp)
    assert mlp["default_data"] == "digits"
    assert {d["name"] for d in listing["datasets"]} >= {"digits", "mnist"}
    assert code == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (("train", "resnet"), "kerasdl train: error: unknown model 'resnet'; known:"),
        (("train", "mlp", "--epochs", "0"), "argument --epochs: expected a positive integer, got 0"),
        (("train", "mlp", "--batch-size", "many"), "argument --batch-size: expected a positive integer, got 'many'"),
        (
            ("train", "mlp", "--data", "imagenet"),
            "unknown data set 'imagenet'; known: cats-vs-dogs, cifar10, daily-min-temperatures, diabetes, digits, ",
        ),
        (("evaluate", "no/such/run"), "kerasdl evaluate: error: run directory no/such/run does not exist"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
    ],
)
def test_user_mistakes_print_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_train_then_evaluate(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "train", "mlp", "--epochs", "2", "--out", str(tmp_path / "run"), "--quiet")
    assert code == 0
    assert "mlp on digits (fit loop, 2 epochs): test accuracy 0." in out
    code, out, _ = run_cli(capsys, "evaluate", str(tmp_path / "run"))
    assert code == 0 and "test accuracy 0." in out
    assert json.loads((tmp_path / "run" / "evaluation_digits.json").read_text())["test_samples"] == 360


def test_evaluate_on_data_of_another_shape_is_a_clear_error(capsys, digits_runs):
    code, _, err = run_cli(capsys, "evaluate", str(digits_runs["fit"].run.path), "--data", "mnist")
    assert code == 2
    assert "model expects inputs of shape (8, 8, 1) but data set 'mnist' gives (28, 28, 1)" in err


def test_evaluate_a_folder_that_is_not_a_run(capsys, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", str(tmp_path))
    assert code == 2 and "has no model.keras" in err


def test_python_dash_m_works_and_help_does_not_import_tensorflow():
    probe = "import sys, runpy; sys.argv = ['kerasdl', '--help']\ntry: runpy.run_module('kerasdl', run_name='__main__')\nexcept SystemExit: pass\nprint('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "usage: kerasdl" in out and out.strip().endswith("False")
    out = subprocess.run([sys.executable, "-m", "kerasdl", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("kerasdl ")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (("word2vec",), {"optimizer": "sgd", "learning_rate": 100.0, "batch_size": 1024, "epochs": 8}),
        (("word2vec", "--optimizer", "adam", "--epochs", "2"), {"optimizer": "adam", "learning_rate": 100.0, "epochs": 2}),
        (("mlp",), {"optimizer": "adam", "learning_rate": 1e-3, "batch_size": 64, "epochs": 10}),
    ],
)
def test_a_models_own_training_defaults_apply_unless_a_flag_is_given(capsys, monkeypatch, argv, expected):
    """word2vec trains with SGD at a large rate on big batches (registry `train_defaults`); flags still win."""
    import kerasdl.training

    seen = {}

    def capture(config, **kwargs):
        seen.update(config.to_json())
        raise KeyboardInterrupt  # stop before any training

    monkeypatch.setattr(kerasdl.training, "train", capture)
    code, _, _ = run_cli(capsys, "train", *argv)
    assert code == 130 and {key: seen[key] for key in expected} == expected
