"""A multilayer perceptron for regression: prepared table rows -> Dense ReLU layers -> one linear output."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from kerasdl.data import DatasetInfo
from kerasdl.models.mlp import dense_block, mlp_search_space
from kerasdl.registry import register_model

if TYPE_CHECKING:
    import keras_tuner


def mlp_regressor_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """mlp's space (width, depth, dropout, L2, optimizer, learning rate, batch size) around this model's own
    widths, 64 and 32."""
    return mlp_search_space(hp, default_units=64)


@register_model(
    "mlp-regressor",
    family="mlp",
    task="regression",
    default_data="diabetes",
    lesson="Stage 2: Regression with GradientTape (the employee bonus), on a user's own table",
    search_space=mlp_regressor_search_space,
)
def build_mlp_regressor(
    info: DatasetInfo,
    hidden_units: tuple[int, ...] = (64, 32),
    dropout: float = 0.0,
    l1: float = 0.0,
    l2: float = 0.0,
    batch_norm: bool = False,
) -> keras.Model:
    """MLP regressor: standardized features in, the standardized target out (no activation on the output)."""
    inputs = keras.Input(shape=info.input_shape, name="features")
    x = inputs
    for depth, units in enumerate(hidden_units, start=1):
        x = dense_block(x, units, f"hidden_{depth}", dropout=dropout, l1=l1, l2=l2, batch_norm=batch_norm)
    value = keras.layers.Dense(1, dtype="float32", name="value")(x)
    return keras.Model(inputs, value, name="mlp_regressor")
