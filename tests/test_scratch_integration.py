"""mlp-scratch through the standard pipeline: the "numpy" loop, its Keras twin, and the run directory."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest

from kerasdl.data import DatasetInfo, load
from kerasdl.errors import KerasdlError
from kerasdl.models.mlp import build_mlp
from kerasdl.registry import model_spec
from kerasdl.training.numpy_loop import copy_to_keras, numpy_twin

INFO = DatasetInfo("tiny", input_shape=(4, 4, 1), num_classes=3, class_names=("a", "b", "c"))


def test_mlp_scratch_is_registered_for_the_numpy_loop():
    spec = model_spec("mlp-scratch")
    assert spec.loops == ("numpy",) and spec.default_data == "digits" and spec.task == "classification"


@pytest.mark.parametrize(
    "options", [{}, {"batch_norm": True, "dropout": 0.2, "l1": 1e-3, "l2": 1e-3}], ids=["plain", "bn-dropout-l1-l2"]
)
def test_numpy_twin_computes_what_the_keras_model_computes(options):
    keras.utils.set_random_seed(0)
    model = build_mlp(INFO, hidden_units=(8, 6), **options)
    x = np.random.default_rng(0).standard_normal((5, 4, 4, 1)).astype(np.float32)
    network, pairs = numpy_twin(model, seed=0)
    assert len(pairs) == len([w for w in model.layers if w.weights])
    np.testing.assert_allclose(network.forward(x), model(x, training=False), rtol=1e-5, atol=1e-5)
    assert network.penalty() == pytest.approx(float(sum(model.losses)), rel=1e-5)
    for array in network.params.values():  # train the twin a little, then copy back
        array += 0.1
    network.forward(x, training=True)  # moves batch norm's running statistics too
    assert not np.allclose(network.forward(x), model(x, training=False), atol=1e-3)
    copy_to_keras(network, pairs)
    np.testing.assert_allclose(network.forward(x), model(x, training=False), rtol=1e-5, atol=1e-5)


def test_numpy_twin_rejects_layers_it_cannot_mirror():
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(inputs))
    with pytest.raises(KerasdlError, match="Conv2D"):
        numpy_twin(keras.Model(inputs, keras.layers.Dense(3)(x)), seed=0)


def test_mlp_scratch_trains_on_digits_through_the_standard_pipeline(tmp_path):
    from kerasdl.training import TrainConfig, train

    # As `kerasdl train mlp-scratch --data digits`: no --loop, so the model's own ("numpy") is used.
    result = train(TrainConfig("mlp-scratch", data="digits", seed=0), out=tmp_path / "run", verbose=0)
    metrics = result.metrics
    assert metrics["loop"] == "numpy"
    assert metrics["test_accuracy"] >= 0.93, metrics["test_accuracy"]
    run = tmp_path / "run"
    for name in ("config.json", "history.csv", "metrics.json", "model.keras", "plots/learning_curves.png"):
        assert (run / name).stat().st_size > 0, name
    assert not (run / "checkpoints" / "numpy_state.pkl").exists()  # resume state is removed when done
    with (run / "history.csv").open() as f:
        history = list(csv.DictReader(f))
    assert len(history) == metrics["epochs"] == 10
    assert float(history[-1]["loss"]) < float(history[0]["loss"])
    assert {"accuracy", "loss", "val_accuracy", "val_loss"} <= set(history[0])
    assert json.loads((run / "config.json").read_text())["loop"] == "numpy"

    reloaded = keras.saving.load_model(run / "model.keras", safe_mode=True)
    x, y = load("digits", seed=0).split("test")
    accuracy = float(np.mean(np.argmax(reloaded.predict(x, verbose=0), axis=1) == y))
    assert accuracy == pytest.approx(metrics["test_accuracy"])
