"""Layers with a forward pass and a hand-written backward pass: Dense, inverted Dropout, BatchNormalization.

The contract every layer keeps: `forward(x, training)` caches what the backward pass needs and
returns the output; `backward(grad)` receives dL/d(output), stores dL/d(parameter) in `grads` under
the same names as `params`, and returns dL/d(input) for the layer below.
"""

from __future__ import annotations

import numpy as np

from kerasdl.scratch.regularizers import L1L2


class Layer:
    """A differentiable step of a network; a layer without parameters leaves `params` empty."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def penalty(self) -> float:
        """This layer's contribution to the loss from weight penalties (none by default)."""
        return 0.0


class Dense(Layer):
    """y = x @ kernel + bias: every output is one neuron's weighted sum of every input plus its bias.

    The kernel starts Glorot-uniform (Keras's default) so activations keep a similar scale from layer
    to layer; the bias (if `use_bias`) starts at zero. `regularizer` adds a weight penalty on the kernel.
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        use_bias: bool = True,
        regularizer: L1L2 | None = None,
        seed: int | np.random.Generator | None = None,
        dtype: type = np.float64,
    ):
        super().__init__()
        limit = np.sqrt(6.0 / (n_inputs + n_outputs))
        rng = np.random.default_rng(seed)
        self.params["kernel"] = rng.uniform(-limit, limit, (n_inputs, n_outputs)).astype(dtype)
        if use_bias:
            self.params["bias"] = np.zeros(n_outputs, dtype=dtype)
        self.regularizer = regularizer

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._x = x
        y = x @ self.params["kernel"]
        return y + self.params["bias"] if "bias" in self.params else y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        kernel = self.params["kernel"]
        self.grads["kernel"] = self._x.T @ grad
        if self.regularizer is not None:
            self.grads["kernel"] += self.regularizer.gradient(kernel)
        if "bias" in self.params:
            self.grads["bias"] = grad.sum(axis=0)
        return grad @ kernel.T

    def penalty(self) -> float:
        return 0.0 if self.regularizer is None else self.regularizer(self.params["kernel"])


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability `rate` and scale survivors by
    1 / (1 - rate), so the expected activation is unchanged and inference needs no rescaling."""

    def __init__(self, rate: float, seed: int | np.random.Generator | None = None):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = rate
        self.rng = np.random.default_rng(seed)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        self._mask = (self.rng.random(x.shape) >= self.rate) / (1.0 - self.rate)
        return x * self._mask

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return grad if self._mask is None else grad * self._mask


class BatchNormalization(Layer):
    """Normalize each feature to zero mean and unit variance, then scale by gamma and shift by beta.

    Training normalizes with the batch's own statistics and folds them into running averages;
    inference uses the running averages, so a prediction does not depend on its batch-mates.
    `momentum` and `epsilon` default to Keras's (0.99, 1e-3).
    """

    def __init__(self, n_features: int, momentum: float = 0.99, epsilon: float = 1e-3, dtype: type = np.float64):
        super().__init__()
        self.momentum, self.epsilon = momentum, epsilon
        self.params["gamma"] = np.ones(n_features, dtype=dtype)
        self.params["beta"] = np.zeros(n_features, dtype=dtype)
        self.moving_mean = np.zeros(n_features, dtype=dtype)
        self.moving_variance = np.ones(n_features, dtype=dtype)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if training:
            mean, variance = x.mean(axis=0), x.var(axis=0)
            self.moving_mean = self.momentum * self.moving_mean + (1 - self.momentum) * mean
            self.moving_variance = self.momentum * self.moving_variance + (1 - self.momentum) * variance
        else:
            mean, variance = self.moving_mean, self.moving_variance
        self._training = training
        self._inv_std = 1.0 / np.sqrt(variance + self.epsilon)
        self._x_hat = (x - mean) * self._inv_std
        return self.params["gamma"] * self._x_hat + self.params["beta"]

    def backward(self, grad: np.ndarray) -> np.ndarray:
        self.grads["gamma"] = (grad * self._x_hat).sum(axis=0)
        self.grads["beta"] = grad.sum(axis=0)
        grad_x_hat = grad * self.params["gamma"]
        if not self._training:  # fixed statistics: normalization is just a per-feature affine map
            return grad_x_hat * self._inv_std
        # In training the mean and variance depend on every x in the batch; these two terms carry
        # the gradient through them (the derivation simplifies dL/dmu and dL/dvar into batch means).
        return self._inv_std * (
            grad_x_hat
            - grad_x_hat.mean(axis=0)
            - self._x_hat * (grad_x_hat * self._x_hat).mean(axis=0)
        )
