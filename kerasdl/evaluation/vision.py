"""Looking inside an image classifier: its mistakes, its first-layer filters and Grad-CAM heatmaps.

Grad-CAM follows keras-io's `examples/vision/grad_cam.py`: the gradient of a class logit with respect to
the last 4-D feature map, averaged over space, weighs that map's channels; the weighted sum after a ReLU
shows where the evidence for the class lies. The feature map may sit inside a nested backbone (e.g. a
`keras.applications` model used as a layer), which is why the gradient model is rebuilt rather than cut.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import keras
import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or assumed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kerasdl.evaluation.metrics import probabilities  # noqa: E402
from kerasdl.evaluation.plots import _save  # noqa: E402

MAX_FILTERS = 64


def misclassified_indices(labels: np.ndarray, logits: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the first `limit` samples whose predicted class is not their label."""
    return np.flatnonzero(np.argmax(logits, axis=1) != np.asarray(labels))[:limit]


def plot_misclassified(
    images: np.ndarray,
    labels: np.ndarray,
    logits: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    *,
    limit: int = 16,
) -> Path:
    """A grid of up to `limit` misclassified images (pixels in [0, 1]), each with its true and predicted class."""
    indices = misclassified_indices(labels, logits, limit)
    if not len(indices):  # still write the file, so a run always has the same plots
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.text(0.5, 0.5, f"no misclassified images among {len(labels)}", ha="center", va="center")
        ax.axis("off")
        return _save(fig, path)
    probs = probabilities(logits)
    fig, axes = _grid(len(indices), cell=2.4)
    for ax, i in zip(axes, indices):
        predicted = int(np.argmax(logits[i]))
        _show(ax, images[i])
        ax.set_title(
            f"true {class_names[labels[i]]} / pred {class_names[predicted]} (p={probs[i, predicted]:.2f})",
            fontsize="small",
        )
    fig.suptitle(f"misclassified test images ({len(indices)} shown)")
    return _save(fig, path)


def first_conv2d(model: keras.Model) -> keras.layers.Conv2D | None:
    """The first plain `Conv2D` in layer order, looking inside nested models; depthwise and separable ones are not."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            return layer
        if isinstance(layer, keras.Model) and (found := first_conv2d(layer)) is not None:
            return found
    return None


def plot_first_conv_filters(model: keras.Model, path: Path) -> Path | None:
    """The first Conv2D's kernels (up to 64), each scaled to [0, 1]; RGB for 3 input channels, else gray.

    Returns None, writing nothing, when the model has no Conv2D.
    """
    conv = first_conv2d(model)
    if conv is None:
        return None
    kernel = keras.ops.convert_to_numpy(conv.kernel)  # (height, width, in_channels, filters)
    filters = np.moveaxis(kernel, -1, 0)[:MAX_FILTERS]
    if filters.shape[-1] != 3:
        filters = filters.mean(axis=-1, keepdims=True)  # gray: one channel, or the mean of several
    low = filters.min(axis=(1, 2, 3), keepdims=True)
    spread = filters.max(axis=(1, 2, 3), keepdims=True) - low
    filters = (filters - low) / np.where(spread > 0, spread, 1.0)
    fig, axes = _grid(len(filters), cell=1.0)
    for ax, image in zip(axes, filters):
        _show(ax, image)
    fig.suptitle(f"{conv.name}: {kernel.shape[-1]} filters of {kernel.shape[0]}x{kernel.shape[1]}", fontsize="small")
    return _save(fig, path)


def grad_cam(model: keras.Model, images: np.ndarray, class_index: np.ndarray | None = None) -> np.ndarray:
    """Grad-CAM heatmaps (N, H, W) in [0, 1] of `images`, given in the model's input scale.

    Each image is explained for its `class_index` entry, by default its predicted class.
    """
    features_model = _feature_map_model(model)
    if features_model is None:
        raise ValueError(f"model {model.name!r} has no layer with a 4-D output to explain")
    heatmaps, _ = _grad_cam(features_model, images, class_index)
    return heatmaps


def _feature_map_model(model: keras.Model) -> keras.Model | None:
    """A model from `model`'s input to (its last 4-D feature map, its output), or None without such a map.

    The graph is rebuilt with `clone_model` sharing every layer: a nested model holding the map is called
    through its own feature-map model, so the map stays connected to the outer input.
    """
    feature_maps = []

    def call(layer: keras.layers.Layer, *args, **kwargs):
        inner = _feature_map_model(layer) if isinstance(layer, keras.Model) else None
        if inner is None:
            outputs = feature = layer(*args, **kwargs)
        else:
            feature, outputs = inner(*args, **kwargs)
        if isinstance(feature, keras.KerasTensor) and feature.ndim == 4:
            feature_maps.append(feature)
        return outputs

    # clone_model's call_function needs a functional model; image classifiers have one input and one output
    functional = keras.Model(model.inputs[0], model.outputs[0])
    rebuilt = keras.models.clone_model(functional, clone_function=lambda layer: layer, call_function=call)
    if not feature_maps:
        return None
    return keras.Model(rebuilt.input, [feature_maps[-1], rebuilt.output])


def _grad_cam(
    features_model: keras.Model, images: np.ndarray, class_index: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps and logits of `images` through a `_feature_map_model` (a GradientTape: TensorFlow only)."""
    import tensorflow as tf

    images = tf.convert_to_tensor(images, dtype=tf.float32)
    with tf.GradientTape() as tape:
        feature_map, logits = features_model(images, training=False)
        if class_index is None:
            class_index = tf.argmax(logits, axis=1)
        score = tf.gather(logits, class_index, axis=1, batch_dims=1)
    grads = tape.gradient(score, feature_map)  # samples are independent, so one gradient serves the batch
    channel_weights = keras.ops.mean(grads, axis=(1, 2))  # alpha_k: (N, channels)
    heatmap = keras.ops.relu(keras.ops.einsum("nhwk,nk->nhw", feature_map, channel_weights))
    heatmap = keras.ops.image.resize(heatmap[..., None], tuple(images.shape[1:3]))[..., 0]
    peak = keras.ops.max(heatmap, axis=(1, 2), keepdims=True)
    heatmap = keras.ops.divide_no_nan(heatmap, peak)  # an all-zero map stays zero
    return keras.ops.convert_to_numpy(heatmap), keras.ops.convert_to_numpy(logits)


