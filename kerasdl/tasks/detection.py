"""Detection: CenterNet's losses, heatmap peaks -> boxes -> non-maximum suppression, mAP@0.5, box parity.

A detection model outputs CenterNet maps on a grid at kerasdl.data.detection.OUTPUT_STRIDE: per class a
heatmap of object-centre probabilities, then box width and height (fractions of the image) and the centre's
offset inside its cell. Boxes are [x_min, y_min, x_max, y_max] normalized to [0, 1]. The library decodes
with TensorFlow (tf.image NMS); the edge runner decodes the artifact's maps with its own NumPy code, and
parity compares the two pipelines' boxes.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from kerasdl.data import DataBundle
from kerasdl.data.detection import OUTPUT_STRIDE
from kerasdl.edge.runner import box_iou, decode_centernet
from kerasdl.tasks.base import Bound, ParityTargets, Task, predict, register_task

SCORE_THRESHOLD = 0.3  # the boxes a user is shown: runner, plots, precision, recall and mean IoU
RANKING_THRESHOLD = 0.01  # mAP ranks every candidate above this score
NMS_IOU = 0.5  # a box overlapping a better one of its class by more than this is dropped
MAX_DETECTIONS = 20  # per image
MATCH_IOU = 0.5  # a detection "finds" a true box (and an artifact box a Keras box) at this IoU
PARITY_IOU = 0.9
PLOTTED_IMAGES = 8
HEATMAP_EPSILON = 1e-4  # probabilities are clipped to [eps, 1 - eps] before the logs, as CenterNet does
FLOAT_TARGETS = ParityTargets((Bound("max_abs_diff", 1e-4), Bound("boxes_matched_iou90", 0.98, upper=False)))


def _quantized(matched: float, map_drop: float) -> ParityTargets:
    """A quantized artifact's boxes: most still match Keras's at IoU >= 0.9, and mAP@0.5 barely drops."""
    return ParityTargets((
        Bound("boxes_matched_iou90", matched, upper=False), Bound("mean_box_iou", 0.95, upper=False),
        Bound("map50_drop", map_drop),
    ))


# Measured on the raccoon test photos (tests' 40-epoch run, 42 boxes shown): boxes matched at IoU >= 0.9 and mAP
# drop were fp16 100%, 0.000; dynamic range 97.6%, 0.0004; int8 100% (mean IoU 0.993, max output diff 0.10),
# 0.002. One box is 2.4%, so the bounds leave room for a few.
QUANTIZED_TARGETS = {
    "float16": _quantized(0.95, 0.02),
    "dynamic-range": _quantized(0.9, 0.03),
    "int8": _quantized(0.85, 0.05),
}


# --- losses: y_true is the (grid, grid, classes + 5) target, y_pred the (grid, grid, classes + 4) maps ------
def _objects(y_true):
    """Objects per image (centre cells), at least 1: CenterNet divides each loss by it."""
    return ops.maximum(ops.sum(y_true[..., -1], axis=(1, 2)), 1.0)


@keras.saving.register_keras_serializable(package="kerasdl")
def heatmap_loss(y_true, y_pred):
    """CenterNet's penalty-reduced focal loss: (1-p)^2 log p at centres, (1-y)^4 p^2 log(1-p) elsewhere, where
    y, the Gaussian around a centre, spares near misses."""
    classes = y_pred.shape[-1] - 4
    truth, p = y_true[..., :classes], ops.clip(y_pred[..., :classes], HEATMAP_EPSILON, 1 - HEATMAP_EPSILON)
    centre = ops.cast(truth >= 1.0, y_pred.dtype)
    positive = centre * (1 - p) ** 2 * ops.log(p)
    negative = (1 - centre) * (1 - truth) ** 4 * p**2 * ops.log(1 - p)
    return -ops.sum(positive + negative, axis=(1, 2, 3)) / _objects(y_true)


def _centre_l1(y_true, y_pred, first: int):
    """L1 error of two regression channels (from `first` after the heatmaps), at centre cells only."""
    classes = y_pred.shape[-1] - 4
    channels = slice(classes + first, classes + first + 2)
    error = ops.abs(y_true[..., channels] - y_pred[..., channels]) * y_true[..., -1:]
    return ops.sum(error, axis=(1, 2, 3)) / _objects(y_true)


@keras.saving.register_keras_serializable(package="kerasdl")
def size_loss(y_true, y_pred):
    """L1 on box width and height (fractions of the image) at object centres."""
    return _centre_l1(y_true, y_pred, 0)


@keras.saving.register_keras_serializable(package="kerasdl")
def offset_loss(y_true, y_pred):
    """L1 on the centre's position inside its cell (fractions of a cell) at object centres."""
    return _centre_l1(y_true, y_pred, 2)


