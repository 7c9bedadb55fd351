"""Stage 4's translator before the Transformer: an LSTM encoder-decoder with Luong attention.

The encoder LSTM reads the source ids into a sequence of hidden states; the decoder LSTM starts from its last
state and reads the target so far. At each target position the decoder's state scores every source state
(Luong et al. 2015: "dot" h_t . h_s, or "general" h_t . W h_s), padded source positions are masked out, the
softmax weights average the source states into a context vector, and [context, h_t] -> tanh layer -> logits.

Luong's input feeding (the last attentional vector joining the next decoder input) is left out, so training
reads whole targets in one keras.layers.LSTM call (teacher forcing). Decoding (`Seq2seqStep`) runs the
encoder once, then the same decoder layers one token at a time, carrying the LSTM's hidden and cell states.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from keras import ops

from kerasdl.data import DatasetInfo
from kerasdl.errors import KerasdlError
from kerasdl.layers import ScaledDotProductAttention, padding_mask
from kerasdl.models.traced import traced
from kerasdl.registry import register_model
from kerasdl.tasks.translation import register_decoder

if TYPE_CHECKING:
    import keras_tuner

LESSON = "Stage 4: Seq2seq with attention (translation)"
MODEL_NAME = "seq2seq_attention"  # the Keras model's name, which selects its DecodingStep
SCORES = ("dot", "general")
# XLA compiles the LSTM's while loop into something slower on CPU (see kerasdl.models.char_rnn).
JIT_COMPILE = False
EncoderOutput = tuple[Any, Any, Any]  # (all source states, last hidden state, last cell state)


def seq2seq_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """LSTM width, embedding size, Luong's attention score, dropout before the logits and learning rate; defaults
    are the builder's (256 units, 128-d embeddings, "general", no dropout) and Adam's 1e-3."""
    return {
        "model_params": {
            "units": hp.Choice("units", [128, 256, 512], default=256),
            "embedding_dim": hp.Choice("embedding_dim", [64, 128, 256], default=128),
            "score": hp.Choice("score", list(SCORES), default="general"),
            "dropout": hp.Choice("dropout", [0.0, 0.2, 0.4], default=0.0),
        },
        "learning_rate": hp.Choice("learning_rate", [1e-3, 3e-3], default=1e-3),
    }


@register_model(
    "seq2seq-attention", family="seq2seq", task="translation", default_data="fra-eng", lesson=LESSON,
    search_space=seq2seq_search_space, jit_compile=JIT_COMPILE,
)
def build_seq2seq_attention(
    info: DatasetInfo, embedding_dim: int = 128, units: int = 256, score: str = "general", dropout: float = 0.0
) -> keras.Model:
    """LSTM encoder-decoder with Luong attention: (source, target so far) ids -> next-target-token logits."""
    if not info.vocabulary_size or not info.target_length or len(info.input_shape) != 1:
        raise KerasdlError(f"seq2seq-attention translates sentence pairs; {info.name!r} is not a translation data set")
    if score not in SCORES:
        raise KerasdlError(f"unknown attention score {score!r}; known: {', '.join(SCORES)}")
    if not 0 <= dropout < 1:
        raise KerasdlError(f"dropout must be in [0, 1), got {dropout}")
    source = keras.Input(shape=info.input_shape, dtype="int32", name="source")
    target = keras.Input(shape=(info.target_length,), dtype="int32", name="target")
    layers = {
        "source_embedding": keras.layers.Embedding(info.vocabulary_size, embedding_dim, name="source_embedding"),
        "encoder": keras.layers.LSTM(units, return_sequences=True, return_state=True, name="encoder"),
        "target_embedding": keras.layers.Embedding(info.num_classes, embedding_dim, name="target_embedding"),
        "decoder": keras.layers.LSTM(units, return_sequences=True, return_state=True, name="decoder"),
        "attention": ScaledDotProductAttention(scale=False, name="attention"),
        "attentional": keras.layers.Dense(units, activation="tanh", name="attentional"),
        "dropout": keras.layers.Dropout(dropout, name="dropout"),
        "logits": keras.layers.Dense(info.num_classes, dtype="float32", name="logits"),
    }
    if score == "general":
        layers["attention_keys"] = keras.layers.Dense(units, use_bias=False, name="attention_keys")
    source_mask = padding_mask(source)
    states, hidden, cell = encode(layers, source, source_mask)
    logits, _, _ = decode(layers, target, [hidden, cell], states, source_mask)
    return keras.Model({"source": source, "target": target}, logits, name=MODEL_NAME)


def encode(layers: dict[str, keras.layers.Layer], source: Any, source_mask: Any) -> EncoderOutput:
    """Source ids -> every position's state and the last real position's (h, c); padding is skipped."""
    return layers["encoder"](layers["source_embedding"](source), mask=source_mask)


def decode(
    layers: dict[str, keras.layers.Layer], target: Any, initial_state: list[Any], source_states: Any,
    source_mask: Any, training: bool | None = None,
) -> tuple[Any, Any, Any]:
    """Target ids read from `initial_state` -> (logits at every target position, last h, last c); attention
    gives padded source positions no weight."""
    outputs, hidden, cell = layers["decoder"](layers["target_embedding"](target), initial_state=initial_state)
    keys = layers["attention_keys"](source_states) if "attention_keys" in layers else source_states
    context = layers["attention"](outputs, keys, source_states, padding_mask=source_mask)
    attentional = layers["attentional"](ops.concatenate([context, outputs], axis=-1))
    return layers["logits"](layers["dropout"](attentional, training=training)), hidden, cell


def model_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """A trained (or reloaded) seq2seq model's layers by name, as `encode` and `decode` take them."""
    return {layer.name: layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)}


