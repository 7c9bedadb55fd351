"""Loss functions with their gradients, safe on extreme inputs (no overflow, no log(0)).

Each loss maps (y_true, y_pred) to the mean loss over the batch and, through `gradient`, to
dL/d(y_pred) of that mean. With `from_logits=True` the cross-entropies take raw scores and fold the
sigmoid or softmax into the loss: the combined gradient is simply (probability - target) / n, and
log-sum-exp keeps every intermediate finite even for logits of +-1000. With probabilities, the
inputs are clipped to [epsilon, 1 - epsilon] like Keras does, so log never sees 0.
"""

from __future__ import annotations

import numpy as np

from kerasdl.scratch.activations import sigmoid, softmax

EPSILON = 1e-7  # Keras's backend epsilon


def one_hot(labels: np.ndarray, n_classes: int, dtype: type = np.float64) -> np.ndarray:
    """Integer labels (n,) -> one-hot rows (n, n_classes)."""
    return np.eye(n_classes, dtype=dtype)[np.asarray(labels, dtype=int)]


class MeanSquaredError:
    """mean((y_pred - y_true)^2) over every element; the regression loss of the curriculum."""

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(np.mean(np.square(y_pred - y_true)))

    def gradient(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        return 2.0 * (y_pred - y_true) / y_pred.size


class BinaryCrossEntropy:
    """-mean(y log p + (1 - y) log(1 - p)), the log loss for yes/no targets in {0, 1}.

    From a logit z, log p = -softplus(-z) and log(1 - p) = -softplus(z), so the loss per element
    is max(z, 0) - z y + log(1 + e^-|z|): exp only ever sees a non-positive argument.
    """

    def __init__(self, from_logits: bool = False):
        self.from_logits = from_logits

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        y_true = np.reshape(y_true, y_pred.shape)
        if self.from_logits:
            z = y_pred
            return float(np.mean(np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z)))))
        p = np.clip(y_pred, EPSILON, 1 - EPSILON)
        return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))

    def gradient(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        y_true = np.reshape(y_true, y_pred.shape)
        if self.from_logits:
            return (sigmoid(y_pred) - y_true) / y_pred.size
        p = np.clip(y_pred, EPSILON, 1 - EPSILON)
        inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)  # clipping has zero slope outside
        return inside * (p - y_true) / (p * (1 - p)) / y_pred.size


class CategoricalCrossEntropy:
    """-mean over rows of sum_k y_k log q_k, for one-hot (or integer) targets and class scores.

    From logits, log q = z - logsumexp(z), with the row max subtracted before exp.
    """

    def __init__(self, from_logits: bool = False):
        self.from_logits = from_logits

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        y_true = self._targets(y_true, y_pred)
        if self.from_logits:
            shifted = y_pred - y_pred.max(axis=-1, keepdims=True)
            log_q = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        else:
            log_q = np.log(np.clip(y_pred, EPSILON, 1 - EPSILON))
        return float(-np.mean((y_true * log_q).sum(axis=-1)))

    def gradient(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        y_true = self._targets(y_true, y_pred)
        n = y_pred.shape[0]
        if self.from_logits:
            return (softmax(y_pred) - y_true) / n
        inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)
        return -(inside * y_true) / np.clip(y_pred, EPSILON, 1 - EPSILON) / n

    @staticmethod
    def _targets(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """Integer labels become one-hot rows, so both label forms are accepted."""
        y_true = np.asarray(y_true)
        return one_hot(y_true, y_pred.shape[-1]) if y_true.ndim == y_pred.ndim - 1 else y_true
