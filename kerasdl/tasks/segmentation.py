"""Segmentation: a class per pixel. Cross-entropy over pixels, pixel accuracy against the majority-class
baseline, per-class IoU and Dice, mask overlays, and parity as the share of pixels whose class agrees.

Task params (`TrainConfig.task_params`):
  train_images   train on the first this many training images (EM sections, photos), each still cut into all
                 its tiles: quick runs and tests on a fixed budget. Validation and test stay whole.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator

import keras
import numpy as np

from kerasdl.data import DataBundle
from kerasdl.data.segmentation import SegmentationBundle, tiles_per_image
from kerasdl.errors import KerasdlError
from kerasdl.evaluation.table import format_table
from kerasdl.tasks.base import Bound, ParityTargets, Task, argmax_parity, register_task

EVAL_BATCH = 16  # tiles per forward pass: a U-Net's full-resolution activations are large
OVERLAY_SAMPLES = 4  # test tiles in the overlay plot
FLOAT_TARGETS = ParityTargets((Bound("max_abs_diff", 1e-4), Bound("mask_agreement", 0.9999, upper=False)))
# A quantized U-Net may flip pixels on class boundaries, where the logits of two classes are close.
QUANTIZED_TARGETS = ParityTargets((Bound("mask_agreement", 0.98, upper=False), Bound("accuracy_drop", 0.01)))


class Segmentation(Task):
    name = "segmentation"
    float_targets = FLOAT_TARGETS
    quantized_targets = QUANTIZED_TARGETS
    main_metric = "test_pixel_accuracy"
    higher_is_better = True
    objective = "val_pixel_accuracy"
    objective_mode = "max"
    log_names = ("pixel_accuracy",)

    def adapt_data(self, data: DataBundle, params: dict[str, Any]) -> DataBundle:
        """The training split cut to its first `train_images` images (task parameter; all by default)."""
        count = params.get("train_images")
        if count is None:
            return data
        if not isinstance(data, SegmentationBundle):
            raise KerasdlError(f"train_images needs segmentation images held in memory, not {data.info.name!r}")
        images, masks = data.images["train"]
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= len(images):
            raise KerasdlError(f"train_images must be a whole number from 1 to {len(images)}, got {count!r}")
        sizes = {**data.info.split_sizes, "train": count * tiles_per_image(images, data.tile)}
        return SegmentationBundle(
            dataclasses.replace(data.info, split_sizes=sizes), {**data.images, "train": (images[:count], masks[:count])}
        )

    def loss(self) -> keras.losses.Loss:
        """Cross-entropy on each pixel's logits, averaged over pixels. Plain, not Dice: with 22% membrane
        pixels both classes get enough gradient, and accuracy, IoU and Dice are all measured on the result."""
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self) -> list[Any]:
        return [keras.metrics.SparseCategoricalAccuracy(name="pixel_accuracy")]

    def batch_logs(self, targets, outputs):
        import tensorflow as tf

        predicted = tf.argmax(outputs, axis=-1, output_type=tf.int32)
        return {"pixel_accuracy": tf.reduce_mean(tf.cast(predicted == tf.cast(targets, tf.int32), tf.float32))}

    def evaluate(self, model, data: DataBundle, params, plots_dir: Path | None, suffix: str = "") -> dict[str, Any]:
        """Pixel accuracy, loss, per-class IoU and Dice and their means over the test tiles, and the accuracy
        of always answering the training set's most common class; with `plots_dir`, mask overlays."""
        names = list(data.info.class_names)
        labels = data.labels("test")
        matrix, loss_sum, start = np.zeros((len(names), len(names)), np.int64), 0.0, 0
        for x in data.batches("test", EVAL_BATCH):
            logits, y = np.asarray(model.predict_on_batch(x)), labels[start : start + len(x)]
            matrix += confusion_matrix(y, logits.argmax(axis=-1), len(names))
            loss_sum += float(pixel_cross_entropy(y, logits).sum())
            start += len(x)
        majority = int(np.argmax(np.bincount(data.labels("train").ravel(), minlength=len(names))))
        pixels = int(matrix.sum())
        metrics = {
            "test_pixel_accuracy": float(np.trace(matrix) / pixels),
            "test_loss": loss_sum / pixels,
            "test_majority_baseline": float(matrix[majority].sum() / pixels),
            "majority_class": names[majority],
            **overlap_metrics(matrix, names),
            "test_samples": int(len(labels)),
            "test_pixels": pixels,
            "class_names": names,
            "confusion_matrix": matrix.tolist(),
        }
        if plots_dir is not None:
            chosen = data.sample_indices("test", OVERLAY_SAMPLES, seed=0)
            inputs = data.take("test", OVERLAY_SAMPLES, seed=0)
            pixels_01 = (inputs - data.info.offset) / data.info.scale / data.info.pixel_max
            predicted = np.asarray(model.predict_on_batch(inputs)).argmax(axis=-1)
            plot_overlays(pixels_01, labels[chosen], predicted, names, plots_dir / f"segmentation_overlays{suffix}.png")
        return metrics

    def headline(self, metrics: dict[str, Any]) -> str:
        return (
            f"pixel accuracy {metrics['test_pixel_accuracy']:.4f} (majority baseline "
            f"{metrics['test_majority_baseline']:.4f}), mean IoU {metrics['test_mean_iou']:.4f}, "
            f"loss {metrics['test_loss']:.4f}"
        )

    def report(self, metrics: dict[str, Any]) -> str:
        """The headline, then IoU, Dice and the true and predicted share of pixels of each class."""
        matrix = np.asarray(metrics["confusion_matrix"], dtype=np.float64)
        rows = [
            {
                "class": name,
                "iou": metrics[f"test_iou_{name}"],
                "dice": metrics[f"test_dice_{name}"],
                "true share": matrix[k].sum() / matrix.sum(),
                "predicted share": matrix[:, k].sum() / matrix.sum(),
            }
            for k, name in enumerate(metrics["class_names"])
        ]
        return "\n".join([
            f"test {self.headline(metrics)} ({metrics['test_samples']} tiles, {metrics['test_pixels']:,} pixels)",
            format_table(rows),
        ])

    def export_batches(self, edge: keras.Model, data: DataBundle, batch_size: int) -> Iterator[np.ndarray]:
        """The test tiles, a few at a time: the artifact's runtime allocates activations for a whole batch."""
        return data.batches("test", min(batch_size, EVAL_BATCH))

    def parity(self, reference: np.ndarray, outputs: np.ndarray, data: DataBundle) -> dict[str, Any]:
        """Max abs logit difference, the share of pixels whose class agrees with Keras's (mask agreement),
        and both pixel accuracies ("accuracy": the artifact's)."""
        return argmax_parity(reference, outputs, data.labels("test"), "mask_agreement")

    def preprocessing(
        self, data: DataBundle, input_name: str, input_dtype: str, shape: tuple[int, ...]
    ) -> dict[str, Any]:
        """Adds how the runner fits an image to the input: full-resolution tiles, or the whole image resized."""
        from kerasdl.data.segmentation import TILES

        return {**super().preprocessing(data, input_name, input_dtype, shape), "output": "pixel_logits",
                "tiles": data.info.augmentation == TILES}

    def parity_summary(self, measured: dict[str, Any]) -> str:
        return (
            f"max |logit diff| {measured['max_abs_diff']:.3g}, mask agreement {measured['mask_agreement']:.2%}, "
            f"pixel accuracy {measured['accuracy']:.4f} (Keras {measured['keras_accuracy']:.4f})"
        )


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Pixel counts: row = true class, column = predicted class."""
    pairs = labels.astype(np.int64).ravel() * classes + predicted.astype(np.int64).ravel()
    return np.bincount(pairs, minlength=classes * classes).reshape(classes, classes)


def pixel_cross_entropy(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[label] for every pixel, computed stably."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_normalizer = np.log(np.exp(shifted).sum(axis=-1))
    return log_normalizer - np.take_along_axis(shifted, labels[..., None].astype(np.int64), axis=-1)[..., 0]


def overlap_metrics(matrix: np.ndarray, names: list[str]) -> dict[str, float | None]:
    """IoU = TP / (TP + FP + FN) and Dice = 2 TP / (2 TP + FP + FN) per class, and their means over the
    classes present in truth or prediction (a class absent from both has neither: None)."""
    true_positive = np.diag(matrix).astype(np.float64)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - true_positive
    metrics: dict[str, float | None] = {}
    for kind, values in (("iou", true_positive / np.maximum(union, 1)),
                         ("dice", 2 * true_positive / np.maximum(union + true_positive, 1))):
        present = union > 0
        metrics[f"test_mean_{kind}"] = float(values[present].mean())
        metrics.update({f"test_{kind}_{name}": float(value) if ok else None
                        for name, value, ok in zip(names, values, present)})
    return metrics


def plot_overlays(pixels: np.ndarray, labels: np.ndarray, predicted: np.ndarray, names: list[str], path: Path) -> Path:
    """A row per tile: the image, its true mask, the predicted mask, and the image with wrong pixels in red."""
    from kerasdl.evaluation.plots import _save, plt

    pixels = np.clip(pixels, 0.0, 1.0)
    images = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
    colours = {"cmap": "viridis", "vmin": 0, "vmax": len(names) - 1, "interpolation": "nearest"}
    fig, axes = plt.subplots(len(images), 4, figsize=(12, 3 * len(images)), squeeze=False)
    for row, image, truth, guess in zip(axes, images, labels, predicted):
        wrong = np.zeros((*truth.shape, 4))
        wrong[truth != guess] = (1.0, 0.0, 0.0, 0.7)
        row[0].imshow(image, cmap="gray")
        row[1].imshow(truth, **colours)
        row[2].imshow(guess, **colours)
        row[3].imshow(image, cmap="gray")
        row[3].imshow(wrong)
        for ax in row:
            ax.axis("off")
    for ax, title in zip(axes[0], ("image", "true mask", "predicted mask", "errors (red)")):
        ax.set_title(title)
    legend = ", ".join(f"{k} = {name}" for k, name in enumerate(names))
    fig.suptitle(f"test tiles; mask colours by class index: {legend}", fontsize="small")
    return _save(fig, path)


SEGMENTATION = register_task(Segmentation())
