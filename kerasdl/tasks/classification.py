"""Classification: cross-entropy on logits, accuracy, the per-class report and plots, top-1 parity."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasdl.data import DataBundle
from kerasdl.evaluation.metrics import TOP_K, classification_metrics, probabilities
from kerasdl.errors import KerasdlError
from kerasdl.evaluation.table import format_table
from kerasdl.tasks.base import Bound, ParityTargets, Task, argmax_accuracy, argmax_parity, predict, register_task
from kerasdl.tasks.reconstruction import SUBSET_SEED, subset

VISION_SAMPLES = 200  # test images the misclassified grid and Grad-CAM choose from
MAX_PRINTED_MATRIX = 20  # classes; a larger confusion matrix is only in metrics.json and the plot
FLOAT_TARGETS = ParityTargets((Bound("max_abs_diff", 1e-4), Bound("top1_agreement", 1.0, upper=False)))
QUANTIZED_TARGETS = ParityTargets((Bound("accuracy_drop", 0.01),))


class Classification(Task):
    name = "classification"
    float_targets = FLOAT_TARGETS
    quantized_targets = QUANTIZED_TARGETS
    main_metric = "test_accuracy"
    higher_is_better = True
    objective = "val_accuracy"
    objective_mode = "max"
    log_names = ("accuracy",)

    def adapt_data(self, data: DataBundle, params: dict[str, Any]) -> DataBundle:
        """Images and arrays: `--train-samples` trains on a seeded random subset of that many training samples.
        Text: `--sequence-length` pads or truncates every text to that many token ids."""
        from kerasdl.data.text import TextBundle

        if "train_samples" in params:
            data = train_subset(data, params["train_samples"])
        if "sequence_length" not in params:
            return data
        if not isinstance(data, TextBundle):
            raise KerasdlError(f"--sequence-length applies to text; {data.info.name!r} is not text")
        return data.with_tokenizer(dataclasses.replace(data.tokenizer, sequence_length=params["sequence_length"]))

    def loss(self) -> keras.losses.Loss:
        """Cross-entropy on logits, as the curriculum's nn.CrossEntropyLoss (multi-class, not binary)."""
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self) -> list[Any]:
        return ["accuracy"]

    def batch_logs(self, targets, outputs):
        return {"accuracy": argmax_accuracy(targets, outputs)}

    def evaluate(self, model, data: DataBundle, params, plots_dir: Path | None, suffix: str = "") -> dict[str, Any]:
        """Accuracy, loss, per-class precision/recall/F1, ROC-AUC, confusion matrix; with `plots_dir` the
        confusion matrix and ROC curves, for images misclassified samples, filters and Grad-CAM, and for a
        Transformer on text its attention map."""
        from kerasdl.data.text import TextBundle
        from kerasdl.evaluation.attention_maps import write_attention_maps
        from kerasdl.evaluation.plots import plot_confusion_matrix, plot_roc_curves

        y = data.labels("test")
        logits = predict(model, data.dataset("test", 256))
        metrics = classification_metrics(y, logits, data.info.class_names)
        if plots_dir is not None:
            names = metrics["class_names"]
            plot_confusion_matrix(metrics["confusion_matrix"], names, plots_dir / f"confusion_matrix{suffix}.png")
            plot_roc_curves(y, probabilities(logits), names, plots_dir / f"roc_curve{suffix}.png")
            if len(data.info.input_shape) == 3:  # images: show what the model gets wrong and where it looks
                _vision_plots(model, data, y, logits, plots_dir, suffix)
            if isinstance(data, TextBundle):  # text: where a Transformer's heads look (no plot for other models)
                write_attention_maps(model, data.texts["test"], data.ids("test"), data.info.vocabulary, names,
                                     plots_dir, suffix)
        return metrics

    def headline(self, metrics: dict[str, Any]) -> str:
        return f"accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f}"

    def report(self, metrics: dict[str, Any]) -> str:
        """Headline metrics, the per-class table with macro and weighted averages, and the confusion matrix."""
        headline = [self.headline(metrics)]
        headline += [f"top-{k} {metrics[f'test_top{k}_accuracy']:.4f}" for k in TOP_K if f"test_top{k}_accuracy" in metrics]
        if metrics["test_roc_auc"] is not None:
            kind = "" if len(metrics["class_names"]) == 2 else " (one-vs-rest, macro)"
            headline.append(f"ROC-AUC{kind} {metrics['test_roc_auc']:.4f}")
        rows = [{"class": name, **values} for name, values in metrics["per_class"].items()]
        rows += [{"class": f"{average} avg", **metrics[f"{average}_avg"]} for average in ("macro", "weighted")]
        lines = [f"test {', '.join(headline)} ({metrics['test_samples']} samples)", format_table(rows)]
        if len(metrics["class_names"]) <= MAX_PRINTED_MATRIX:
            matrix = [{"true \\ predicted": name, **dict(zip(metrics["class_names"], counts))}
                      for name, counts in zip(metrics["class_names"], metrics["confusion_matrix"])]
            lines += ["confusion matrix:", format_table(matrix)]
        return "\n".join(lines)

    def parity(self, reference: np.ndarray, outputs: np.ndarray, data: DataBundle) -> dict[str, Any]:
        """Max abs logit difference, top-1 agreement, and both test accuracies (artifact and Keras)."""
        return argmax_parity(reference, outputs, data.labels("test"), "top1_agreement")

    def parity_summary(self, measured: dict[str, Any]) -> str:
        return (
            f"max |logit diff| {measured['max_abs_diff']:.3g}, top-1 agreement {measured['top1_agreement']:.2%}, "
            f"accuracy {measured['accuracy']:.4f} (Keras {measured['keras_accuracy']:.4f})"
        )


def _vision_plots(model, data: DataBundle, y, logits, plots_dir: Path, suffix: str) -> None:
    """Misclassified test images, first-layer filters and Grad-CAM, on a fixed random sample of test images
    (a photo folder lists its classes in order: the first images would all be of one class)."""
    from kerasdl.evaluation.vision import write_vision_plots

    chosen = data.sample_indices("test", VISION_SAMPLES, seed=0)
    inputs = data.take("test", VISION_SAMPLES, seed=0)
    pixels = (inputs - data.info.offset) / data.info.scale / data.info.pixel_max  # back to [0, 1] for display
    write_vision_plots(
        model, np.clip(pixels, 0.0, 1.0), inputs, y[chosen], logits[chosen], list(data.info.class_names), plots_dir,
        suffix,
    )


CLASSIFICATION = register_task(Classification())


def train_subset(data: DataBundle, count: int) -> DataBundle:
    """The bundle with `count` training samples drawn at random (seeded; validation and test whole): quick runs
    and tests on a fixed budget."""
    total = data.info.split_sizes["train"]
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= total:
        raise KerasdlError(f"train_samples must be a whole number from 1 to {total} (the training samples), got {count!r}")
    chosen = np.random.default_rng(SUBSET_SEED).choice(total, count, replace=False)
    return subset(data, {"train": np.sort(chosen)})
