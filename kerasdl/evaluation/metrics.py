"""Test-set metrics of a classifier, computed with Keras and scikit-learn rather than by hand.

Everything is derived from integer labels and the model's logits: accuracy and cross-entropy, the
confusion matrix, per-class precision / recall / F1 with their macro and support-weighted averages,
ROC-AUC (binary, or one-vs-rest per class for more classes), and top-k accuracy when there are enough
classes for "in the k best guesses" to mean something.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras
import numpy as np
from scipy.special import softmax
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    top_k_accuracy_score,
)

TOP_K = (3, 5)  # reported only with more than 5 classes; with fewer, top-5 is always 1


def predict_logits(model: keras.Model, x: Any, batch_size: int = 256) -> np.ndarray:
    """The model's outputs for an array of inputs or a batched tf.data.Dataset of (inputs, labels)."""
    return np.asarray(model.predict(x, batch_size=None if hasattr(x, "element_spec") else batch_size, verbose=0))


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax in float64, so each row sums to 1 within scikit-learn's tolerance."""
    return softmax(np.asarray(logits, dtype=np.float64), axis=1)


def classification_metrics(y_true: np.ndarray, logits: np.ndarray, class_names: tuple[str, ...]) -> dict[str, Any]:
    """All test metrics of `logits` against integer labels, as JSON-ready values (undefined ones are None)."""
    labels = list(range(len(class_names)))
    predicted = logits.argmax(axis=1)
    probs = probabilities(logits)
    loss = keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, predicted, labels=labels, zero_division=0
    )
    overall_auc, class_auc = _roc_auc(y_true, probs, labels)
    metrics = {
        "test_accuracy": float(accuracy_score(y_true, predicted)),
        "test_loss": float(np.mean(keras.ops.convert_to_numpy(loss))),
        "test_samples": int(len(y_true)),
        "test_roc_auc": overall_auc,
        "class_names": list(class_names),
        "confusion_matrix": confusion_matrix(y_true, predicted, labels=labels).tolist(),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
                "roc_auc": class_auc[i],
            }
            for i, name in enumerate(class_names)
        },
        **{f"{average}_avg": _averages(y_true, predicted, labels, average) for average in ("macro", "weighted")},
    }
    if len(labels) > max(TOP_K):
        for k in TOP_K:
            metrics[f"test_top{k}_accuracy"] = float(top_k_accuracy_score(y_true, logits, k=k, labels=labels))
    return metrics


def _averages(y_true: np.ndarray, predicted: np.ndarray, labels: list[int], average: str) -> dict[str, float]:
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, predicted, labels=labels, average=average, zero_division=0
    )
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def _roc_auc(y_true: np.ndarray, probs: np.ndarray, labels: list[int]) -> tuple[float | None, list[float | None]]:
    """(overall, per class). Binary: the AUC of the positive class's probability, which is also each
    class's one-vs-rest AUC. More classes: one-vs-rest AUC per class and their macro mean. None where
    undefined (a class absent from `y_true`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # undefined AUCs become None below
        try:
            if len(labels) == 2:
                overall = roc_auc_score(y_true, probs[:, 1])
                per_class = [overall, overall]
            else:
                overall = roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=labels)
                per_class = roc_auc_score(y_true, probs, multi_class="ovr", average=None, labels=labels)
        except ValueError:  # scikit-learn refuses when y_true holds a single class
            return None, [None] * len(labels)
    return _finite_or_none(overall), [_finite_or_none(auc) for auc in per_class]


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