def plot_grad_cam(
    model: keras.Model,
    images_display: np.ndarray,
    images_input: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    *,
    limit: int = 8,
) -> Path | None:
    """A row per image (the first `limit`): the image, and its Grad-CAM for the predicted class over it.

    Returns None, writing nothing, when the model has no 4-D feature map.
    """
    features_model = _feature_map_model(model)
    if features_model is None:
        return None
    heatmaps, logits = _grad_cam(features_model, images_input[:limit], None)
    fig, axes = plt.subplots(len(heatmaps), 2, figsize=(5, 2.5 * len(heatmaps)), squeeze=False)
    for (image_ax, overlay_ax), image, heatmap, label, row in zip(
        axes, images_display, heatmaps, labels, logits
    ):
        _show(image_ax, image)
        image_ax.set_title(f"true {class_names[label]} / pred {class_names[int(np.argmax(row))]}", fontsize="small")
        _show(overlay_ax, image)
        overlay_ax.imshow(heatmap, cmap="jet", alpha=0.4, vmin=0, vmax=1)
        overlay_ax.set_title("Grad-CAM, predicted class", fontsize="small")
    return _save(fig, path)


def write_vision_plots(
    model: keras.Model,
    images_display: np.ndarray,
    images_input: np.ndarray,
    labels: np.ndarray,
    logits: np.ndarray,
    class_names: Sequence[str],
    plots_dir: Path,
    suffix: str = "",
) -> list[Path]:
    """Misclassified images, first conv filters and Grad-CAM (those the model allows); returns the written paths."""
    paths = [
        plot_misclassified(images_display, labels, logits, class_names, plots_dir / f"misclassified{suffix}.png"),
        plot_first_conv_filters(model, plots_dir / f"conv_filters{suffix}.png"),
        plot_grad_cam(
            model, images_display, images_input, labels, class_names, plots_dir / f"grad_cam{suffix}.png"
        ),
    ]
    return [path for path in paths if path is not None]


def _grid(count: int, cell: float) -> tuple[plt.Figure, list[plt.Axes]]:
    """A near-square grid of `count` image axes (spare cells hidden), each `cell` inches wide."""
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols, cell * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, list(axes.flat)[:count]


def _show(ax: plt.Axes, image: np.ndarray) -> None:
    """An (H, W, 1) or (H, W, 3) image with pixels in [0, 1]; one channel in gray."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(np.clip(image, 0, 1))
    ax.axis("off")
