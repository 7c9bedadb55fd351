"""Stage 5: the encoder-decoder Transformer that translates English into French (or Mandarin).

source ids -> token + position embeddings -> N encoder blocks (never attending to padding)
target ids ([start] + translation) -> token + position embeddings -> N decoder blocks (causal self-attention,
cross-attention to the encoder's outputs) -> logits of the next target token at every position.

Decoding runs the same layers one token at a time: the encoder reads the source once, and each decoder block
keeps the keys and values of the tokens already produced in a cache, so a step costs one position, not the
whole prefix. `TranslatorDecoding` does that for Keras (greedy and beam search in kerasdl.tasks.translation);
`step_model` packs the same step into one float input and one float output for TFLite and ONNX.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from keras import ops

from kerasdl.data import DatasetInfo
from kerasdl.errors import KerasdlError
from kerasdl.layers import PositionalEmbedding, TransformerDecoderBlock, TransformerEncoderBlock, padding_mask
from kerasdl.models.traced import traced
from kerasdl.registry import register_model
from kerasdl.tasks.translation import register_decoder

if TYPE_CHECKING:
    import keras_tuner

LESSON = "Stage 5: Transformers (encoder-decoder translation)"
FEED_FORWARD_RATIO = 4  # the feed-forward width per model width in a search: the builder's 512 / 128, Vaswani's 2048 / 512


def translator_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Encoder and decoder blocks, heads, width (the feed-forward FEED_FORWARD_RATIO x wide), dropout and learning
    rate; defaults are the builder's (2 + 2 blocks, 4 heads, 128 wide, 512 feed-forward, dropout 0.1) and the
    model's train_defaults (1e-3). Every head count divides every width."""
    width = hp.Choice("embedding_dim", [64, 128, 256], default=128)
    return {
        "model_params": {
            "layers": hp.Int("layers", 1, 3, default=2),
            "heads": hp.Choice("heads", [2, 4, 8], default=4),
            "embedding_dim": width,
            "units": FEED_FORWARD_RATIO * width,
            "dropout": hp.Choice("dropout", [0.1, 0.2, 0.3], default=0.1),
        },
        "learning_rate": hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3], default=1e-3),
    }


@register_model(
    "translator",
    family="transformer",
    task="translation",
    default_data="fra-eng",
    lesson=LESSON,
    search_space=translator_search_space,
    # Measured on CPU (1 layer, width 64, batch 64): XLA made each step slower (240 vs 160 ms) and the first
    # epoch minutes longer to compile.
    jit_compile=False,
    train_defaults={"epochs": 10, "learning_rate": 1e-3, "lr_schedule": "cosine"},
)
def build_translator(
    info: DatasetInfo, layers: int = 2, heads: int = 4, embedding_dim: int = 128, units: int = 512,
    dropout: float = 0.1,
) -> keras.Model:
    """Encoder-decoder Transformer: `layers` encoder and `layers` decoder blocks -> next-target-token logits.

    `embedding_dim` is the model width (`heads` must divide it); `units` the feed-forward width.
    """
    if not info.target_length or not info.vocabulary_size:
        raise KerasdlError(f"the translator reads sentence pairs; {info.name!r} is not a translation data set")
    if layers < 1 or embedding_dim % heads:
        raise KerasdlError(
            f"model 'translator': needs layers >= 1 and heads dividing embedding-dim; got layers={layers}, "
            f"heads={heads}, embedding-dim={embedding_dim}"
        )
    source = keras.Input(shape=info.input_shape, dtype="int32", name="source")
    target = keras.Input(shape=(info.target_length,), dtype="int32", name="target")
    source_mask = padding_mask(source)
    x = PositionalEmbedding(info.vocabulary_size, info.input_shape[0], embedding_dim, name="source_embedding")(source)
    x = keras.layers.Dropout(dropout, name="source_dropout")(x)
    for depth in range(1, layers + 1):
        x = TransformerEncoderBlock(heads, units, dropout=dropout, name=f"encoder_{depth}")(x, padding_mask=source_mask)
    y = PositionalEmbedding(info.num_classes, info.target_length, embedding_dim, name="target_embedding")(target)
    y = keras.layers.Dropout(dropout, name="target_dropout")(y)
    # The target's padding needs no mask: it only ever follows the real tokens, which causal attention keeps
    # from seeing it, and the loss ignores the positions it fills.
    for depth in range(1, layers + 1):
        y = TransformerDecoderBlock(heads, units, dropout=dropout, name=f"decoder_{depth}")(
            y, encoder_outputs=x, encoder_padding_mask=source_mask
        )
    logits = keras.layers.Dense(info.num_classes, dtype="float32", name="logits")(y)
    return keras.Model({"source": source, "target": target}, logits, name="translator")


