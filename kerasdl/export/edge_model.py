"""The hook that turns a trained Keras model into one that converts to builtin TFLite ops.

Some layers train well but convert badly: a Keras 3 LSTM/GRU runs a `tf.while_loop` over TensorList ops,
which TFLite only has as Flex ops. Rebuilt with `unroll=True` at the data set's fixed sequence length, the
same weights compute the same function from builtin ops (FULLY_CONNECTED, LOGISTIC, TANH...). That is
the default adapter; a model family whose layers need another rewrite registers its own with
`@register_edge_adapter("family")`. Every format is exported from the adapted model and measured against
the original, so an adapter that changed the function would fail the parity check.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import keras

from kerasdl.data import DatasetInfo
from kerasdl.export.errors import ExportError

EdgeAdapter = Callable[[keras.Model, DatasetInfo], keras.Model]
_ADAPTERS: dict[str, EdgeAdapter] = {}


def register_edge_adapter(family: str) -> Callable[[EdgeAdapter], EdgeAdapter]:
    """Decorator: use `adapter(model, info) -> model` instead of the default for models of `family`."""

    def decorate(adapter: EdgeAdapter) -> EdgeAdapter:
        _ADAPTERS[family] = adapter
        return adapter

    return decorate


def edge_model(model: keras.Model, info: DatasetInfo, family: str = "") -> keras.Model:
    """The model to convert: the family's registered adapter applied, else `unroll_recurrent_layers`."""
    return _ADAPTERS.get(family, unroll_recurrent_layers)(model, info)


def unroll_recurrent_layers(model: keras.Model, info: DatasetInfo) -> keras.Model:
    """A copy with every recurrent layer (also inside Bidirectional or nested models) unrolled; the model
    itself when it has none. Unrolling needs a fixed sequence length: the data set's input shape."""
    if not any(flag is False for layer in model.layers for flag in _unroll_flags(layer.get_config())):
        return model
    inputs = keras.Input(shape=info.input_shape, dtype=model.inputs[0].dtype, name=model.inputs[0].name)
    try:
        clone = keras.models.clone_model(
            model,
            input_tensors=inputs,
            clone_function=lambda layer: layer.__class__.from_config(_unrolled(layer.get_config())),
        )
    except ValueError as err:
        raise ExportError(
            f"cannot rebuild {model.name!r} with unrolled recurrent layers ({err}); "
            "register an edge adapter for its family"
        ) from err
    clone.set_weights(model.get_weights())
    return clone


def _unroll_flags(config: Any) -> Iterator[Any]:
    """Every value of an "unroll" key anywhere in a layer config (wrappers nest their layers' configs)."""
    if isinstance(config, dict):
        for key, value in config.items():
            yield from ([value] if key == "unroll" else _unroll_flags(value))
    elif isinstance(config, list):
        for value in config:
            yield from _unroll_flags(value)


def _unrolled(config: Any) -> Any:
    """The config with every "unroll" set to True."""
    if isinstance(config, dict):
        return {key: True if key == "unroll" else _unrolled(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_unrolled(value) for value in config]
    return config
