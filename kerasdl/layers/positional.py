"""Positional information for a Transformer, which otherwise sees a bag of tokens.

`SinusoidalPositionalEncoding` adds the fixed sines and cosines of "Attention Is All You Need" to a
sequence of vectors; `PositionalEmbedding` looks tokens up and adds a learned vector per position (GPT,
BERT). Both take `start_index` so a generation step at position t gets position t's vector.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops


def sinusoids(max_length: int, width: int, base: float = 10000.0) -> np.ndarray:
    """(max_length, width): PE[p, 2i] = sin(p / base^(2i/width)), PE[p, 2i+1] = cos(the same)."""
    positions = np.arange(max_length)[:, None]
    rates = base ** (-np.arange(0, width, 2) / width)
    table = np.zeros((max_length, width), np.float32)
    table[:, 0::2] = np.sin(positions * rates)
    table[:, 1::2] = np.cos(positions * rates)[:, : width // 2]
    return table


def _positions(start_index: Any, length: int) -> Any:
    """(1 or batch, length) position ids starting at start_index (an int, or one per batch row)."""
    return ops.reshape(ops.cast(start_index, "int32"), (-1, 1)) + ops.arange(length, dtype="int32")[None, :]


@keras.saving.register_keras_serializable(package="kerasdl")
class SinusoidalPositionalEncoding(keras.layers.Layer):
    """inputs (batch, length, width) -> inputs + the fixed sinusoid of each position (no trainable weights)."""

    def __init__(self, max_length: int, base: float = 10000.0, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length
        self.base = base
        self.supports_masking = True

    def build(self, input_shape):
        self.table = ops.convert_to_tensor(sinusoids(self.max_length, input_shape[-1], self.base))

    def call(self, inputs, start_index=0):
        encoding = ops.take(self.table, _positions(start_index, inputs.shape[1]), axis=0)
        return inputs + ops.cast(encoding, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_length": self.max_length, "base": self.base}


@keras.saving.register_keras_serializable(package="kerasdl")
class PositionalEmbedding(keras.layers.Layer):
    """token ids (batch, length) -> token embedding + learned position embedding, (batch, length, width).

    Args:
        vocabulary_size: token ids are in [0, vocabulary_size).
        max_length: the longest sequence (positions 0..max_length - 1 have a vector).
        width: the embedding width (d_model).
        mask_zero: id 0 is padding; the layer then gives Keras a mask of the real tokens.
    """

    def __init__(self, vocabulary_size: int, max_length: int, width: int, mask_zero: bool = False,
                 embeddings_initializer: Any = "uniform", **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.max_length = max_length
        self.width = width
        self.mask_zero = mask_zero
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, width, embeddings_initializer=self.embeddings_initializer, name="token_embedding"
        )
        self.position_embedding = keras.layers.Embedding(
            max_length, width, embeddings_initializer=self.embeddings_initializer, name="position_embedding"
        )

    def build(self, input_shape):
        self.token_embedding.build(input_shape)
        self.position_embedding.build(input_shape)

    def call(self, token_ids, start_index=0):
        positions = _positions(start_index, token_ids.shape[1])
        return self.token_embedding(token_ids) + self.position_embedding(positions)

    def compute_mask(self, token_ids, mask=None):
        return ops.not_equal(token_ids, 0) if self.mask_zero else None

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.width)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "max_length": self.max_length,
            "width": self.width,
            "mask_zero": self.mask_zero,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }
