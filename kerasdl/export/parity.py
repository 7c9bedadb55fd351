"""How close an artifact's logits are to the Keras model's on held-out data."""

from __future__ import annotations

import numpy as np


def parity(reference: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Max abs logit difference, top-1 agreement, and both test accuracies (artifact and Keras)."""
    if reference.shape != logits.shape:
        raise ValueError(f"artifact gives logits of shape {logits.shape}, Keras {reference.shape}")
    predicted, expected = logits.argmax(axis=1), reference.argmax(axis=1)
    return {
        "samples": int(len(labels)),
        "max_abs_diff": float(np.max(np.abs(reference - logits))),
        "top1_agreement": float(np.mean(predicted == expected)),
        "accuracy": float(np.mean(predicted == labels)),
        "keras_accuracy": float(np.mean(expected == labels)),
    }
