"""A mixed-precision model as float32 for export: artifacts compute in float32 unless a format asks for fp16.

A run trained under `--precision mixed_float16|mixed_bfloat16` keeps float32 variables but computes in 16 bits
(each layer's dtype policy says so, and model.keras keeps it). Exported as is, a SavedModel, TFLite or ONNX
graph would carry those 16-bit casts; rebuilt from its config with every mixed policy set to float32 and the
trained weights copied, the same function runs in float32 (`tflite-fp16` then quantizes that to fp16).
"""

from __future__ import annotations

from typing import Any, Iterator

import keras

from kerasdl.training.loops import dtype_policy

FLOAT32 = "float32"


def dtype_policies(model: keras.Model) -> set[str]:
    """The names of the dtype policies of `model` and of every layer in it (nested models included)."""
    return {model.dtype_policy.name, *(layer.dtype_policy.name for layer in _layers(model))}


def _layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _layers(layer)


def compute_precision(model: keras.Model) -> str:
    """The mixed policy `model` computes in ("mixed_float16", "mixed_bfloat16"), or "float32"."""
    mixed = sorted(name for name in dtype_policies(model) if name.startswith("mixed_"))
    return mixed[0] if mixed else FLOAT32


def float32_model(model: keras.Model) -> keras.Model:
    """`model` itself when it computes in float32; else a float32 copy (same config, same weights)."""
    if compute_precision(model) == FLOAT32:
        return model
    serialized = keras.saving.serialize_keras_object(model)
    serialized.pop("compile_config", None)  # the copy only predicts: no optimizer (a LossScaleOptimizer) to rebuild
    with dtype_policy(FLOAT32):  # and the layers our own layers make inside themselves
        copy = keras.saving.deserialize_keras_object(_float32_policies(serialized))
    copy.set_weights(model.get_weights())
    return copy


def _float32_policies(config: Any) -> Any:
    """A serialized object with every mixed DTypePolicy (a layer's "dtype") replaced by float32."""
    if isinstance(config, dict):
        policy = config.get("config", {}).get("name", "") if config.get("class_name") == "DTypePolicy" else ""
        if str(policy).startswith("mixed_"):
            return FLOAT32
        return {key: _float32_policies(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_policies(value) for value in config]
    return config
