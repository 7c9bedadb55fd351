"""The curriculum's DigitsClassifier: Flatten -> Dense 128 ReLU -> Dense 64 ReLU -> Dense 10 (logits)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from kerasdl.data import DatasetInfo
from kerasdl.registry import register_model

if TYPE_CHECKING:
    import keras_tuner


def dense_block(
    x: keras.KerasTensor, units: int, name: str, *, dropout: float, l1: float, l2: float, batch_norm: bool
) -> keras.KerasTensor:
    """Dense -> [BatchNorm] -> ReLU -> [Dropout]; with the defaults, exactly Dense(units, relu)."""
    regularizer = keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None
    x = keras.layers.Dense(
        units,
        activation=None if batch_norm else "relu",
        use_bias=not batch_norm,  # batch norm's beta plays the bias
        kernel_regularizer=regularizer,
        name=name,
    )(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def mlp_search_space(hp: keras_tuner.HyperParameters, default_units: int = 128) -> dict[str, Any]:
    """Keras Tuner space around the curriculum's MLP; each default is the curriculum's value.

    Width is the first hidden layer's, each deeper layer halves it (128, 64 at depth 2, as the
    curriculum; `default_units` for another model's defaults). Every range is a finite set, so a grid
    search covers it exactly.
    """
    units = hp.Choice("units", [32, 64, 128, 256], default=default_units)
    depth = hp.Int("depth", 1, 3, default=2)
    return {
        "model_params": {
            "hidden_units": [units // 2**layer for layer in range(depth)],
            "dropout": hp.Choice("dropout", [0.0, 0.2, 0.5], default=0.0),
            "l2": hp.Choice("l2", [0.0, 1e-4, 1e-3], default=0.0),
        },
        "learning_rate": hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3, 1e-2], default=1e-3),
        "optimizer": hp.Choice("optimizer", ["sgd", "momentum", "rmsprop", "adam"], default="adam"),
        "batch_size": hp.Choice("batch_size", [32, 64, 128], default=64),
    }


@register_model(
    "mlp",
    family="mlp",
    task="classification",
    default_data="digits",
    lesson="Stage 2: Handwritten digits classification (DigitsClassifier MLP)",
    search_space=mlp_search_space,
)
def build_mlp(
    info: DatasetInfo,
    hidden_units: tuple[int, ...] = (128, 64),
    dropout: float = 0.0,
    l1: float = 0.0,
    l2: float = 0.0,
    batch_norm: bool = False,
) -> keras.Model:
    """Multilayer perceptron on flattened pixels; outputs logits (softmax lives in the loss and the runner)."""
    inputs = keras.Input(shape=info.input_shape, name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for depth, units in enumerate(hidden_units, start=1):
        x = dense_block(x, units, f"hidden_{depth}", dropout=dropout, l1=l1, l2=l2, batch_norm=batch_norm)
    logits = keras.layers.Dense(info.num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="digits_classifier")
