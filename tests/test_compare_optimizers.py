"""Optimization options: the `kerasdl train` flags on both loops, and the optimizer comparison (library and script)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import keras
import pytest

from kerasdl.cli import build_parser, main
from kerasdl.commands.train import MODEL_FLAGS
from kerasdl.training import RunDirectory, TrainConfig
from kerasdl.tuning.compare import DEFAULT_LEARNING_RATES, compare_optimizers

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_optimizers.py"
FLAGS = ("--optimizer", "rmsprop", "--lr-schedule", "cosine", "--clipnorm", "1.0", "--patience", "2",
         "--dropout", "0.2", "--l1", "1e-5", "--l2", "1e-4", "--batch-norm")


@pytest.mark.parametrize("loop", ["fit", "tape"])
def test_train_flags_reach_the_config_and_the_model(loop, tmp_path, capsys):
    out = tmp_path / loop
    argv = ["train", "mlp", "--loop", loop, "--epochs", "2", "--no-jit", "--quiet", "--out", str(out), *FLAGS]
    assert main(argv) == 0
    assert "weighted avg" in capsys.readouterr().out  # the full report is printed
    config = RunDirectory(out).read_config()
    assert (config["optimizer"], config["lr_schedule"], config["clipnorm"], config["patience"]) == (
        "rmsprop", "cosine", 1.0, 2)
    assert config["model_params"] == {"dropout": 0.2, "l1": 1e-5, "l2": 1e-4, "batch_norm": True}
    assert config["jit_compile"] is False
    layers = {layer.name for layer in keras.saving.load_model(out / "model.keras").layers}
    assert {"hidden_1_bn", "hidden_1_dropout", "hidden_2_bn", "hidden_2_dropout"} <= layers
    assert RunDirectory(out).read_metrics()["test_accuracy"] > 0.5


def test_train_without_regularization_flags_leaves_the_builder_defaults():
    args = build_parser().parse_args(["train", "mlp"])
    assert all(getattr(args, flag) is None for flag in MODEL_FLAGS)  # nothing is passed to the builder


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--dropout", "1.5"), "argument --dropout: expected a rate in [0, 1), got 1.5"),
        (("--l2", "-1"), "argument --l2: expected a number >= 0, got -1.0"),
        (("--clipnorm", "0"), "argument --clipnorm: expected a positive number, got 0.0"),
        (("--optimizer", "adamw"), "train: error: unknown optimizer 'adamw'; known: sgd, momentum, rmsprop, adam"),
        (("--lr-schedule", "step"), "unknown lr-schedule 'step'; known: constant, cosine, exponential"),
    ],
)
def test_train_flag_mistakes_are_one_line(capsys, argv, message):
    try:
        code = main(["train", "mlp", *argv])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_compare_optimizers_then_the_script_reuses_the_runs(tmp_path, monkeypatch, capsys):
    comparison = compare_optimizers(TrainConfig("mlp", epochs=3, jit_compile=False), tmp_path)
    rows = {row["optimizer"]: row for row in comparison.rows}
    assert list(rows) == ["sgd", "momentum", "rmsprop", "adam"]
    assert {name: row["learning_rate"] for name, row in rows.items()} == DEFAULT_LEARNING_RATES
    # Same model, data and seed: only the optimizer differs, and every run spans every epoch.
    configs = [RunDirectory(tmp_path / name).read_config() for name in rows]
    assert all(len(RunDirectory(tmp_path / name).history_rows()) == 3 for name in rows)
    assert len({json.dumps({**c, "optimizer": None, "learning_rate": None, "versions": None}) for c in configs}) == 1
    # The lesson: momentum and adaptive steps get far in 3 epochs where plain SGD does not.
    faster = min(rows[name]["best_val_accuracy"] for name in ("momentum", "rmsprop", "adam"))
    assert faster > rows["sgd"]["best_val_accuracy"]
    assert comparison.plot.stat().st_size > 10_000
    assert json.loads((tmp_path / "optimizers.json").read_text()) == comparison.rows
    assert (tmp_path / "optimizers.csv").read_text().startswith("optimizer,learning_rate,best_val_accuracy")

    finished = {name: (tmp_path / name / "metrics.json").stat().st_mtime_ns for name in rows}
    monkeypatch.setattr(sys, "argv", ["compare_optimizers.py", "--epochs", "3", "--no-jit", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert exit_.value.code == 0
    assert finished == {name: (tmp_path / name / "metrics.json").stat().st_mtime_ns for name in rows}
    printed = capsys.readouterr().out
    assert printed.startswith("optimizer  learning_rate") and "validation_curves.png" in printed
