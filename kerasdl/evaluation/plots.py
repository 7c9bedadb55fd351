"""Plots a run leaves in `plots/` (learning curves, confusion matrix, ROC curves) and run comparisons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or assumed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay  # noqa: E402

from kerasdl import files  # noqa: E402


def plot_learning_curves(
    history: list[dict[str, str]], path: Path, metrics: tuple[str, ...] = ("loss", "accuracy")
) -> Path:
    """Each of `metrics` that history.csv has, per epoch, training against validation."""
    epochs = [int(row["epoch"]) + 1 for row in history]
    metrics = [m for m in metrics if history and m in history[0]]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for prefix, label in (("", "train"), ("val_", "validation")):
            if prefix + metric in history[0]:
                ax.plot(epochs, [float(row[prefix + metric]) for row in history], marker="o", label=label)
        ax.set(title=metric, xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def plot_confusion_matrix(matrix: list[list[int]], class_names: list[str], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(class_names), 1 + 0.6 * len(class_names)))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=class_names).plot(ax=ax, colorbar=False)
    ax.set_title("test confusion matrix")
    return _save(fig, path)


def plot_roc_curves(y_true: np.ndarray, probabilities: np.ndarray, class_names: list[str], path: Path) -> Path:
    """One ROC curve for two classes (the second is positive), else one one-vs-rest curve per class."""
    fig, ax = plt.subplots(figsize=(6, 5))
    positives = [1] if len(class_names) == 2 else range(len(class_names))
    for k in positives:
        is_k = np.asarray(y_true) == k
        if is_k.any() and not is_k.all():  # a curve needs both positives and negatives
            RocCurveDisplay.from_predictions(is_k, probabilities[:, k], name=class_names[k], ax=ax)
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="chance")
    ax.set(
        title="test ROC" if len(class_names) == 2 else "test ROC, one class vs rest",
        xlabel="false positive rate",
        ylabel="true positive rate",
    )
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_validation_curves(histories: dict[str, list[dict[str, str]]], path: Path) -> Path:
    """Validation loss and accuracy per epoch of several runs (e.g. one per optimizer) on shared axes."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("val_loss", "val_accuracy")):
        for label, history in histories.items():
            ax.plot([int(row["epoch"]) + 1 for row in history], [float(row[metric]) for row in history], label=label)
        ax.set(title=metric.replace("_", " "), xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig: plt.Figure, path: Path, **options: Any) -> Path:
    """Write `fig` to `path` crash-safely (the temporary keeps the suffix, which sets the format) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.replacing(path) as temporary:
        fig.savefig(temporary, **{"dpi": 100, **options})
    plt.close(fig)
    return path
