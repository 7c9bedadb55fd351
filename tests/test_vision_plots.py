"""Looking-inside plots: misclassified grid, first conv filters and Grad-CAM, on tiny models and real digits."""

from __future__ import annotations

import keras
import matplotlib.image
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from kerasdl.evaluation.vision import (
    first_conv2d,
    grad_cam,
    misclassified_indices,
    plot_first_conv_filters,
    plot_grad_cam,
    plot_misclassified,
    write_vision_plots,
)

DIGIT_NAMES = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def digits():
    """A small CNN trained for two epochs on 8x8 digits (pixels scaled to [0, 1]), with test images and logits."""
    data = load_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    y = data.target
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.MaxPooling2D(2)(h)
    logits = keras.layers.Dense(10)(keras.layers.Flatten()(h))
    model = keras.Model(inputs, logits)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:1500], y[:1500], epochs=2, batch_size=64, verbose=0)
    x_test, y_test = x[1500:1700], y[1500:1700]
    return model, x_test, y_test, model.predict(x_test, verbose=0)


def mobilenet_classifier() -> keras.Model:
    """A keras.applications backbone nested as one layer of an outer functional classifier."""
    backbone = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None, alpha=0.35)
    inputs = keras.Input((32, 32, 3))
    features = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    return keras.Model(inputs, keras.layers.Dense(3)(features))


def png_shape(path) -> tuple[int, ...]:
    assert path.is_file()
    return matplotlib.image.imread(path).shape


def test_misclassified_indices_by_hand():
    labels = np.array([0, 1, 2, 1, 0])
    logits = np.array([[3, 1, 0], [0, 1, 2], [0, 0, 5], [2, 1, 0], [0, 4, 1]], dtype="float32")  # predicts 0 2 2 0 1
    assert misclassified_indices(labels, logits, limit=16).tolist() == [1, 3, 4]
    assert misclassified_indices(labels, logits, limit=2).tolist() == [1, 3]
    assert misclassified_indices(np.array([0, 2, 2, 0, 1]), logits, limit=16).tolist() == []


def test_write_vision_plots_on_digits(digits, tmp_path):
    model, x, y, logits = digits
    assert 0 < (logits.argmax(axis=1) != y).sum() < len(y) / 2  # trained, yet with mistakes to show
    paths = write_vision_plots(model, x, x, y, logits, DIGIT_NAMES, tmp_path, suffix="_digits")
    names = ["misclassified_digits.png", "conv_filters_digits.png", "grad_cam_digits.png"]
    assert paths == [tmp_path / name for name in names]
    for path in paths:
        height, width, channels = png_shape(path)
        assert channels in (3, 4) and height > 100 and width > 100
    height, width, _ = png_shape(tmp_path / "grad_cam_digits.png")
    assert height == 4 * width  # eight rows of (image, overlay)


def test_misclassified_plot_when_all_correct(digits, tmp_path):
    _, x, y, _ = digits
    path = plot_misclassified(x, y, np.eye(10, dtype="float32")[y], DIGIT_NAMES, tmp_path / "none.png")
    assert png_shape(path)[:2] == (200, 400)  # the one-line "none" figure, not a grid


def test_grad_cam_on_trained_digits(digits):
    model, x, _, logits = digits
    heatmaps = grad_cam(model, x[:8])
    assert heatmaps.shape == (8, 8, 8)
    assert heatmaps.min() >= 0 and heatmaps.max() <= 1
    assert np.allclose(heatmaps.max(axis=(1, 2)), 1)  # each map carries heat, normalized by its peak
    np.testing.assert_allclose(grad_cam(model, x[:8], logits[:8].argmax(axis=1)), heatmaps, atol=1e-6)
    other = grad_cam(model, x[:8], (logits[:8].argmax(axis=1) + 1) % 10)
    assert not np.allclose(other, heatmaps, atol=1e-3)


def bar_detector() -> keras.Model:
    """Hand-set weights: channel 0 fires on vertical bars, channel 1 on horizontal ones; logit 0 is their difference."""
    inputs = keras.Input((16, 16, 1))
    conv = keras.layers.Conv2D(2, 3, padding="same", activation="relu")
    h = keras.layers.MaxPooling2D(2)(conv(inputs))
    dense = keras.layers.Dense(2)
    outputs = dense(keras.layers.GlobalAveragePooling2D()(h))
    line = np.array([-1.0, 2.0, -1.0])
    kernel = np.stack([np.tile(line, (3, 1)), np.tile(line[:, None], (1, 3))], axis=-1)[:, :, None, :]
    conv.set_weights([kernel, np.full(2, -2.0)])
    dense.set_weights([np.array([[1.0, -1.0], [-1.0, 1.0]]), np.zeros(2)])
    return keras.Model(inputs, outputs)


