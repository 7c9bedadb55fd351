"""Evaluate a model on a data set's test split, and a finished run directory on any compatible data.

`evaluate_model` gives the metrics that `metrics.json` holds (and, given a plots folder, draws the
confusion matrix and ROC curves); `format_report` turns them into the text that `kerasdl train`,
`kerasdl evaluate` and `kerasdl tune` print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasdl.data import DataBundle
from kerasdl.errors import KerasdlError
from kerasdl.evaluation.metrics import TOP_K, classification_metrics, predict_logits, probabilities
from kerasdl.evaluation.plots import plot_confusion_matrix, plot_roc_curves
from kerasdl.evaluation.table import format_table
from kerasdl.registry import model_spec
from kerasdl.training.run_dir import RunDirectory
from kerasdl.training.train import load_for

PREDICT_BATCH = 256
VISION_SAMPLES = 200  # test images the misclassified grid and Grad-CAM choose from
MAX_PRINTED_MATRIX = 20  # classes; a larger confusion matrix is only in metrics.json and the plot


def evaluate_model(
    model: keras.Model, data: DataBundle, plots_dir: Path | None = None, plot_suffix: str = ""
) -> dict[str, Any]:
    """Test metrics of `model` on `data`, after checking that the data fits the model's input.

    With `plots_dir`, also writes `confusion_matrix{plot_suffix}.png` and `roc_curve{plot_suffix}.png` there.
    """
    expected = tuple(model.input_shape[1:])
    if expected != data.info.input_shape:
        raise KerasdlError(
            f"model expects inputs of shape {expected} but data set {data.info.name!r} gives {data.info.input_shape}"
        )
    y = data.labels("test")
    logits = predict_logits(model, data.dataset("test", PREDICT_BATCH))
    metrics = {"data": data.info.name, **classification_metrics(y, logits, data.info.class_names)}
    if plots_dir is not None:
        names = metrics["class_names"]
        plot_confusion_matrix(metrics["confusion_matrix"], names, plots_dir / f"confusion_matrix{plot_suffix}.png")
        plot_roc_curves(y, probabilities(logits), names, plots_dir / f"roc_curve{plot_suffix}.png")
        if len(data.info.input_shape) == 3:  # images: show what the model gets wrong and where it looks
            _vision_plots(model, data, y, logits, plots_dir, plot_suffix)
    return metrics


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


def evaluate_run(run_dir: str, data_name: str | None = None) -> tuple[dict[str, Any], RunDirectory]:
    """Reload a run's model.keras (safe mode, no custom objects), evaluate it, write evaluation_<data>.json."""
    run = RunDirectory(run_dir)
    model_path = run.require_model()
    config = run.read_config()
    model_spec(config["model"])  # imports the model modules, so our layers deserialize
    model = keras.saving.load_model(model_path, safe_mode=True)
    data = load_for(config, data_name)
    metrics = evaluate_model(model, data, run.plots_dir, plot_suffix=f"_{data.info.name}")
    run.write_json(run.path / f"evaluation_{data.info.name}.json", metrics)
    return metrics, run


def format_report(metrics: dict[str, Any]) -> str:
    """Headline metrics, the per-class table with macro and weighted averages, and the confusion matrix."""
    headline = [f"accuracy {metrics['test_accuracy']:.4f}", f"loss {metrics['test_loss']:.4f}"]
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
