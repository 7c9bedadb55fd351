"""A single neuron, and the perceptron: a neuron with a step activation and its own learning rule."""

from __future__ import annotations

from typing import Callable

import numpy as np

from kerasdl.scratch.activations import sigmoid, step


class Neuron:
    """output = activation(w . x + b): weigh the inputs, add the bias, squash (sigmoid by default)."""

    def __init__(self, weights: np.ndarray, bias: float, activation: Callable[[np.ndarray], np.ndarray] = sigmoid):
        self.weights, self.bias, self.activation = np.asarray(weights, dtype=float), float(bias), activation

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.activation(np.asarray(x, dtype=float) @ self.weights + self.bias)


class Perceptron:
    """Rosenblatt's perceptron: y_hat = step(w . x + b), trained one sample at a time by
    w <- w + lr (y - y_hat) x;  b <- b + lr (y - y_hat).

    A wrong answer moves the decision line towards the misclassified point; a right one changes
    nothing. If a line separating the classes exists (AND, OR) the rule finds one in finitely many
    updates; if not (XOR), it never settles. `errors_` counts mistakes per epoch.
    """

    def __init__(self, learning_rate: float = 0.1, max_epochs: int = 100, seed: int | None = 0):
        self.learning_rate, self.max_epochs, self.seed = learning_rate, max_epochs, seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> "Perceptron":
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        rng = np.random.default_rng(self.seed)
        self.coef_ = rng.normal(0.0, 0.01, x.shape[1])
        self.intercept_ = 0.0
        self.errors_: list[int] = []
        for _ in range(self.max_epochs):
            errors = 0
            for xi, yi in zip(x, y):
                delta = yi - self.predict(xi[None])[0]
                self.coef_ += self.learning_rate * delta * xi
                self.intercept_ += self.learning_rate * delta
                errors += int(delta != 0)
            self.errors_.append(errors)
            if errors == 0:
                break
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return step(np.asarray(x, dtype=float) @ self.coef_ + self.intercept_)

    def score(self, x: np.ndarray, y: np.ndarray) -> float:
        """Accuracy on (x, y)."""
        return float(np.mean(self.predict(x) == np.asarray(y)))
