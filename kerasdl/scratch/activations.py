"""Activation functions and their derivatives, as layers whose backward applies the chain rule.

Each activation is a pure function (`function`) plus its derivative (`derivative`), both of the
pre-activation z. As a layer, forward remembers z and backward multiplies the incoming gradient by
the derivative: dL/dz = dL/da * da/dz. Softmax mixes a row's entries, so its derivative is a Jacobian
matrix per row and its backward is a vector-Jacobian product instead of an elementwise product.
"""

from __future__ import annotations

import numpy as np

from kerasdl.scratch.layers import Layer


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z) without overflow: exp is only ever taken of -|z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise probabilities; subtracting the row max leaves the result unchanged and stops exp overflowing."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def step(z: np.ndarray) -> np.ndarray:
    """The perceptron's activation: 1 where z >= 0, else 0. Its derivative is 0 almost everywhere,
    which is why a perceptron learns by its own rule rather than by gradient descent."""
    return (z >= 0).astype(z.dtype)


class Activation(Layer):
    """An elementwise activation used as a layer; subclasses define `function` and `derivative`."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._z = x
        return self.function(x)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad * self.derivative(self._z)

    @staticmethod
    def function(z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def derivative(z: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Linear(Activation):
    """The identity: a layer whose output is its weighted sum (regression outputs, logits)."""

    @staticmethod
    def function(z: np.ndarray) -> np.ndarray:
        return z

    @staticmethod
    def derivative(z: np.ndarray) -> np.ndarray:
        return np.ones_like(z)


class Sigmoid(Activation):
    """Squashes to (0, 1); its slope s(1 - s) is at most 0.25, the root of vanishing gradients."""

    function = staticmethod(sigmoid)

    @staticmethod
    def derivative(z: np.ndarray) -> np.ndarray:
        s = sigmoid(z)
        return s * (1.0 - s)


class ReLU(Activation):
    """max(0, z): slope 1 for positive inputs (gradients pass unshrunk), 0 otherwise ("dead" units)."""

    @staticmethod
    def function(z: np.ndarray) -> np.ndarray:
        return np.maximum(z, 0.0)

    @staticmethod
    def derivative(z: np.ndarray) -> np.ndarray:
        return (z > 0).astype(z.dtype)


class Tanh(Activation):
    """Zero-centred squashing to (-1, 1) with slope 1 - tanh^2 (at most 1, four times sigmoid's)."""

    function = staticmethod(np.tanh)

    @staticmethod
    def derivative(z: np.ndarray) -> np.ndarray:
        return 1.0 - np.tanh(z) ** 2


class Softmax(Activation):
    """Turns each row of scores into probabilities that sum to 1 (multi-class outputs)."""

    function = staticmethod(softmax)

    @staticmethod
    def derivative(z: np.ndarray) -> np.ndarray:
        """The Jacobian per row, shape (batch, k, k): ds_i/dz_j = s_i (delta_ij - s_j)."""
        s = softmax(z)
        return s[..., :, None] * (np.eye(s.shape[-1]) - s[..., None, :])

    def backward(self, grad: np.ndarray) -> np.ndarray:
        # g @ J without building J: s * (g - <g, s>), O(k) per row instead of O(k^2).
        s = softmax(self._z)
        return s * (grad - (grad * s).sum(axis=-1, keepdims=True))


ACTIVATIONS: dict[str, type[Activation]] = {
    "linear": Linear,
    "sigmoid": Sigmoid,
    "relu": ReLU,
    "tanh": Tanh,
    "softmax": Softmax,
}