class TranslatorStep(keras.layers.Layer):
    """The trained translator's own layers (shared weights, dropout off), run one target token at a time.

    `encode` and `decode_step` serve Keras decoding (`TranslatorDecoding`); `call` is the packed step a device
    runs (see `step_model`). Built from a trained model for decoding and export and never saved itself, so it
    has no config of its own.
    """

    def __init__(self, model: keras.Model, **kwargs):
        super().__init__(name=f"{model.name}_step", **kwargs)
        self.source_embedding = model.get_layer("source_embedding")
        self.encoders = [layer for layer in model.layers if isinstance(layer, TransformerEncoderBlock)]
        self.target_embedding = model.get_layer("target_embedding")
        self.decoders = [layer for layer in model.layers if isinstance(layer, TransformerDecoderBlock)]
        self.logits = model.get_layer("logits")

    @property
    def source_length(self) -> int:
        return self.source_embedding.max_length

    @property
    def cache_shape(self) -> tuple[int, ...]:
        """One decoder block's key/value cache per row: (keys and values, target positions, heads, head width)."""
        heads = self.decoders[0].num_heads
        return (2, self.target_embedding.max_length, heads, self.target_embedding.width // heads)

    @property
    def cache_size(self) -> int:
        """Floats of cache per row, all decoder blocks together."""
        return len(self.decoders) * math.prod(self.cache_shape)

    def encode(self, source: Any) -> tuple[Any, Any]:
        """Source ids (batch, S) -> the encoder's outputs (batch, S, width) and the source's padding mask."""
        mask = padding_mask(source)
        x = self.source_embedding(source)
        for block in self.encoders:
            x = block(x, padding_mask=mask, training=False)
        return x, mask

    def decode_step(self, encoded: Any, mask: Any, tokens: Any, position: Any, caches: list[Any]) -> tuple[Any, list]:
        """One new target token per row (batch, 1) at `position` (an int or one per row) -> the next token's
        logits (batch, vocabulary) and each decoder block's cache with this position's keys and values."""
        y = self.target_embedding(tokens, start_index=position)
        updated = []
        for block, cache in zip(self.decoders, caches):
            y, cache = block(y, encoder_outputs=encoded, encoder_padding_mask=mask, cache=cache, cache_index=position,
                             training=False)
            updated.append(cache)
        return self.logits(y)[:, 0], updated

    def call(self, packed: Any) -> Any:
        """[source ids (S), token, position, caches] (float32) -> [next-token logits, position + 1, new caches]."""
        length, per_block = self.source_length, math.prod(self.cache_shape)
        ids = ops.cast(ops.round(packed[:, : length + 1]), "int32")
        position = ops.cast(ops.round(packed[:, length + 1]), "int32")
        offset = length + 2
        caches = [ops.reshape(packed[:, offset + i * per_block : offset + (i + 1) * per_block], (-1, *self.cache_shape))
                  for i in range(len(self.decoders))]
        logits, caches = self.decode_step(*self.encode(ids[:, :length]), ids[:, length:], position, caches)
        next_position = ops.cast(position + 1, logits.dtype)[:, None]
        return ops.concatenate([logits, next_position, *(ops.reshape(c, (-1, per_block)) for c in caches)], axis=-1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.logits.units + 1 + self.cache_size)

    def get_config(self) -> dict[str, Any]:
        """What inspecting tools read (the exporter's); the step is rebuilt from its trained model, not from this."""
        return {"name": self.name, "trainable": self.trainable}


@register_decoder("translator")
class TranslatorDecoding:
    """The Keras DecodingStep: state = (encoder outputs, source mask, decoder caches, next position)."""

    def __init__(self, model: keras.Model):
        self.layers = TranslatorStep(model)
        self._encode = traced(self.layers.encode, reduce_retracing=True)
        self._step = traced(self.layers.decode_step, reduce_retracing=True)

    def start(self, source_ids: np.ndarray) -> tuple:
        encoded, mask = self._encode(ops.convert_to_tensor(source_ids, "int32"))
        caches = [ops.zeros((len(source_ids), *self.layers.cache_shape)) for _ in self.layers.decoders]
        return encoded, mask, caches, 0

    def step(self, state: tuple, tokens: np.ndarray) -> tuple[np.ndarray, tuple]:
        encoded, mask, caches, position = state
        tokens = ops.convert_to_tensor(np.asarray(tokens, np.int32)[:, None])
        logits, caches = self._step(encoded, mask, tokens, ops.convert_to_tensor(position, "int32"), caches)
        return np.asarray(logits), (encoded, mask, caches, position + 1)

    def reorder(self, state: tuple, rows: np.ndarray) -> tuple:
        encoded, mask, caches, position = state
        pick = lambda x: ops.take(x, rows, axis=0)  # noqa: E731
        return pick(encoded), pick(mask), [pick(cache) for cache in caches], position


def step_model(model: keras.Model) -> keras.Model:
    """One decoding step for a device: packed [source ids (S), token, position, caches] (float32) ->
    [next-token logits (V), position + 1, new caches]. It reruns the encoder on the source at every step:
    one input and one output cannot carry the encoder's outputs from a separate first call, and for a
    sentence of S <= 20 words the encoder costs about as much as a decoder step (the caches keep the decoder's
    cost per step constant)."""
    step = TranslatorStep(model)
    packed = keras.Input(shape=(step.source_length + 2 + step.cache_size,), dtype="float32",
                         name="source_token_position_caches")
    return keras.Model(packed, step(packed), name="translator_step")
