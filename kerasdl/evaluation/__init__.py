"""Evaluation: metrics on held-out data, the plots a run leaves behind, and printed reports and tables."""

from kerasdl.evaluation.metrics import classification_metrics, predict_logits, probabilities
from kerasdl.evaluation.plots import (
    plot_confusion_matrix,
    plot_learning_curves,
    plot_roc_curves,
    plot_validation_curves,
)
from kerasdl.evaluation.table import format_table, save_table

__all__ = [
    "classification_metrics",
    "format_table",
    "plot_confusion_matrix",
    "plot_learning_curves",
    "plot_roc_curves",
    "plot_validation_curves",
    "predict_logits",
    "probabilities",
    "save_table",
]
