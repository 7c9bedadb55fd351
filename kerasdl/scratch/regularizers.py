"""L1 and L2 weight penalties: a term added to the loss and its gradient added to the weight's gradient."""

from __future__ import annotations

import numpy as np


class L1L2:
    """penalty(w) = l1 * sum|w| + l2 * sum w^2, the same penalty as `keras.regularizers.L1L2`.

    L1 pushes weights to exactly zero (its gradient l1 * sign(w) has constant size); L2 shrinks large
    weights hardest. The gradient of l2 * w^2 is 2 * l2 * w: the curriculum's update writes
    lambda * w^2 in that place, which is the penalty itself, not its derivative.
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1, self.l2 = l1, l2

    def __call__(self, weights: np.ndarray) -> float:
        return float(self.l1 * np.abs(weights).sum() + self.l2 * np.square(weights).sum())

    def gradient(self, weights: np.ndarray) -> np.ndarray:
        return self.l1 * np.sign(weights) + 2.0 * self.l2 * weights
