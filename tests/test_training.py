"""Both training loops: the run directory contract, reloading, resume after interruption, error paths."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest

from kerasdl.errors import KerasdlError, RunDirError, TrainingError
from kerasdl.training import RunDirectory, TrainConfig, train

LOOPS = ("fit", "tape")


@pytest.mark.parametrize("loop", LOOPS)
def test_run_directory_contract(digits_runs, loop):
    run = digits_runs[loop].run
    for name in ("config.json", "history.csv", "metrics.json", "model.keras", "checkpoints/best.keras"):
        assert (run.path / name).is_file(), name
    for plot in ("learning_curves.png", "confusion_matrix.png"):
        assert (run.plots_dir / plot).stat().st_size > 10_000
    assert any(run.logs_dir.rglob("events.out.tfevents.*"))  # TensorBoard
    config = run.read_config()
    assert config["model"] == "mlp" and config["data"] == "digits" and config["loop"] == loop
    assert config["seed"] == 0 and config["versions"]["keras"] == keras.__version__
    metrics = run.read_metrics()
    for key in ("test_accuracy", "test_loss", "epochs", "train_seconds", "train_samples_per_second"):
        assert metrics[key] > 0, key
    assert metrics["epochs"] == 10 and not metrics["resumed"]


def test_both_loops_write_the_same_history_columns(digits_runs):
    fit, tape = (digits_runs[loop].run.history_rows() for loop in LOOPS)
    assert list(fit[0]) == list(tape[0]) and len(fit) == len(tape) == 10


@pytest.mark.parametrize("loop", LOOPS)
def test_loops_lower_the_loss(digits_runs, loop):
    losses = [float(row["loss"]) for row in digits_runs[loop].run.history_rows()]
    assert losses[-1] < 0.2 * losses[0]
    assert digits_runs[loop].metrics["test_loss"] < 0.3


@pytest.mark.parametrize("loop", LOOPS)
def test_model_keras_reloads_safely_and_predicts_the_same(digits_runs, loop):
    result = digits_runs[loop]
    reloaded = keras.saving.load_model(result.run.model_path, safe_mode=True)
    x = np.random.default_rng(0).uniform(-1, 1, (16, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), result.model.predict(x, verbose=0), atol=1e-6)


class Interrupt(keras.callbacks.Callback):
    """Simulates a crash (Ctrl-C) at the end of epoch `at`, after the history row was written."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt


class EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


@pytest.mark.parametrize("loop", LOOPS)
def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, loop):
    config = TrainConfig("mlp", loop=loop, epochs=5, patience=10)
    with pytest.raises(KeyboardInterrupt):
        train(config, out=tmp_path, callbacks=[Interrupt(at=2)], verbose=0)
    assert RunDirectory(tmp_path).state == "interrupted"
    before = RunDirectory(tmp_path).history_rows()
    assert len(before) == 3  # epoch 2 was logged, but its checkpoint was never written

    recorder = EpochRecorder()
    result = train(config, out=tmp_path, callbacks=[recorder], verbose=0)
    assert recorder.epochs == [2, 3, 4]  # resumed after the last checkpointed epoch, not from scratch
    after = result.run.history_rows()
    assert [int(row["epoch"]) for row in after] == [0, 1, 2, 3, 4]
    assert after[:2] == before[:2]
    assert float(after[2]["loss"]) < float(before[0]["loss"])  # restored weights, not a fresh model
    assert result.metrics["resumed"] and result.metrics["epochs"] == 5
    assert not (result.run.checkpoints_dir / ("backup" if loop == "fit" else "tape")).exists()


def test_resume_refuses_other_settings(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig("mlp", epochs=3), out=tmp_path, callbacks=[Interrupt(at=0)], verbose=0)
    with pytest.raises(RunDirError, match="interrupted run with other settings .*batch_size: 64 -> 32"):
        train(TrainConfig("mlp", epochs=3, batch_size=32), out=tmp_path, verbose=0)


def test_finished_run_is_not_overwritten_by_accident(digits_runs):
    with pytest.raises(RunDirError, match="already holds a finished run; pass --overwrite"):
        train(TrainConfig("mlp"), out=digits_runs["fit"].run.path, verbose=0)


@pytest.mark.parametrize("loop", LOOPS)
def test_nan_loss_stops_with_a_clear_error(tmp_path, loop):
    config = TrainConfig("mlp", loop=loop, epochs=2, optimizer="sgd", learning_rate=1e12, steps_per_execution=1)
    with pytest.raises(TrainingError, match="training loss became nan"):
        train(config, out=tmp_path, verbose=0)
    assert RunDirectory(tmp_path).state == "interrupted"


def test_unknown_loop_and_builder_option_are_clear(tmp_path):
    with pytest.raises(KerasdlError, match="model 'mlp' trains with --loop fit or tape, not 'adam'"):
        train(TrainConfig("mlp", loop="adam"), out=tmp_path / "a", verbose=0)
    with pytest.raises(KerasdlError, match="model 'mlp': .*unexpected keyword argument 'filters'"):
        train(TrainConfig("mlp", model_params={"filters": 3}), out=tmp_path / "b", verbose=0)


def test_config_rejects_bad_values():
    with pytest.raises(KerasdlError, match="batch-size must be >= 1"):
        TrainConfig("mlp", batch_size=0)
    with pytest.raises(KerasdlError, match="unknown optimizer 'adamw'"):
        TrainConfig("mlp", optimizer="adamw")


def test_history_csv_is_plain_csv(digits_runs):
    with digits_runs["tape"].run.history_path.open() as f:
        header = next(csv.reader(f))
    assert header == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert json.loads(digits_runs["tape"].run.metrics_path.read_text())["loop"] == "tape"
