"""Keras Tuner over the registry: the four tuners on digits, results on disk, resuming, and every error path."""

from __future__ import annotations

import csv
import dataclasses
import json

import keras
import pytest

from kerasdl import registry
from kerasdl.cli import main
from kerasdl.errors import KerasdlError, RunDirError
from kerasdl.models.mlp import mlp_search_space
from kerasdl.training import TrainConfig
from kerasdl.tuning import TUNERS, tune

pytestmark = pytest.mark.filterwarnings("ignore:.*currentThread|getName:DeprecationWarning")  # inside Keras Tuner

# Small and fast: 2 epochs per trial, no XLA compilation (it costs more than the training here).
BASE = TrainConfig("mlp", epochs=2, jit_compile=False)


class CountTrials(keras.callbacks.Callback):
    """Counts trials that start training; raises KeyboardInterrupt (a Ctrl-C) when trial number `interrupt_at` starts.

    Keras Tuner deep-copies callbacks for every trial, so the count lives on the class.
    """

    started = 0

    def __init__(self, interrupt_at: int | None = None):
        super().__init__()
        self.interrupt_at = interrupt_at

    def on_train_begin(self, logs=None):
        CountTrials.started += 1
        if CountTrials.started == self.interrupt_at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("tuner", sorted(TUNERS))
def test_each_tuner_searches_and_retrains_the_best(tuner, tmp_path):
    result = tune(BASE, tuner, max_trials=2, out=tmp_path, verbose=0)
    scores = [row["val_accuracy"] for row in result.trials]
    assert 1 <= len(result.trials) <= 2 and {row["status"] for row in result.trials} == {"COMPLETED"}
    assert max(scores) >= min(scores) and result.best["score"] == max(scores)
    assert all(row["seconds"] > 0 for row in result.trials)
    # The table on disk, as printed: hyperparameters, score and seconds per trial.
    with (tmp_path / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {"trial", "units", "depth", "dropout", "l2", "learning_rate", "optimizer", "batch_size"} <= set(rows[0])
    assert json.loads((tmp_path / "trials.json").read_text()) == result.trials
    best = json.loads((tmp_path / "best_hyperparameters.json").read_text())
    assert best["config"]["optimizer"] == best["hyperparameters"]["optimizer"]
    assert len(best["config"]["model_params"]["hidden_units"]) == best["hyperparameters"]["depth"]
    # The best configuration, retrained into an ordinary run directory.
    assert result.best_run.read_config()["learning_rate"] == best["hyperparameters"]["learning_rate"]
    assert result.best_metrics["test_accuracy"] > 0.1 and (result.best_run.path / "model.keras").is_file()


def test_mlp_search_space_is_registered_and_defaults_to_the_curriculum_model():
    import keras_tuner

    space = registry.model_spec("mlp").search_space(keras_tuner.HyperParameters())
    assert space["model_params"] == {"hidden_units": [128, 64], "dropout": 0.0, "l2": 0.0}
    assert (space["optimizer"], space["learning_rate"], space["batch_size"]) == ("adam", 1e-3, 64)


def test_every_keras_model_is_searchable_and_has_a_two_trial_search_test():
    """Every registered model that trains with model.fit has a space, and one of the two files searches it."""
    from test_search_spaces_text import TINY as TEXT
    from test_search_spaces_vision import TINY as VISION

    keras_models = {spec.name for spec in registry.model_specs() if "fit" in spec.loops}
    assert all(registry.model_spec(name).search_space is not None for name in keras_models)
    assert sorted({*TEXT, *VISION}) == sorted(keras_models) and not set(TEXT) & set(VISION)
    assert len(keras_models) == 30  # the README says so


def test_interrupted_search_resumes_without_rerunning_finished_trials(tmp_path, capsys):
    CountTrials.started = 0
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C as trial 2 starts: trial 1 is done, trial 2 is not
        tune(BASE, "random", max_trials=2, out=tmp_path, callbacks=[CountTrials(interrupt_at=2)], verbose=0)
    first = json.loads((tmp_path / "search" / "trial_0" / "trial.json").read_text())
    assert first["status"] == "COMPLETED"

    CountTrials.started = 0
    result = tune(BASE, "random", max_trials=2, out=tmp_path, callbacks=[CountTrials()], verbose=0)
    assert CountTrials.started == 1  # only the interrupted trial ran again
    assert [row["status"] for row in result.trials] == ["COMPLETED", "COMPLETED"]
    assert result.trials[0]["val_accuracy"] == first["score"]

    CountTrials.started = 0
    best_metrics = (result.best_run.path / "metrics.json").stat().st_mtime_ns
    code = main(["tune", "mlp", "--tuner", "random", "--max-trials", "2", "--epochs", "2", "--no-jit",
                 "--out", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and CountTrials.started == 0  # the same command again: nothing left to run
    assert (result.best_run.path / "metrics.json").stat().st_mtime_ns == best_metrics  # nor to retrain
    assert "trial  status" in out and "best trial" in out and "weighted avg" in out

    with pytest.raises(RunDirError, match="holds a search with other settings .*objective"):
        tune(BASE, "random", max_trials=2, objective="val_loss", out=tmp_path, verbose=0)
    assert main(["evaluate", str(result.best_run.path)]) == 0  # the best run is an ordinary run directory


def bad_spec(search_space):
    return dataclasses.replace(registry.model_spec("mlp"), name="mlp_bad", search_space=search_space)


def with_space(**overrides):
    return lambda hp: {**mlp_search_space(hp), **overrides}


@pytest.mark.parametrize(
    "search_space, message",
    [
        (None, "model 'mlp_bad' has no search space"),
        (with_space(epochs=3), "search space of model 'mlp_bad' sets epochs; it may set model_params and"),
        (with_space(model_params={"width": 8}), "build_mlp() got an unexpected keyword argument 'width'"),
        (with_space(optimizer="adamw"), "unknown optimizer 'adamw'"),
        (lambda hp: {"learning_rate": hp.Choice("learning_rate", [0.1, 0.2], default=0.3)}, "search space of model"),
    ],
)
def test_a_bad_search_space_fails_before_any_trial(monkeypatch, tmp_path, search_space, message):
    monkeypatch.setitem(registry._MODELS, "mlp_bad", bad_spec(search_space))
    with pytest.raises(KerasdlError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tune(dataclasses.replace(BASE, model="mlp_bad"), "random", out=tmp_path / "out", verbose=0)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--tuner", "annealing"), "error: unknown tuner 'annealing'; known: bayesian, grid, hyperband, random"),
        (("--tuner", "random", "--objective", "val_f1"),
         "objective 'val_f1' is not logged by model 'mlp'; it logs accuracy, loss, val_accuracy, val_loss"),
        (("--tuner", "grid", "--max-trials", "0"), "argument --max-trials: expected a positive integer, got 0"),
    ],
)
def test_tune_command_user_mistakes_are_one_line(capsys, tmp_path, argv, message):
    try:
        code = main(["tune", "mlp", *argv, "--out", str(tmp_path / "out")])
    except SystemExit as exit_:  # argparse
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # no trial ran

