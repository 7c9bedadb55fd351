"""Stage 2 in TensorFlow: tensors, derivatives with `tf.GradientTape`, and gradient descent by hand.

The curriculum teaches these with PyTorch (`torch.tensor`, `requires_grad`, `.backward()`). The
TensorFlow counterparts: tensors are immutable (`tf.Variable` is the mutable, trainable kind), a
`tf.GradientTape` records operations on watched tensors and `tape.gradient` replays them backwards,
and an update is an explicit `variable.assign_sub(learning_rate * gradient)`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

# The lesson's matrix product: a 3x3 table multiplied by a 3x3 table of factors.
PRICES = [[100.0, 50.0, 30.0], [80.0, 70.0, 20.0], [60.0, 40.0, 90.0]]
FACTORS = [[1.15, 1.05, 0.85], [1.05, 1.02, 1.1], [1.1, 1.0, 0.9]]
BONUS_FEATURES = ("performance", "years_of_experience", "projects_completed")


# --- Tensors --------------------------------------------------------------------------------------


def tensors_by_rank() -> dict[str, tf.Tensor]:
    """One tensor of each kind the lesson names, keyed by it: rank 0 to 3."""
    return {
        "scalar": tf.constant(9),
        "vector": tf.constant([100, 23, 45]),  # revenue
        "matrix": tf.constant([[200, 220], [150, 180], [300, 330]]),  # units
        "3-D": tf.reshape(tf.range(12), (2, 2, 3)),  # a 2x2 image with 3 colour channels
    }


def describe(tensor: tf.Tensor) -> dict[str, object]:
    """What a tensor knows about itself: rank, shape, dtype and the device that holds it."""
    return {"rank": tensor.ndim, "shape": tuple(tensor.shape), "dtype": tensor.dtype.name, "device": tensor.device}


def flatten(tensor: tf.Tensor) -> tf.Tensor:
    """reshape with -1: TensorFlow works out that dimension from the others (torch's `view(-1)`)."""
    return tf.reshape(tensor, [-1])


def assign_element(tensor: tf.Tensor, index: tuple[int, ...], value: float) -> tf.Variable:
    """A copy of `tensor` with one element replaced. Tensors are immutable, so the copy is a
    `tf.Variable`, whose slices support `assign` (torch writes `units[2, 1] = 345` in place)."""
    variable = tf.Variable(tensor)
    variable[index].assign(value)
    return variable


def hadamard_and_matrix_product(a: tf.Tensor, b: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`a * b` multiplies matching elements (Hadamard, same shapes); `a @ b` takes dot products of
    a's rows with b's columns (inner dimensions must agree)."""
    return a * b, tf.linalg.matmul(a, b)


def matrix_product_example() -> tf.Tensor:
    """PRICES @ FACTORS in float64. Its rows are [200.5, 186, 167], [187.5, 175.4, 163] and
    [210, 193.8, 176]; the curriculum's printed result garbles the second row (it shows [21, 32])."""
    return tf.linalg.matmul(tf.constant(PRICES, tf.float64), tf.constant(FACTORS, tf.float64))


# --- Calculus with GradientTape ---------------------------------------------------------------------


def derivative(f: Callable[[tf.Tensor], tf.Tensor], x: Sequence[float] | float) -> tf.Tensor:
    """f'(x) at each point of x, for an elementwise f: the gradient of sum(f(x)) is f'(x_i) at x_i."""
    x = tf.constant(x, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)  # constants are not recorded unless watched; trainable Variables are
        y = f(x)
    return tape.gradient(y, x)


def partial_derivatives(f: Callable[..., tf.Tensor], *point: float) -> list[tf.Tensor]:
    """The partial derivative of f with respect to each argument at `point`, from one backward pass:
    each is computed with the other arguments held fixed."""
    variables = [tf.Variable(value, dtype=tf.float64) for value in point]
    with tf.GradientTape() as tape:
        y = f(*variables)
    return tape.gradient(y, variables)


def cost(m: tf.Tensor, l: tf.Tensor) -> tf.Tensor:  # noqa: E741  (the lesson's variable names)
    """The lesson's cost(m, l) = 3m^2 + 2l^2 + 5ml + 23; d/dm = 6m + 5l, d/dl = 4l + 5m."""
    return 3 * m**2 + 2 * l**2 + 5 * m * l + 23


# --- Gradient descent by hand: the bonus example ------------------------------------------------------


def make_bonus_data(
    n_samples: int = 500,
    weights: Sequence[float] = (2.0, 1.5, 0.8),
    bias: float = 5.0,
    noise: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Employees' (performance 1-5, years of experience 0-10, projects completed 0-10) and a bonus
    that is `features @ weights + bias` plus Gaussian noise (the curriculum's data frame is not given)."""
    rng = np.random.default_rng(seed)
    features = np.column_stack(
        [rng.uniform(1, 5, n_samples), rng.uniform(0, 10, n_samples), rng.integers(0, 11, n_samples)]
    ).astype(np.float32)
    bonus = features @ np.asarray(weights, np.float32) + bias + rng.normal(0.0, noise, n_samples)
    return features, bonus.astype(np.float32)


def fit_linear_regression(
    features: np.ndarray, target: np.ndarray, learning_rate: float = 0.006, epochs: int = 5000, seed: int = 0
) -> tuple[np.ndarray, float, list[float]]:
    """Batch gradient descent on MSE with explicit updates: weights, bias and the loss of every epoch.

    As in the lesson: start from random weights in [0, 1), predict w . x + b, take the mean squared
    error, get its gradients from the tape, and step each variable by `assign_sub(lr * gradient)`.
    The lesson's w1, w2, w3 are one weight vector here. Nothing needs zeroing between epochs: a
    fresh tape computes fresh gradients (torch accumulates them into `.grad`).
    """
    x, y = tf.constant(features, tf.float32), tf.constant(target, tf.float32)
    initial = tf.random.stateless_uniform((features.shape[1] + 1,), seed=(seed, 0))
    weights, bias = tf.Variable(initial[:-1], name="weights"), tf.Variable(initial[-1], name="bias")

    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            predicted = tf.linalg.matvec(x, weights) + bias
            loss = tf.reduce_mean(tf.square(predicted - y))
        grad_weights, grad_bias = tape.gradient(loss, [weights, bias])
        weights.assign_sub(learning_rate * grad_weights)
        bias.assign_sub(learning_rate * grad_bias)
        return loss

    @tf.function  # the whole loop as one graph: thousands of tiny eager steps would cost seconds
    def descend() -> tf.Tensor:
        losses = tf.TensorArray(tf.float32, size=epochs)
        for epoch in tf.range(epochs):
            losses = losses.write(epoch, step())
        return losses.stack()

    losses = descend().numpy().tolist()
    return weights.numpy(), float(bias.numpy()), losses
