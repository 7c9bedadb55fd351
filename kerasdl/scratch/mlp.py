"""Networks: a Sequential stack of layers trained by backpropagation, and the MLP built from hyperparameters."""

from __future__ import annotations

from itertools import pairwise
from typing import Sequence

import numpy as np

from kerasdl.scratch.activations import ACTIVATIONS
from kerasdl.scratch.layers import BatchNormalization, Dense, Dropout, Layer
from kerasdl.scratch.losses import BinaryCrossEntropy, CategoricalCrossEntropy, MeanSquaredError
from kerasdl.scratch.regularizers import L1L2

# The output activation decides the task and the loss. The loss takes the last layer's raw scores
# and applies the output activation itself, which is exact and stays finite (see losses.py).
OUTPUT_LOSSES = {
    "softmax": lambda: CategoricalCrossEntropy(from_logits=True),
    "sigmoid": lambda: BinaryCrossEntropy(from_logits=True),
    "linear": MeanSquaredError,
}


class Sequential:
    """Layers applied in order; inputs of any shape are flattened per sample, like Keras's Flatten.

    `forward` returns the last layer's scores (logits). `output` says how to read them: "softmax"
    (classes), "sigmoid" (one yes/no unit) or "linear" (regression); it picks the loss, and
    `predict_proba` / `predict` apply it.
    """

    def __init__(self, layers: Sequence[Layer], output: str = "softmax", dtype: type = np.float64):
        if output not in OUTPUT_LOSSES:
            raise ValueError(f"unknown output {output!r}; known: {', '.join(OUTPUT_LOSSES)}")
        self.layers, self.output, self.dtype = list(layers), output, dtype
        self.output_activation = ACTIVATIONS[output]()
        self.loss = OUTPUT_LOSSES[output]()

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Every trainable array, named "<layer index>.<name>" (the very arrays the layers use)."""
        return {f"{i}.{name}": p for i, layer in enumerate(self.layers) for name, p in layer.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {f"{i}.{name}": g for i, layer in enumerate(self.layers) for name, g in layer.grads.items()}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype).reshape(len(x), -1)
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, grad: np.ndarray) -> np.ndarray:
        """Backpropagation: hand dL/d(output) down the layers, each applying its part of the chain rule."""
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def penalty(self) -> float:
        return sum(layer.penalty() for layer in self.layers)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.output_activation.function(self.forward(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classify(self.forward(x))

    def classify(self, scores: np.ndarray) -> np.ndarray:
        """Scores -> labels: argmax for softmax, logit > 0 (p > 0.5) for a sigmoid unit, unchanged for linear."""
        if self.output == "softmax":
            return scores.argmax(axis=-1)
        if self.output == "sigmoid":
            return (scores[:, 0] > 0).astype(int)
        return scores


class MLP(Sequential):
    """A multilayer perceptron of any depth: layer_sizes = (inputs, hidden..., outputs).

    Each hidden block is Dense -> [BatchNormalization] -> activation -> [Dropout]; the last Dense
    gives the scores. With batch norm the Dense layers before it have no bias, as in Keras: beta
    shifts each feature anyway, and a bias that normalization subtracts again would get a zero gradient.
    `l1` and `l2` penalize every kernel.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str = "relu",
        output: str = "softmax",
        dropout: float = 0.0,
        l1: float = 0.0,
        l2: float = 0.0,
        batch_norm: bool = False,
        seed: int | None = 0,
        dtype: type = np.float64,
    ):
        if len(layer_sizes) < 2:
            raise ValueError(f"layer_sizes needs at least inputs and outputs, got {tuple(layer_sizes)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
        self.layer_sizes, self.activation = tuple(layer_sizes), activation
        self.dropout, self.l1, self.l2, self.batch_norm, self.seed = dropout, l1, l2, batch_norm, seed
        rng = np.random.default_rng(seed)
        regularizer = L1L2(l1, l2) if l1 or l2 else None
        layers: list[Layer] = []
        n_dense = len(self.layer_sizes) - 1
        for depth, (n_inputs, n_outputs) in enumerate(pairwise(self.layer_sizes), start=1):
            hidden = depth < n_dense
            use_bias = not (hidden and batch_norm)
            layers.append(Dense(n_inputs, n_outputs, use_bias, regularizer, seed=rng, dtype=dtype))
            if not hidden:
                break
            if batch_norm:
                layers.append(BatchNormalization(n_outputs, dtype=dtype))
            layers.append(ACTIVATIONS[activation]())
            if dropout:
                layers.append(Dropout(dropout, seed=rng))
        super().__init__(layers, output, dtype)
