"""Optimizers: each `step` updates parameters in place from their gradients.

The update rules are Keras 3's, term for term (same defaults, same epsilon placement), so one step
here equals one step of the Keras optimizer with the same hyperparameters. Where the curriculum
writes a rule differently, the class docstring says how the two relate.
"""

from __future__ import annotations

import numpy as np


class Optimizer:
    """Keeps per-parameter state (slots) and the step count; subclasses define `update`."""

    slot_names: tuple[str, ...] = ()

    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate
        self.iterations = 0
        self._slots: list[dict[str, np.ndarray]] = []

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """Apply one update to every parameter (in place, so layers see the new values)."""
        if not self._slots:
            self._slots = [{name: np.zeros_like(p) for name in self.slot_names} for p in params]
        self.iterations += 1
        for param, grad, slots in zip(params, grads, self._slots):
            param -= self.update(grad, slots)

    def update(self, grad: np.ndarray, slots: dict[str, np.ndarray]) -> np.ndarray:
        """The amount to subtract from a parameter; may update its slots in place."""
        raise NotImplementedError


class GradientDescent(Optimizer):
    """w <- w - learning_rate * g: a step down the slope (Keras `SGD` without momentum)."""

    def __init__(self, learning_rate: float = 0.01):
        super().__init__(learning_rate)

    def update(self, grad: np.ndarray, slots: dict[str, np.ndarray]) -> np.ndarray:
        return self.learning_rate * grad


class Momentum(Optimizer):
    """Gradient descent with momentum, in Keras `SGD(momentum=...)` form: v <- m v - lr g; w <- w + v.

    The curriculum writes momentum as an exponentially weighted moving average of gradients,
    v <- beta v + (1 - beta) g; w <- w - lr v. Unrolled, the Keras velocity is -lr * sum m^k g_{t-k}
    and the EWMA step is lr (1 - beta) * sum beta^k g_{t-k}: the same trajectory when m = beta and
    the Keras learning rate is the curriculum's times (1 - beta). Both smooth the gradient over
    roughly 1 / (1 - beta) recent steps, which damps zig-zags across narrow valleys.
    """

    slot_names = ("velocity",)

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.9):
        super().__init__(learning_rate)
        self.momentum = momentum

    def update(self, grad: np.ndarray, slots: dict[str, np.ndarray]) -> np.ndarray:
        velocity = slots["velocity"]
        velocity *= self.momentum
        velocity -= self.learning_rate * grad
        return -velocity


class RMSProp(Optimizer):
    """Divide each step by a running root-mean-square of that parameter's gradients (Keras `RMSprop`).

    s <- rho s + (1 - rho) g^2;  w <- w - lr g / sqrt(s + epsilon), epsilon inside the root as in
    Keras and in the curriculum's second formula. Parameters with large, noisy gradients take smaller
    steps. The curriculum suggests rho = 0.999; Keras's default, used here, is 0.9.
    """

    slot_names = ("mean_square",)

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, epsilon: float = 1e-7):
        super().__init__(learning_rate)
        self.rho, self.epsilon = rho, epsilon

    def update(self, grad: np.ndarray, slots: dict[str, np.ndarray]) -> np.ndarray:
        mean_square = slots["mean_square"]
        mean_square *= self.rho
        mean_square += (1 - self.rho) * np.square(grad)
        return self.learning_rate * grad / np.sqrt(mean_square + self.epsilon)


class Adam(Optimizer):
    """Momentum and RMSProp together, with bias correction for their zero starting values (Keras `Adam`).

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  at step t,
    w <- w - alpha_t m / (sqrt(v) + epsilon) with alpha_t = lr sqrt(1 - b2^t) / (1 - b1^t).
    This is Keras's (and the Adam paper's "efficient") form of the textbook
    w <- w - lr m_hat / (sqrt(v_hat) + epsilon), m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t);
    the two differ only in where epsilon is scaled. (The curriculum's one-line formula divides the
    raw moving average by sqrt(v + epsilon) and leaves out both corrections.)
    """

    slot_names = ("m", "v")

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7):
        super().__init__(learning_rate)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def update(self, grad: np.ndarray, slots: dict[str, np.ndarray]) -> np.ndarray:
        m, v = slots["m"], slots["v"]
        m += (1 - self.beta_1) * (grad - m)
        v += (1 - self.beta_2) * (np.square(grad) - v)
        t = self.iterations
        alpha = self.learning_rate * np.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        return alpha * m / (np.sqrt(v) + self.epsilon)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "gd": GradientDescent,
    "momentum": Momentum,
    "rmsprop": RMSProp,
    "adam": Adam,
}
