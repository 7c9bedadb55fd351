"""Attention, the lesson's way: scores = Q K^T / sqrt(d_k), masked, softmaxed, then a weighted sum of values.

`ScaledDotProductAttention` is the formula alone (no weights); `MultiHeadAttention` projects queries, keys
and values into `num_heads` subspaces, attends in each, and projects the concatenated heads back. Its weights
have the shapes and order of `keras.layers.MultiHeadAttention`'s, so weights copy across one to one (a test
checks the two agree). Masks follow Keras: True (or 1) where a query may attend to a key.

For generation, `MultiHeadAttention` also runs one step at a time against a key/value cache: a tensor
(batch, 2, max_length, num_heads, key_dim) holding the keys and values of the positions seen so far. A step
writes its own key and value at `cache_index` and attends to positions <= cache_index, so N tokens cost N
steps of fixed size instead of N passes over a growing prefix. The update is a one-hot blend (no scatter),
which TFLite runs with builtin ops.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

MASKED = -1e9  # the score of a blocked key: large enough that softmax gives it 0 (scores are float32 by then)


def causal_mask(query_length: int, key_length: int | None = None) -> Any:
    """(query_length, key_length) booleans: query i may attend to keys 0..i (the queries are the last ones)."""
    key_length = query_length if key_length is None else key_length
    rows = ops.arange(query_length)[:, None] + (key_length - query_length)
    return rows >= ops.arange(key_length)[None, :]


def padding_mask(token_ids: Any, pad_id: int = 0) -> Any:
    """(batch, length) booleans: True for real tokens, False for padding."""
    return ops.not_equal(token_ids, pad_id)


def merge_masks(attention_mask: Any = None, padding: Any = None, causal: bool = False,
                query_length: int | None = None, key_length: int | None = None) -> Any:
    """One mask that broadcasts against scores (batch, [heads,] queries, keys), or None when nothing is masked.

    `attention_mask`: (batch, queries, keys); `padding`: (batch, keys), the keys that are real tokens;
    `causal`: block keys after each query.
    """
    masks = []
    if attention_mask is not None:
        masks.append(ops.cast(attention_mask, "bool"))
    if padding is not None:
        masks.append(ops.cast(padding, "bool")[:, None, :])
    if causal:
        masks.append(causal_mask(query_length, key_length)[None, :, :])
    if not masks:
        return None
    merged = masks[0]
    for mask in masks[1:]:
        merged = ops.logical_and(merged, mask)
    return merged


def attention_weights(query: Any, key: Any, mask: Any = None, scale: bool = True) -> Any:
    """softmax(Q K^T / sqrt(d_k)) over the keys: (..., queries, keys), each row summing to 1.

    query (..., queries, d_k), key (..., keys, d_k); mask (batch, [heads,] queries, keys) or any shape that
    broadcasts once heads are inserted after the batch axis. `scale=False` gives the lesson's raw dot products.
    Under mixed precision the scores are masked and softmaxed in float32 (float16 overflows past 65,504), and the
    weights come back in the query's dtype.
    """
    scores = ops.cast(ops.matmul(query, ops.swapaxes(key, -1, -2)), "float32")
    if scale:
        scores = scores / math.sqrt(query.shape[-1])
    if mask is not None:
        while len(mask.shape) < len(scores.shape):  # (batch, queries, keys) against (batch, heads, queries, keys)
            mask = ops.expand_dims(mask, 1)
        scores = ops.where(mask, scores, MASKED)
    return ops.cast(ops.softmax(scores, axis=-1), query.dtype)


def scaled_dot_product(query: Any, key: Any, value: Any, mask: Any = None, scale: bool = True) -> tuple[Any, Any]:
    """softmax(Q K^T / sqrt(d_k)) V; returns (outputs (..., queries, d_v), attention weights)."""
    weights = attention_weights(query, key, mask, scale)
    return ops.matmul(weights, value), weights


@keras.saving.register_keras_serializable(package="kerasdl")
class ScaledDotProductAttention(keras.layers.Layer):
    """The attention formula with no weights of its own: (query, key, value) -> weighted values.

    Args:
        causal: block every key after its query (a decoder's self-attention).
        scale: divide the scores by sqrt(d_k) (the Transformer's choice; False gives raw dot products).
    """

    def __init__(self, causal: bool = False, scale: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.causal = causal
        self.scale = scale
        self.supports_masking = True  # one output per query: the query's Keras mask still applies

    def call(self, query, key, value, padding_mask=None, attention_mask=None, return_attention_scores=False):
        mask = merge_masks(attention_mask, padding_mask, self.causal, query.shape[-2], key.shape[-2])
        outputs, weights = scaled_dot_product(query, key, value, mask, self.scale)
        return (outputs, weights) if return_attention_scores else outputs

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "causal": self.causal, "scale": self.scale}


@keras.saving.register_keras_serializable(package="kerasdl")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention: h heads of scaled dot-product attention over learned projections, concatenated
    and projected back to the query's width.

    Call as `layer(query, value, key=None, ...)` like `keras.layers.MultiHeadAttention` (key defaults to
    value). Masks: `attention_mask` (batch, queries, keys), `padding_mask` (batch, keys), and
    `use_causal_mask`. With `cache` (batch, 2, max_length, heads, key_dim) and `cache_index` (an int, or one
    per batch row), the query is the next position(s) of a sequence whose earlier keys and values are in the
    cache; the call returns (outputs, updated cache).
    """

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None, dropout: float = 0.0,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim or key_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.attention_dropout = keras.layers.Dropout(dropout)
        self.supports_masking = True

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = value_shape or query_shape
        key_shape = key_shape or value_shape
        width = query_shape[-1]
        # The order and shapes of keras.layers.MultiHeadAttention's weights: q, k, v, then the output projection.
        self.query_kernel, self.query_bias = self._projection("query", width, self.key_dim)
        self.key_kernel, self.key_bias = self._projection("key", key_shape[-1], self.key_dim)
        self.value_kernel, self.value_bias = self._projection("value", value_shape[-1], self.value_dim)
        self.output_kernel = self.add_weight(
            name="output_kernel", shape=(self.num_heads, self.value_dim, width), initializer=self.kernel_initializer
        )
        self.output_bias = self.add_weight(name="output_bias", shape=(width,), initializer="zeros") if self.use_bias else None

    def _projection(self, name: str, width: int, depth: int) -> tuple[Any, Any]:
        kernel = self.add_weight(
            name=f"{name}_kernel", shape=(width, self.num_heads, depth), initializer=self.kernel_initializer
        )
        bias = self.add_weight(name=f"{name}_bias", shape=(self.num_heads, depth), initializer="zeros") if self.use_bias else None
        return kernel, bias

    @staticmethod
    def _project(x, kernel, bias):
        """(batch, length, width) -> (batch, length, heads, depth)."""
        projected = ops.einsum("btw,whd->bthd", x, kernel)
        return projected + bias if bias is not None else projected

    def call(self, query, value, key=None, attention_mask=None, padding_mask=None, use_causal_mask=False,
             return_attention_scores=False, cache=None, cache_index=None, training=None):
        key = value if key is None else key
        q = self._project(query, self.query_kernel, self.query_bias)
        k = self._project(key, self.key_kernel, self.key_bias)
        v = self._project(value, self.value_kernel, self.value_bias)
        if cache is not None:
            cache_index = ops.cast(cache_index, "int32")  # NumPy's default int64 would not compare with arange's int32
            k, v, cache = self._cached(cache, cache_index, k, v)
            attention_mask = self._cache_mask(cache_index, cache.shape[2], attention_mask)
            use_causal_mask = False  # the cache mask already blocks every later position
        mask = merge_masks(attention_mask, padding_mask, use_causal_mask, q.shape[1], k.shape[1])
        weights = attention_weights(self._heads(q), self._heads(k), mask)
        outputs = ops.matmul(self.attention_dropout(weights, training=training), self._heads(v))
        outputs = ops.einsum("bhtd,hdw->btw", outputs, self.output_kernel)
        if self.output_bias is not None:
            outputs = outputs + self.output_bias
        result = (outputs, weights) if return_attention_scores else outputs
        return (result, cache) if cache is not None else result

    @staticmethod
    def _heads(x):
        """(batch, length, heads, depth) -> (batch, heads, length, depth)."""
        return ops.transpose(x, (0, 2, 1, 3))

    @staticmethod
    def _cached(cache, cache_index, k, v):
        """Write this step's keys and values into the cache at cache_index (one step: query length 1)."""
        slot = ops.one_hot(ops.reshape(cache_index, (-1,)), cache.shape[2], dtype=k.dtype)[:, None, :, None, None]
        fresh = ops.stack([k, v], axis=1)  # (batch, 2, 1, heads, d): broadcasts along the cache's positions
        cache = cache * (1.0 - slot) + fresh * slot
        return cache[:, 0], cache[:, 1], cache

    @staticmethod
    def _cache_mask(cache_index, max_length, attention_mask):
        """Positions 0..cache_index of the cache, for each row's one query."""
        index = ops.reshape(cache_index, (-1, 1, 1))
        visible = ops.arange(max_length)[None, None, :] <= index
        return visible if attention_mask is None else ops.logical_and(visible, ops.cast(attention_mask, "bool"))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
