"""The training loop and the three gradient-descent regimes, which differ only in batch size.

Batch GD computes each update from the whole training set (one smooth update per epoch), stochastic
GD from one sample (many noisy updates), mini-batch GD from a small shuffled chunk (the usual
compromise, and what vectorized hardware is built for).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from kerasdl.scratch.mlp import Sequential
from kerasdl.scratch.optimizers import Optimizer

# Batch size of each regime; None means "all of it".
REGIMES: dict[str, int | None] = {"batch": None, "stochastic": 1, "mini-batch": 32}


@dataclass
class History:
    """Per-epoch logs (Keras names: loss, accuracy, val_loss, val_accuracy), update count, wall time."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    updates: int = 0
    seconds: float = 0.0

    def series(self, key: str) -> list[float]:
        return [logs[key] for logs in self.epochs]


def batches(n_samples: int, batch_size: int | None, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Index arrays that cover every sample once: all of them (batch GD), or shuffled chunks."""
    if batch_size is None or batch_size >= n_samples:
        yield np.arange(n_samples)
        return
    order = rng.permutation(n_samples)
    for start in range(0, n_samples, batch_size):
        yield order[start : start + batch_size]


def train_step(model: Sequential, optimizer: Optimizer, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Forward, loss, backward, update: one step of the curriculum's loop. Returns the loss and scores."""
    scores = model.forward(x, training=True)
    loss = model.loss(y, scores) + model.penalty()
    model.backward(model.loss.gradient(y, scores))
    params, grads = model.params, model.grads
    optimizer.step(list(params.values()), [grads[name] for name in params])
    return loss, scores


def evaluate(model: Sequential, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Loss (with penalties) in inference mode, and accuracy when the model classifies."""
    scores = model.forward(x)
    logs = {"loss": model.loss(y, scores) + model.penalty()}
    if model.output != "linear":
        logs["accuracy"] = float(np.mean(model.classify(scores) == np.reshape(y, len(y))))
    return logs


def train(
    model: Sequential,
    x: np.ndarray,
    y: np.ndarray,
    optimizer: Optimizer,
    *,
    epochs: int,
    batch_size: int | None = 32,
    seed: int | Sequence[int] = 0,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
) -> History:
    """Train `model` for `epochs` passes over (x, y); batch_size None is batch GD, 1 is stochastic GD.

    Each epoch's `loss` and `accuracy` average the training batches as they went (as Keras reports
    them); `val_*` evaluate `validation_data` after the epoch. `seed` (an int or a sequence of ints,
    anything `np.random.default_rng` takes) fixes the shuffling order.
    """
    rng = np.random.default_rng(seed)
    history = History()
    start = time.perf_counter()
    for _ in range(epochs):
        loss_sum = correct = 0.0
        for index in batches(len(x), batch_size, rng):
            loss, scores = train_step(model, optimizer, x[index], y[index])
            history.updates += 1
            loss_sum += loss * len(index)
            if model.output != "linear":
                correct += np.sum(model.classify(scores) == np.reshape(y[index], len(index)))
        logs = {"loss": float(loss_sum / len(x))}
        if model.output != "linear":
            logs["accuracy"] = float(correct / len(x))
        if validation_data is not None:
            logs.update({f"val_{k}": v for k, v in evaluate(model, *validation_data).items()})
        history.epochs.append(logs)
    history.seconds = time.perf_counter() - start
    return history
