"""Gradient checking: compare a hand-written backward pass with central finite differences.

(f(w + h) - f(w - h)) / 2h approximates df/dw with error O(h^2); in float64 with h = 1e-6 that is
far below the 1e-6 relative error a correct backward pass reaches, while a wrong one misses by
orders of magnitude.
"""

from __future__ import annotations

import copy
from typing import Callable, Protocol

import numpy as np

from kerasdl.scratch.losses import BinaryCrossEntropy, CategoricalCrossEntropy, MeanSquaredError


class Differentiable(Protocol):
    """Anything with the layer contract: a Layer, or a whole MLP."""

    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray: ...
    def backward(self, grad: np.ndarray) -> np.ndarray: ...
    def penalty(self) -> float: ...


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """df/dx by central differences, where `f()` reads `x`; x is nudged in place and restored."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        original = x[i]
        x[i] = original + h
        plus = f()
        x[i] = original - h
        minus = f()
        x[i] = original
        grad[i] = (plus - minus) / (2 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / (||a|| + ||b||): scale-free, and 0 when both are exactly zero."""
    scale = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


def check_layer(layer: Differentiable, x: np.ndarray, training: bool = True, seed: int = 0) -> dict[str, float]:
    """Relative error of backward's input gradient ("input") and of each parameter gradient.

    The scalar checked is sum(output * R) + penalty for a fixed random R, whose gradient with respect
    to the output is R. Every evaluation runs on a fresh copy of the layer, so random dropout masks
    and running statistics are the same in each one and the function being differentiated is fixed.
    """
    x = np.array(x, dtype=np.float64)
    projection = np.random.default_rng(seed).standard_normal(copy.deepcopy(layer).forward(x, training).shape)

    def objective() -> float:
        return float((copy.deepcopy(layer).forward(x, training) * projection).sum() + layer.penalty())

    probe = copy.deepcopy(layer)
    probe.forward(x, training)
    errors = {"input": relative_error(probe.backward(projection).reshape(x.shape), numerical_gradient(objective, x))}
    for name, param in layer.params.items():
        errors[name] = relative_error(probe.grads[name], numerical_gradient(objective, param))
    return errors


def check_loss(
    loss: MeanSquaredError | BinaryCrossEntropy | CategoricalCrossEntropy, y_true: np.ndarray, y_pred: np.ndarray
) -> float:
    """Relative error of `loss.gradient` against finite differences of `loss` with respect to y_pred."""
    y_pred = np.array(y_pred, dtype=np.float64)
    return relative_error(loss.gradient(y_true, y_pred), numerical_gradient(lambda: loss(y_true, y_pred), y_pred))
