"""SavedModel through Keras's ExportArchive, with a serving signature whose input and output have names."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from kerasdl.export.errors import ExportError

SIGNATURE = "serving_default"
OUTPUT_NAME = "logits"


def input_spec(model: keras.Model, input_shape: tuple[int, ...]) -> tf.TensorSpec:
    """The model's single input, batch dimension free, named as its keras.Input (the signature's key)."""
    if len(model.inputs) != 1:
        raise ExportError(f"{model.name!r} has {len(model.inputs)} inputs; edge export handles one")
    inputs = model.inputs[0]
    return tf.TensorSpec((None, *input_shape), inputs.dtype, name=inputs.name)


def write_saved_model(model: keras.Model, path: Path, spec: tf.TensorSpec) -> None:
    """Write `model` as a SavedModel whose `serving_default` maps {spec.name: x} -> {"logits": model(x)}."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda x: {OUTPUT_NAME: model(x, training=False)}, input_signature=[spec])
    archive.write_out(str(path), verbose=False)


def saved_model_logits(path: Path, input_name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The reloaded SavedModel's serving signature as `logits(batch)`, for parity and latency."""
    signature = tf.saved_model.load(str(path)).signatures[SIGNATURE]
    return lambda x: signature(**{input_name: tf.constant(x)})[OUTPUT_NAME].numpy()