@keras.saving.register_keras_serializable(package="kerasdl")
class CenterNetLoss(keras.losses.Loss):
    """heatmap_loss + size_weight * size_loss + offset_weight * offset_loss, per image.

    CenterNet weighs sizes counted in grid cells by 0.1; ours are fractions of the image, where that weight
    becomes 0.1 x the grid's side (1.6 for 16 cells, 3.2 for 32). The default 5 is a round figure above
    that, not a tuned one.
    """

    def __init__(self, size_weight: float = 5.0, offset_weight: float = 1.0, name: str = "centernet_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.size_weight, self.offset_weight = size_weight, offset_weight

    def call(self, y_true, y_pred):
        return (
            heatmap_loss(y_true, y_pred)
            + self.size_weight * size_loss(y_true, y_pred)
            + self.offset_weight * offset_loss(y_true, y_pred)
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size_weight": self.size_weight, "offset_weight": self.offset_weight}


# --- decoding --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Detections:
    """One image's boxes (n, 4, normalized x_min, y_min, x_max, y_max), scores and class indices, best first."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @classmethod
    def of(cls, decoded: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Detections:
        return cls(*(np.asarray(part) for part in decoded))


def decode(
    outputs: np.ndarray, num_classes: int, *, score_threshold: float = SCORE_THRESHOLD, iou_threshold: float = NMS_IOU,
    max_detections: int = MAX_DETECTIONS,
) -> list[Detections]:
    """CenterNet maps (batch, grid, grid, classes + 4) -> per image: heatmap peaks (cells that are the max of
    their 3x3 neighbourhood), the best `max_detections`, those scoring >= `score_threshold`, as boxes, then
    tf.image NMS per class (boxes shifted apart by class so classes never suppress each other)."""
    import tensorflow as tf

    outputs = tf.convert_to_tensor(outputs, tf.float32)
    batch, rows, cols = outputs.shape[:3]
    heat = outputs[..., :num_classes]
    peaks = heat * tf.cast(heat == tf.nn.max_pool2d(heat, 3, 1, "SAME"), tf.float32)
    scores, index = tf.math.top_k(tf.reshape(peaks, [batch, -1]), k=min(max_detections, rows * cols * num_classes))
    cell, classes = index // num_classes, index % num_classes
    regression = tf.gather(tf.reshape(outputs[..., num_classes:], [batch, rows * cols, 4]), cell, batch_dims=1)
    width, height, offset_x, offset_y = tf.unstack(regression, axis=-1)
    centre_x = (tf.cast(cell % cols, tf.float32) + offset_x) / cols
    centre_y = (tf.cast(cell // cols, tf.float32) + offset_y) / rows
    boxes = tf.clip_by_value(
        tf.stack([centre_x - width / 2, centre_y - height / 2, centre_x + width / 2, centre_y + height / 2], -1), 0, 1
    )
    detections = []
    for image_boxes, image_scores, image_classes in zip(boxes, scores, classes):
        keep = image_scores >= score_threshold
        image_boxes, image_scores = image_boxes[keep], image_scores[keep]
        image_classes = image_classes[keep]
        shifted = image_boxes + 2.0 * tf.cast(image_classes, tf.float32)[:, None]
        chosen = tf.image.non_max_suppression(shifted, image_scores, max_detections, iou_threshold)
        kept = (tf.gather(part, chosen) for part in (image_boxes, image_scores, image_classes))
        detections.append(Detections.of(tuple(kept)))
    return detections


# --- measures --------------------------------------------------------------------------------------------
COCO_SCALE = 1000.0  # pycocotools takes pixels: normalized boxes as if on a 1000 x 1000 image (IoU is unchanged)


def average_precision(truth: list[np.ndarray], detections: list[Detections]) -> dict[str, float]:
    """COCO average precision (pycocotools, 101-point): at IoU 0.5 ("map50") and over IoU 0.5:0.95 ("map")."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not any(len(found.scores) for found in detections):
        return {"map50": 0.0, "map": 0.0}

    def coco_box(box: np.ndarray) -> list[float]:
        x_min, y_min, x_max, y_max = (float(v) * COCO_SCALE for v in box[:4])
        return [x_min, y_min, x_max - x_min, y_max - y_min]

    classes = sorted({int(c) for boxes in truth for c in boxes[:, 4]} | {int(c) for d in detections for c in d.classes})
    true_boxes = [(image, box) for image, boxes in enumerate(truth) for box in boxes]
    annotations = [
        {"id": number, "image_id": image, "category_id": int(box[4]) + 1, "bbox": coco_box(box),
         "area": float(np.prod(coco_box(box)[2:])), "iscrowd": 0}
        for number, (image, box) in enumerate(true_boxes, start=1)
    ]
    results = [
        {"image_id": image, "category_id": int(c) + 1, "bbox": coco_box(box), "score": float(s)}
        for image, found in enumerate(detections) for box, s, c in zip(found.boxes, found.scores, found.classes)
    ]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ground_truth = COCO()
        ground_truth.dataset = {
            "images": [{"id": image} for image in range(len(truth))],
            "categories": [{"id": c + 1} for c in classes],
            "annotations": annotations,
        }
        ground_truth.createIndex()
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {"map50": max(float(evaluation.stats[1]), 0.0), "map": max(float(evaluation.stats[0]), 0.0)}


def matched_ious(reference: np.ndarray, found: np.ndarray, min_iou: float = MATCH_IOU) -> np.ndarray:
    """IoUs of greedy one-to-one matches: each `found` box in order (best score first) takes the unmatched
    `reference` box it overlaps most, if by at least `min_iou`."""
    if not len(reference) or not len(found):
        return np.zeros(0, np.float32)
    overlaps, taken = box_iou(found[:, :4], reference[:, :4]), np.zeros(len(reference), bool)
    ious = []
    for row in overlaps:
        best = int(np.argmax(np.where(taken, -1.0, row)))
        if not taken[best] and row[best] >= min_iou:
            taken[best] = True
            ious.append(row[best])
    return np.asarray(ious, np.float32)


def shown_box_metrics(truth: list[np.ndarray], detections: list[Detections]) -> dict[str, float]:
    """At SCORE_THRESHOLD (what a user sees): precision, recall and the mean IoU of found boxes."""
    shown = [found.boxes[found.scores >= SCORE_THRESHOLD] for found in detections]
    ious = np.concatenate([matched_ious(boxes, mine) for boxes, mine in zip(truth, shown)])
    predicted, actual = sum(len(boxes) for boxes in shown), sum(len(boxes) for boxes in truth)
    return {
        "test_mean_iou": float(ious.mean()) if len(ious) else 0.0,
        "test_precision": len(ious) / predicted if predicted else 0.0,
        "test_recall": len(ious) / actual if actual else 0.0,
    }


def mean_box_baseline(train: list[np.ndarray], images: int) -> list[Detections]:
    """One box per image, score 1: the mean training box's size at the mean training centre."""
    boxes = np.concatenate(train)
    size = (boxes[:, 2:4] - boxes[:, :2]).mean(axis=0)
    centre = ((boxes[:, 2:4] + boxes[:, :2]) / 2).mean(axis=0)
    box = np.clip(np.concatenate([centre - size / 2, centre + size / 2]), 0, 1)[None]
    majority = np.bincount(boxes[:, 4].astype(int)).argmax()
    return [Detections(box, np.ones(1, np.float32), np.full(1, majority)) for _ in range(images)]


class ValidationMeanAveragePrecision(keras.callbacks.Callback):
    """After each epoch, `val_map50` in the logs: mAP@0.5 of the model's boxes on the validation images (what a
    search maximizes, as evaluation's headline is test mAP@0.5; the CenterNet loss only tracks it loosely)."""

    def __init__(self, images: np.ndarray, truth: list[np.ndarray], num_classes: int):
        super().__init__()
        self.images, self.truth, self.num_classes = images, truth, num_classes

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        detections = decode(predict(self.model, self.images), self.num_classes, score_threshold=RANKING_THRESHOLD)
        if logs is not None:
            logs["val_map50"] = average_precision(self.truth, detections)["map50"]


# --- the task --------------------------------------------------------------------------------------------
class Detection(Task):
    """Boxes from CenterNet maps: focal + L1 losses, mAP@0.5 against the mean-box baseline, box parity."""

    name = "detection"
    float_targets = FLOAT_TARGETS
    quantized_targets = QUANTIZED_TARGETS
    main_metric = "test_map50"
    higher_is_better = True
    objective = "val_map50"  # what a search maximizes: ValidationMeanAveragePrecision adds it to fit's logs
    objective_mode = "max"
    search_logs = ("val_map50",)
    # 16 validation images move val_loss by +-10% from epoch to epoch: on the tests' raccoon run (seed 0) patience 5
    # would have stopped at epoch 7 with epoch 2's weights, while val_loss was best at epoch 24 of 40. The epoch
    # count ends training instead.
    early_stopping = False
    log_names = ("heatmap_loss", "size_loss", "offset_loss")

    def loss(self) -> keras.losses.Loss:
        return CenterNetLoss()

    def metrics(self) -> list[Any]:
        return [heatmap_loss, size_loss, offset_loss]

    def batch_logs(self, targets, outputs):
        return {metric.__name__: ops.mean(metric(targets, outputs)) for metric in self.metrics()}

    def search_callbacks(self, data: DataBundle, params: dict[str, Any]) -> list[keras.callbacks.Callback]:
        images, truth = data.split("validation")
        return [ValidationMeanAveragePrecision(images, truth, data.info.num_classes)]

    def evaluate(self, model, data: DataBundle, params, plots_dir: Path | None, suffix: str = "") -> dict[str, Any]:
        """mAP@0.5 (and 0.5:0.95) on the test images against the mean-box baseline's, precision, recall and
        mean IoU of the shown boxes, the loss; with `plots_dir` test images with true and predicted boxes."""
        images, targets = (np.concatenate(part) for part in zip(*data.dataset("test", 64).as_numpy_iterator()))
        outputs = predict(model, images)
        truth = data.labels("test")
        detections = decode(outputs, data.info.num_classes, score_threshold=RANKING_THRESHOLD)
        average = average_precision(truth, detections)
        baseline = average_precision(truth, mean_box_baseline(data.labels("train"), len(truth)))
        if plots_dir is not None:
            pixels = np.clip((images - data.info.offset) / data.info.scale / data.info.pixel_max, 0, 1)
            chosen = data.sample_indices("test", PLOTTED_IMAGES, seed=0)
            plot_detections(pixels[chosen], [truth[i] for i in chosen], [detections[i] for i in chosen],
                            data.info.class_names, plots_dir / f"detections{suffix}.png")
        return {
            "test_map50": average["map50"],
            "test_map": average["map"],
            "test_baseline_map50": baseline["map50"],
            **shown_box_metrics(truth, detections),
            "test_loss": float(np.mean(CenterNetLoss(reduction=None)(targets, outputs))),
            "test_samples": len(truth),
            "test_boxes": int(sum(len(boxes) for boxes in truth)),
        }

    def headline(self, metrics: dict[str, Any]) -> str:
        return (
            f"mAP@0.5 {metrics['test_map50']:.4f} (mean-box baseline {metrics['test_baseline_map50']:.4f}), "
            f"mean IoU {metrics['test_mean_iou']:.3f}, loss {metrics['test_loss']:.4f}"
        )

    def report(self, metrics: dict[str, Any]) -> str:
        return (
            f"test {self.headline(metrics)} ({metrics['test_samples']} images, {metrics['test_boxes']} boxes)\n"
            f"mAP@0.5:0.95 {metrics['test_map']:.4f}; at score >= {SCORE_THRESHOLD}: precision "
            f"{metrics['test_precision']:.3f}, recall {metrics['test_recall']:.3f}"
        )

    def parity(self, reference: np.ndarray, outputs: np.ndarray, data: DataBundle) -> dict[str, Any]:
        """Max abs difference of the raw maps; Keras's boxes (TensorFlow decoding) against the artifact's
        (the runner's NumPy decoding): mean IoU of matched boxes and the share matched at IoU >= 0.9 (of
        the larger count per image); both mAP@0.5 and the drop."""
        if reference.shape != outputs.shape:
            raise ValueError(f"artifact gives maps of shape {outputs.shape}, Keras {reference.shape}")
        classes, truth = data.info.num_classes, data.labels("test")

        def edge_decode(threshold: float) -> list[Detections]:
            found = decode_centernet(outputs, classes, threshold, NMS_IOU, MAX_DETECTIONS)
            return [Detections.of(image) for image in found]

        keras_boxes, edge_boxes = decode(reference, classes), edge_decode(SCORE_THRESHOLD)
        ious = np.concatenate([matched_ious(k.boxes, e.boxes) for k, e in zip(keras_boxes, edge_boxes)])
        compared = sum(max(len(k.boxes), len(e.boxes)) for k, e in zip(keras_boxes, edge_boxes))
        keras_map = average_precision(truth, decode(reference, classes, score_threshold=RANKING_THRESHOLD))["map50"]
        edge_map = average_precision(truth, edge_decode(RANKING_THRESHOLD))["map50"]
        return {
            "samples": len(truth),
            "max_abs_diff": float(np.max(np.abs(reference - outputs))),
            "boxes": int(compared),
            "mean_box_iou": float(ious.mean()) if len(ious) else 1.0,
            "boxes_matched_iou90": float(np.sum(ious >= PARITY_IOU) / compared) if compared else 1.0,
            "map50": edge_map,
            "keras_map50": keras_map,
            "map50_drop": keras_map - edge_map,
        }


    def preprocessing(
        self, data: DataBundle, input_name: str, input_dtype: str, shape: tuple[int, ...]
    ) -> dict[str, Any]:
        """The base image input, and what the runner's NumPy decoding needs."""
        return {
            **super().preprocessing(data, input_name, input_dtype, shape),
            "output": "centernet",
            "output_stride": OUTPUT_STRIDE,
            "score_threshold": SCORE_THRESHOLD,
            "iou_threshold": NMS_IOU,
            "max_detections": MAX_DETECTIONS,
        }

    def parity_summary(self, measured: dict[str, Any]) -> str:
        return (
            f"max |output diff| {measured['max_abs_diff']:.3g}, boxes matched at IoU >= {PARITY_IOU} "
            f"{measured['boxes_matched_iou90']:.2%} (mean IoU {measured['mean_box_iou']:.3f}), "
            f"mAP@0.5 {measured['map50']:.4f} (Keras {measured['keras_map50']:.4f})"
        )


def plot_detections(
    images: np.ndarray, truth: list[np.ndarray], detections: list[Detections], class_names: tuple[str, ...], path: Path
) -> Path:
    """Images (pixels in [0, 1]) with true boxes (green) and predicted boxes at SCORE_THRESHOLD (red, scored)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kerasdl.evaluation.plots import _save

    columns = min(4, len(images))
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, true_boxes, found in zip(axes.flat, images, truth, detections):
        height, width = image.shape[:2]
        ax.imshow(image)
        shown = found.scores >= SCORE_THRESHOLD
        for box, label, color in [*((b, "", "lime") for b in true_boxes),
                                  *((b, f"{class_names[c]} {s:.2f}", "red")
                                    for b, s, c in zip(found.boxes[shown], found.scores[shown], found.classes[shown]))]:
            x_min, y_min, x_max, y_max = box[:4] * [width, height, width, height]
            ax.add_patch(plt.Rectangle((x_min, y_min), x_max - x_min, y_max - y_min, fill=False, color=color, lw=1.5))
            if label:
                ax.text(x_min, y_min, label, color="white", fontsize=7, backgroundcolor=color, va="bottom")
    fig.suptitle(f"true boxes (green), predicted at score >= {SCORE_THRESHOLD} (red)")
    return _save(fig, path)


DETECTION = register_task(Detection())
