"""The Stage 1 worked examples as runnable functions: XOR, and the "will buy insurance" network."""

from __future__ import annotations

import numpy as np

from kerasdl.scratch.activations import sigmoid
from kerasdl.scratch.descent import History, train
from kerasdl.scratch.mlp import MLP
from kerasdl.scratch.optimizers import Adam

XOR_INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_TARGETS = np.array([0, 1, 1, 0])
INSURANCE_FEATURES = ("age", "education", "income", "savings")


def train_xor(
    hidden_units: int = 4, epochs: int = 500, learning_rate: float = 0.05, seed: int = 0
) -> tuple[MLP, History]:
    """A 2 -> hidden tanh -> 1 sigmoid MLP on the four XOR points, full-batch Adam.

    One hidden layer is enough: each hidden unit draws one line, and the output combines the two
    half-planes into the band that no single line (no perceptron) can carve out.
    """
    model = MLP((2, hidden_units, 1), activation="tanh", output="sigmoid", seed=seed)
    history = train(model, XOR_INPUTS, XOR_TARGETS, Adam(learning_rate), epochs=epochs, batch_size=None, seed=seed)
    return model, history


def insurance_data(n_samples: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic customers: (age, education, income, savings) scaled to [0, 1], and whether they buy.

    The curriculum gives the network but no data, so the labels come from the story it tells:
    awareness grows with age and education, affordability with income and savings, and a customer
    buys when the two together are high enough.
    """
    x = np.random.default_rng(seed).random((n_samples, len(INSURANCE_FEATURES)))
    age, education, income, savings = x.T
    awareness = sigmoid(6 * age + 6 * education - 6)
    affordability = sigmoid(6 * income + 6 * savings - 6)
    return x, (awareness + affordability > 1.0).astype(int)


def insurance_network(seed: int = 0) -> MLP:
    """The curriculum's 4 -> 2 -> 1 network: hidden units h1 (awareness) and h2 (affordability),
    both sigmoid, and a sigmoid output read as "buys" when above 0.5."""
    return MLP((len(INSURANCE_FEATURES), 2, 1), activation="sigmoid", output="sigmoid", seed=seed)


def train_insurance(epochs: int = 150, learning_rate: float = 0.05, seed: int = 0) -> tuple[MLP, History]:
    """Train the insurance network on 400 synthetic customers, validating on 100 more."""
    x, y = insurance_data(500, seed)
    model = insurance_network(seed)
    history = train(
        model, x[:400], y[:400], Adam(learning_rate), epochs=epochs, batch_size=32, seed=seed,
        validation_data=(x[400:], y[400:]),
    )
    return model, history
