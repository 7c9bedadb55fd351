"""Stage 3 CNNs: the lesson's shapes and output-size formula, accuracy on real data, photos on the edge."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from kerasdl.cli import main
from kerasdl.data import DatasetInfo
from kerasdl.edge.runner import EdgeModel
from kerasdl.export.tflite import operators
from kerasdl.models.cnn import conv_output_size
from kerasdl.registry import model_spec

CIFAR = DatasetInfo("cifar10", (32, 32, 3), 10, tuple("abcdefghij"))
@pytest.mark.parametrize(
    "size, kernel, padding, stride",
    [(32, 3, "same", 1), (32, 3, "valid", 1), (28, 5, "valid", 1), (28, 5, "same", 2), (31, 3, "valid", 2),
     (16, 2, "valid", 2), (7, 7, "valid", 1), (15, 3, "same", 3)],
)
def test_output_size_formula_matches_keras(size, kernel, padding, stride):
    layer = keras.layers.Conv2D(1, kernel, strides=stride, padding=padding)
    keras_size = layer.compute_output_shape((1, size, size, 1))[1]
    pad = (kernel - 1) // 2 if padding == "same" else 0  # 'same' with an odd kernel pads (K - 1) / 2
    assert conv_output_size(size, kernel, pad, stride) == keras_size


def test_output_size_formula_rejects_a_kernel_larger_than_the_input():
    assert conv_output_size(5, 3) == 3 and conv_output_size(5, 3, padding=1) == 5 and conv_output_size(5, 3, 0, 2) == 2
    with pytest.raises(ValueError, match="does not fit"):
        conv_output_size(2, 3)


def test_cnn_cifar_is_the_lessons_network_exactly():
    model = model_spec("cnn-cifar").build(CIFAR)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert [shapes[name] for name in ("conv1", "pool1", "conv2", "pool2")] == [
        (32, 32, 32), (16, 16, 32), (14, 14, 64), (7, 7, 64)
    ]
    assert [shapes[name] for name in ("flatten", "fc1", "fc2", "logits")] == [(3136,), (600,), (120,), (10,)]
    # PyTorch's count for the lesson's nn.Sequential: 896 + 18,496 + 1,882,200 + 72,120 + 1,210
    assert model.count_params() == 1_974_922
    assert [layer.get_config().get("activation") for layer in model.layers if "conv" in layer.name or "fc" in layer.name] == ["relu"] * 4


@pytest.mark.parametrize("name", ["cnn-mnist", "cnn-small"])
def test_cnn_models_output_logits_and_reload(tmp_path, name):
    info = DatasetInfo("x", (28, 28, 1) if name == "cnn-mnist" else (64, 64, 3), 3, ("a", "b", "c"))
    model = model_spec(name).build(info)
    assert model.output.shape[1:] == (3,) and model.layers[-1].get_config()["activation"] == "linear"
    model.save(tmp_path / "m.keras")
    x = np.random.default_rng(0).uniform(-1, 1, (2, *info.input_shape)).astype("float32")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)(x), model(x), atol=1e-6)


@pytest.mark.slow
def test_cnn_mnist_reaches_99_percent_on_the_10000_test_digits(accuracy_run):
    metrics = accuracy_run("cnn-mnist").metrics
    assert metrics["test_samples"] == 10_000 and metrics["test_accuracy"] >= 0.99


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["fit", "tape"])
def test_cnn_cifar_reaches_50_percent_on_the_cifar10_test_subset(accuracy_run, loop):
    metrics = accuracy_run("cnn-cifar", loop).metrics
    assert metrics["test_samples"] == 2_000 and metrics["test_accuracy"] >= 0.50


@pytest.mark.slow
def test_cnn_small_reaches_70_percent_on_the_1000_cats_vs_dogs_test_photos(accuracy_run):
    result = accuracy_run("cnn-small")
    assert result.metrics["test_samples"] == 1_000 and result.metrics["test_accuracy"] >= 0.70
    plots = {path.name for path in result.run.plots_dir.iterdir()}
    assert {"misclassified.png", "conv_filters.png", "grad_cam.png", "learning_curves.png"} <= plots


@pytest.mark.slow
def test_photo_model_on_the_edge_int8_within_a_point_and_raw_jpegs_give_the_keras_answer(accuracy_run, tmp_path):
    """int8 keeps accuracy; `kerasdl infer photo.jpg` preprocesses as training did; no augmentation op ships."""
    from kerasdl.training.train import load_for

    run = accuracy_run("cnn-small").run
    for fmt in ("tflite", "tflite-int8"):
        assert main(["export", str(run.path), "--format", fmt, "--out", str(tmp_path / fmt), "--latency-runs", "5"]) == 0
        report = json.loads((tmp_path / fmt / "export.json").read_text())
        assert report["builtin_ops_only"] and report["targets"]["met"], report["targets"]
        ops = {op.name for op in operators((tmp_path / fmt / "model.tflite").read_bytes())}
        assert not {op for op in ops if "RANDOM" in op or "MULTINOMIAL" in op}, ops
    assert report["parity"]["keras_accuracy"] - report["parity"]["accuracy"] <= 0.01
    assert report["parity"]["samples"] == 1_000 and report["latency_ms_batch1"] > 0

    config = run.read_config()
    data = load_for(config)
    paths = data.files["test"][0][::100]  # 10 real test JPEGs of both classes, at their own sizes
    model = keras.saving.load_model(run.model_path)
    keras_probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(data.inputs_for(paths))))
    edge = EdgeModel(tmp_path / "tflite" / "model.tflite")
    # Pillow and TensorFlow decode and resize a JPEG a few gray levels apart, so the probabilities agree to a
    # tolerance, and the class wherever Keras's two best are further apart than that (a 0.504 / 0.496 tie may flip).
    tolerance = 0.05
    for path, expected in zip(paths, keras_probabilities):
        from_file = edge.predict(edge.preprocessing.read(path))[0]
        np.testing.assert_allclose(from_file, expected, atol=tolerance)
        best, second = np.sort(expected)[::-1][:2]
        if best - second > 2 * tolerance:
            assert from_file.argmax() == expected.argmax()
