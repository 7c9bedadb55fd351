"""The Transformer's two blocks, built from our `MultiHeadAttention`.

Encoder block: self-attention -> add & norm -> feed-forward -> add & norm (BERT, a classifier, a
translator's encoder). Decoder block: masked (causal) self-attention -> add & norm -> cross-attention to the
encoder's outputs -> add & norm -> feed-forward -> add & norm (a translator's decoder; without
cross-attention, GPT). `norm_first=True` moves each layer norm before its sublayer (pre-norm, as GPT-2 and
nanoGPT do: steadier training of deep stacks); the default is the original paper's post-norm.
"""

from __future__ import annotations

from typing import Any

import keras

from kerasdl.layers.attention import MultiHeadAttention


class _Block(keras.layers.Layer):
    """What both blocks share: the residual sublayers, the feed-forward network and their config."""

    def __init__(self, num_heads: int, intermediate_dim: int, dropout: float = 0.1, norm_first: bool = False,
                 activation: str = "relu", epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.norm_first = norm_first
        self.activation = activation
        self.epsilon = epsilon
        self.supports_masking = True  # position for position: a padding mask on the inputs holds for the outputs

    def _attention(self, name: str, width: int) -> MultiHeadAttention:
        if width % self.num_heads:
            raise ValueError(f"the model width {width} is not divisible by num_heads={self.num_heads}")
        return MultiHeadAttention(self.num_heads, width // self.num_heads, dropout=self.dropout, name=name)

    def _build_feed_forward(self, input_shape) -> None:
        width = input_shape[-1]
        self.feed_forward_hidden = keras.layers.Dense(self.intermediate_dim, activation=self.activation, name="ffn_hidden")
        self.feed_forward_output = keras.layers.Dense(width, name="ffn_output")
        self.feed_forward_norm = keras.layers.LayerNormalization(epsilon=self.epsilon, name="ffn_norm")
        self.feed_forward_dropout = keras.layers.Dropout(self.dropout)
        self.feed_forward_hidden.build(input_shape)
        self.feed_forward_output.build((*input_shape[:-1], self.intermediate_dim))
        self.feed_forward_norm.build(input_shape)

    def _residual(self, x, norm, sublayer):
        """x + sublayer(x), normalized after the sum (post-norm) or with the norm on the sublayer's input
        (pre-norm). `sublayer` returns (outputs, extra); so does this (extra: attention weights, a cache)."""
        outputs, extra = sublayer(norm(x) if self.norm_first else x)
        return (x + outputs if self.norm_first else norm(x + outputs)), extra

    def _feed_forward(self, x, training):
        outputs = self.feed_forward_output(self.feed_forward_hidden(x))
        return self.feed_forward_dropout(outputs, training=training), None

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "norm_first": self.norm_first,
            "activation": self.activation,
            "epsilon": self.epsilon,
        }


@keras.saving.register_keras_serializable(package="kerasdl")
class TransformerEncoderBlock(_Block):
    """(batch, length, width) -> the same shape: bidirectional self-attention then a feed-forward network.

    `padding_mask` (batch, length): True for real tokens; padding is never attended to. Without it, the Keras
    mask of the inputs (an `Embedding(mask_zero=True)` upstream) serves. `return_attention_scores=True` also
    returns the weights, (batch, heads, length, length).
    """

    def build(self, input_shape):
        width = input_shape[-1]
        self.self_attention = self._attention("self_attention", width)
        self.self_attention.build(input_shape, input_shape)
        self.self_attention_norm = keras.layers.LayerNormalization(epsilon=self.epsilon, name="self_attention_norm")
        self.self_attention_norm.build(input_shape)
        self.self_attention_dropout = keras.layers.Dropout(self.dropout)
        self._build_feed_forward(input_shape)

    def call(self, inputs, padding_mask=None, return_attention_scores=False, training=None, mask=None):
        padding_mask = mask if padding_mask is None else padding_mask

        def attend(x):
            outputs, weights = self.self_attention(
                x, x, padding_mask=padding_mask, return_attention_scores=True, training=training
            )
            return self.self_attention_dropout(outputs, training=training), weights

        x, weights = self._residual(inputs, self.self_attention_norm, attend)
        x, _ = self._residual(x, self.feed_forward_norm, lambda y: self._feed_forward(y, training))
        return (x, weights) if return_attention_scores else x


@keras.saving.register_keras_serializable(package="kerasdl")
class TransformerDecoderBlock(_Block):
    """(batch, length, width) -> the same shape: causal self-attention, cross-attention to
    `encoder_outputs` (when `cross_attention=True`), then a feed-forward network.

    `padding_mask` (batch, length) masks the decoder's own padding; `encoder_padding_mask` (batch,
    source length) the encoder's; without `padding_mask`, the inputs' Keras mask serves. With `cache` (batch, 2, max_length, heads, head_dim) and `cache_index`,
    `inputs` is one new position and the call returns (outputs, updated cache): one generation step.
    """

    def __init__(self, num_heads: int, intermediate_dim: int, dropout: float = 0.1, norm_first: bool = False,
                 activation: str = "relu", epsilon: float = 1e-5, cross_attention: bool = True, **kwargs):
        super().__init__(num_heads, intermediate_dim, dropout, norm_first, activation, epsilon, **kwargs)
        self.cross_attention = cross_attention

    def build(self, inputs_shape, encoder_outputs_shape=None):
        width = inputs_shape[-1]
        self.self_attention = self._attention("self_attention", width)
        self.self_attention.build(inputs_shape, inputs_shape)
        self.self_attention_norm = keras.layers.LayerNormalization(epsilon=self.epsilon, name="self_attention_norm")
        self.self_attention_norm.build(inputs_shape)
        self.self_attention_dropout = keras.layers.Dropout(self.dropout)
        if self.cross_attention:
            self.cross_attention_layer = self._attention("cross_attention", width)
            self.cross_attention_layer.build(inputs_shape, encoder_outputs_shape or inputs_shape)
            self.cross_attention_norm = keras.layers.LayerNormalization(epsilon=self.epsilon, name="cross_attention_norm")
            self.cross_attention_norm.build(inputs_shape)
            self.cross_attention_dropout = keras.layers.Dropout(self.dropout)
        self._build_feed_forward(inputs_shape)

    def call(self, inputs, encoder_outputs=None, padding_mask=None, encoder_padding_mask=None, cache=None,
             cache_index=None, return_attention_scores=False, training=None, mask=None):
        if self.cross_attention and encoder_outputs is None:
            raise ValueError(f"decoder block {self.name!r} has cross-attention: pass encoder_outputs")
        if padding_mask is None and cache is None:  # a one-position step's mask would not cover the cache
            padding_mask = mask

        def attend_self(x):
            outputs = self.self_attention(
                x, x, padding_mask=padding_mask, use_causal_mask=True, cache=cache, cache_index=cache_index,
                training=training,
            )
            outputs, new_cache = outputs if cache is not None else (outputs, None)
            return self.self_attention_dropout(outputs, training=training), new_cache

        x, new_cache = self._residual(inputs, self.self_attention_norm, attend_self)
        weights = None
        if self.cross_attention:
            def attend_encoder(y):
                outputs, scores = self.cross_attention_layer(
                    y, encoder_outputs, padding_mask=encoder_padding_mask, return_attention_scores=True,
                    training=training,
                )
                return self.cross_attention_dropout(outputs, training=training), scores

            x, weights = self._residual(x, self.cross_attention_norm, attend_encoder)
        x, _ = self._residual(x, self.feed_forward_norm, lambda y: self._feed_forward(y, training))
        result = (x, weights) if return_attention_scores else x
        return (result, new_cache) if cache is not None else result

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "cross_attention": self.cross_attention}