def test_grad_cam_localizes_the_evidence():
    image = np.zeros((1, 16, 16, 1), dtype="float32")
    image[0, 1:7, 3] = 1  # vertical bar in the top-left quadrant
    image[0, 12, 9:15] = 1  # horizontal bar in the bottom-right quadrant
    model = bar_detector()
    vertical, horizontal = (grad_cam(model, image, np.array([k]))[0] for k in (0, 1))
    assert vertical[:8, :8].sum() > 0.9 * vertical.sum() and vertical[8:, 8:].sum() == 0
    assert horizontal[8:, 8:].sum() > 0.9 * horizontal.sum() and horizontal[:8, :8].sum() == 0


def keras_io_grad_cam(model: keras.Model, layer: keras.layers.Layer, images: np.ndarray) -> np.ndarray:
    """keras-io's recipe for a flat model, batched: the reference for the predicted class's heatmaps."""
    grad_model = keras.Model(model.input, [layer.output, model.output])
    with tf.GradientTape() as tape:
        maps, logits = grad_model(images)
        top = tf.reduce_max(logits, axis=1)
    weights = tf.reduce_mean(tape.gradient(top, maps), axis=(1, 2))
    cam = tf.nn.relu(tf.einsum("nhwk,nk->nhw", maps, weights))
    cam = tf.image.resize(cam[..., None], images.shape[1:3])[..., 0]
    return (cam / tf.reduce_max(cam, axis=(1, 2), keepdims=True)).numpy()


def test_grad_cam_through_a_nested_backbone_matches_the_flat_model():
    keras.utils.set_random_seed(1)
    convs = [keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Conv2D(6, 3, activation="relu")]
    head = [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)]
    inputs = keras.Input((12, 12, 3))
    flat = keras.Model(inputs, head[1](head[0](convs[1](convs[0](inputs)))))  # first, so `layer.output` is flat's
    backbone_input = keras.Input((12, 12, 3))
    backbone = keras.Model(backbone_input, convs[1](convs[0](backbone_input)))
    nested = keras.Model(inputs, head[1](head[0](backbone(inputs))))  # the same layers and weights, nested
    images = np.random.default_rng(0).random((4, 12, 12, 3), dtype="float32")
    expected = keras_io_grad_cam(flat, convs[1], images)  # the last 4-D map: the second conv's 8x8
    assert expected.max() > 0
    np.testing.assert_allclose(grad_cam(flat, images), expected, atol=1e-5)
    np.testing.assert_allclose(grad_cam(nested, images), expected, atol=1e-5)


def test_mobilenet_backbone_filters_and_grad_cam(tmp_path):
    model = mobilenet_classifier()
    assert first_conv2d(model).name == "Conv1"  # the backbone's stem, not a later (or depthwise) conv
    images = np.random.default_rng(0).random((2, 32, 32, 3), dtype="float32")
    heatmaps = grad_cam(model, images)
    assert heatmaps.shape == (2, 32, 32) and heatmaps.min() >= 0 and heatmaps.max() <= 1
    assert png_shape(plot_first_conv_filters(model, tmp_path / "filters.png"))[2] in (3, 4)
    path = plot_grad_cam(model, images, images, np.array([0, 1]), ["a", "b", "c"], tmp_path / "cam.png")
    assert png_shape(path)[2] in (3, 4)


def test_mlp_gets_only_the_misclassified_plot(digits, tmp_path):
    _, x, y, logits = digits
    mlp = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    assert first_conv2d(mlp) is None
    assert plot_first_conv_filters(mlp, tmp_path / "filters.png") is None
    assert plot_grad_cam(mlp, x, x, y, DIGIT_NAMES, tmp_path / "cam.png") is None
    with pytest.raises(ValueError, match="4-D"):
        grad_cam(mlp, x[:2])
    assert write_vision_plots(mlp, x, x, y, logits, DIGIT_NAMES, tmp_path) == [tmp_path / "misclassified.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["misclassified.png"]
