"""Character-level language models (Stage 3, LSTMs: text generation): Embedding -> stacked LSTM/GRU -> logits.

The sequence model reads a window of character ids and gives, at every position, the logits of the next
character. Generation runs the same weights one character at a time: `step_model` rebuilds them as a
single-step model whose one input packs [character id, recurrent state] and whose one output packs
[next-character logits, new state], the shape a device runner (and TFLite, builtin ops only) can loop over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from kerasdl.data import DatasetInfo
from kerasdl.errors import KerasdlError
from kerasdl.registry import register_model
from kerasdl.tasks.language_modelling import register_step_model

if TYPE_CHECKING:
    import keras_tuner

RECURRENT = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
LESSON = "Stage 3: RNNs, LSTMs (character-level text generation)"
# XLA compiles the recurrent while loop into something about 3x slower on CPU (measured: 6.4 s vs 2.2 s per
# step of 64 x 100 characters for 2 x LSTM(256)), so these models train without it.
JIT_COMPILE = False


def build_char_rnn(
    info: DatasetInfo, cell: str, units: int, layers: int, embedding_dim: int, dropout: float
) -> keras.Model:
    """characters (sequence_length,) -> Embedding -> `layers` x LSTM/GRU(`units`) -> Dense logits at each step."""
    if not info.vocabulary_size or len(info.input_shape) != 1:
        raise KerasdlError(f"char-{cell} reads windows of character ids; {info.name!r} is not a text stream")
    if not 0 <= dropout < 1:
        raise KerasdlError(f"dropout must be in [0, 1), got {dropout}")
    inputs = keras.Input(shape=info.input_shape, dtype="int32", name="characters")
    x = keras.layers.Embedding(info.vocabulary_size, embedding_dim, name="embedding")(inputs)
    for depth in range(1, layers + 1):
        x = RECURRENT[cell](units, return_sequences=True, name=f"{cell}_{depth}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{depth}")(x)
    logits = keras.layers.Dense(info.vocabulary_size, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=f"char_{cell}")


def char_rnn_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Width and depth of the recurrent stack, dropout between its layers, and learning rate; defaults are the
    builders' (2 x 256, no dropout) and Adam's 1e-3. Embedding size is left fixed: 67 characters need few dimensions."""
    return {
        "model_params": {
            "units": hp.Choice("units", [128, 256, 512], default=256),
            "layers": hp.Int("layers", 1, 3, default=2),
            "dropout": hp.Choice("dropout", [0.0, 0.1, 0.2], default=0.0),
        },
        "learning_rate": hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3], default=1e-3),
    }


@register_model(
    "char-lstm", family="char-rnn", task="language-modelling", default_data="shakespeare", lesson=LESSON,
    search_space=char_rnn_search_space, jit_compile=JIT_COMPILE,
)
def build_char_lstm(
    info: DatasetInfo, units: int = 256, layers: int = 2, embedding_dim: int = 64, dropout: float = 0.0
) -> keras.Model:
    """Character-level LSTM language model: next-character logits at every position of a window."""
    return build_char_rnn(info, "lstm", units, layers, embedding_dim, dropout)


@register_model(
    "char-gru", family="char-rnn", task="language-modelling", default_data="shakespeare", lesson=LESSON,
    search_space=char_rnn_search_space, jit_compile=JIT_COMPILE,
)
def build_char_gru(
    info: DatasetInfo, units: int = 256, layers: int = 2, embedding_dim: int = 64, dropout: float = 0.0
) -> keras.Model:
    """Character-level GRU language model: next-character logits at every position of a window."""
    return build_char_rnn(info, "gru", units, layers, embedding_dim, dropout)


def recurrent_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's stacked LSTM/GRU layers, bottom first."""
    return [layer for layer in model.layers if isinstance(layer, tuple(RECURRENT.values()))]


def state_size(model: keras.Model) -> int:
    """Floats of recurrent state the step model carries: per layer, its units times its states."""
    return sum(layer.units * _states(layer) for layer in recurrent_layers(model))


def _states(layer: keras.layers.Layer) -> int:
    """LSTM: a hidden and a cell state; GRU: a hidden state only."""
    return 2 if isinstance(layer, keras.layers.LSTM) else 1


@register_step_model
def step_model(model: keras.Model) -> keras.Model | None:
    """The trained weights as one step: packed [character id, state] (1 + S,) float32 -> [logits (V), new state];
    None for a model without recurrent layers.

    Each recurrent layer is rebuilt over a sequence of length 1 with `unroll=True` (no while loop, so TFLite
    gets builtin ops only) and `return_state`, and starts from its slice of the packed state. Dropout is
    left out: generation is inference.
    """
    stack = recurrent_layers(model)
    if not stack:
        return None
    embedding, dense = model.get_layer("embedding"), model.get_layer("logits")
    packed = keras.Input(shape=(1 + state_size(model),), dtype="float32", name="token_and_state")
    token = keras.ops.cast(keras.ops.round(packed[:, :1]), "int32")  # (batch, 1): a one-step sequence
    x = _clone(embedding)(token)
    new_states, offset = [], 1
    for layer in stack:
        states = []
        for _ in range(_states(layer)):
            states.append(packed[:, offset : offset + layer.units])
            offset += layer.units
        x, *updated = _clone(layer, return_sequences=True, return_state=True, unroll=True)(x, initial_state=states)
        new_states += updated
    logits = keras.ops.squeeze(_clone(dense)(x), axis=1)
    step = keras.Model(packed, keras.ops.concatenate([logits, *new_states], axis=-1), name=f"{model.name}_step")
    for layer in (embedding, *stack, dense):
        step.get_layer(layer.name).set_weights(layer.get_weights())
    return step


def _clone(layer: keras.layers.Layer, **overrides: object) -> keras.layers.Layer:
    """A new layer of the same class and name, with `overrides` in its config (weights are copied after)."""
    return layer.__class__.from_config({**layer.get_config(), **overrides})