@register_decoder(MODEL_NAME)
class Seq2seqStep:
    """Greedy and beam-search decoding over the LSTM states: the encoder runs once per batch of sources, then
    each step feeds one target token with the last (h, c) and the source states kept for attention."""

    def __init__(self, model: keras.Model):
        layers = model_layers(model)
        source = keras.Input(shape=(None,), dtype="int32", name="source")
        self.encoder = keras.Model(source, encode(layers, source, padding_mask(source)), name=f"{model.name}_encoder")
        units = layers["decoder"].units
        token = keras.Input(shape=(1,), dtype="int32", name="token")
        hidden = keras.Input(shape=(units,), name="hidden")
        cell = keras.Input(shape=(units,), name="cell")
        states = keras.Input(shape=(None, units), name="source_states")
        logits, new_hidden, new_cell = decode(
            layers, token, [hidden, cell], states, padding_mask(source), training=False
        )
        self.decoder = keras.Model(
            [token, hidden, cell, states, source], [ops.squeeze(logits, axis=1), new_hidden, new_cell],
            name=f"{model.name}_step",
        )
        compiled = {"reduce_retracing": True, "autograph": False}
        self._encode = traced(lambda x: self.encoder(x, training=False), **compiled)
        self._step = traced(lambda *x: self.decoder(list(x), training=False), **compiled)

    def start(self, source_ids: np.ndarray) -> tuple[np.ndarray, ...]:
        """(B, S) source ids -> the state decoding starts from: (h, c, source states, source ids)."""
        source_ids = np.asarray(source_ids, np.int32)
        states, hidden, cell = (np.asarray(x) for x in self._encode(source_ids))
        return hidden, cell, states, source_ids

    def step(self, state: tuple[np.ndarray, ...], tokens: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """The last tokens (B,) -> next-token logits (B, V) and the state after reading them."""
        hidden, cell, states, source_ids = state
        logits, hidden, cell = self._step(np.asarray(tokens, np.int32)[:, None], hidden, cell, states, source_ids)
        return np.asarray(logits), (np.asarray(hidden), np.asarray(cell), states, source_ids)

    def reorder(self, state: tuple[np.ndarray, ...], rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """The state of the batch rows `rows`, in that order (beam search keeps, drops and copies beams)."""
        return tuple(part[rows] for part in state)
