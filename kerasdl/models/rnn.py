"""Stage 3's sequence models on text: recurrent classifiers (SimpleRNN, LSTM, GRU, bidirectional LSTM) and
Kim's (2014) convolutional sentence classifier, all reading token ids and giving class logits.

The recurrent models embed ids with `mask_zero=True`, so padding (id 0) is skipped: a sentence gets the same
logits however much padding follows it. Any of them can start from a word2vec run's vectors (`embeddings=`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import keras
import numpy as np

from kerasdl.data import DatasetInfo
from kerasdl.data.tokenizer import OOV, PAD
from kerasdl.errors import KerasdlError
from kerasdl.registry import register_model

if TYPE_CHECKING:
    import keras_tuner

RNN_LESSON = "Stage 3: Recurrent neural networks (RNN, LSTM, GRU, bidirectional, stacked); Stage 4 sentiment analysis"
CNN_LESSON = "Stage 4 project: sentiment analysis (NLP) with Kim's (2014) convolutional sentence classifier"
# Random word vectors: U[-0.05, 0.05], Keras's default. Kim's U[-0.25, 0.25] (set for Adadelta) learned slower under
# Adam: text-cnn on SST-2 after two epochs, seeds 0 and 1, validation accuracy 0.778 and 0.751 against 0.803 and 0.771.
RANDOM_EMBEDDING_LIMIT = 0.05
Pretrained = tuple[tuple[str, ...], np.ndarray] | None  # a word2vec run's (vocabulary, vectors)
RecurrentLayer = Callable[[int, bool, str], keras.layers.Layer]  # (units, return_sequences, name) -> layer


def token_input(info: DatasetInfo, model: str) -> keras.KerasTensor:
    """The int32 (sequence_length,) token-id input; a clear error for data that is not tokenized text."""
    if not info.vocabulary_size or len(info.input_shape) != 1:
        raise KerasdlError(
            f"model {model!r} reads text (token ids), but data set {info.name!r} has inputs of shape "
            f"{info.input_shape} and no vocabulary; use sst2, mr, imdb or a CSV/TSV of text and label"
        )
    return keras.Input(shape=info.input_shape, dtype="int32", name="tokens")


def word_vectors(run_dir: str | None, dim: int) -> Pretrained:
    """A word2vec run's vocabulary and vectors, checked against the model's embedding size (None: no run)."""
    if run_dir is None:
        return None
    from kerasdl.models.embeddings import load_word_vectors

    vocabulary, vectors = load_word_vectors(run_dir)
    if vectors.shape[1] != dim:
        raise KerasdlError(
            f"the word vectors of {run_dir} are {vectors.shape[1]}-d but embedding_dim is {dim}; "
            f"pass --embedding-dim {vectors.shape[1]}"
        )
    return vocabulary, vectors


def word_embedding(info: DatasetInfo, dim: int, *, mask_zero: bool, pretrained: Pretrained) -> keras.layers.Embedding:
    """An Embedding over the data's vocabulary, drawn uniformly; with word2vec vectors, with their variance, as
    Kim (2014) draws the words word2vec lacks (the words it has get their vectors: `with_pretrained`)."""
    limit = RANDOM_EMBEDDING_LIMIT
    if pretrained is not None:
        limit = math.sqrt(3.0) * float(pretrained[1].std())  # U[-a, a] has variance a^2 / 3
    return keras.layers.Embedding(
        info.vocabulary_size, dim, embeddings_initializer=keras.initializers.RandomUniform(-limit, limit),
        mask_zero=mask_zero, name="embedding",
    )


def shared_rows(vocabulary: tuple[str, ...], pretrained: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(our ids, pretrained rows) of the words both vocabularies hold; padding and OOV are never shared."""
    rows = {word: row for row, word in enumerate(pretrained) if word not in (PAD, OOV)}
    pairs = [(i, rows[word]) for i, word in enumerate(vocabulary) if word in rows]
    ids, source = zip(*pairs) if pairs else ((), ())
    return np.asarray(ids, np.int64), np.asarray(source, np.int64)


def with_pretrained(model: keras.Model, info: DatasetInfo, pretrained: Pretrained) -> keras.Model:
    """`model` with word2vec's vectors copied into the rows of the words the data's vocabulary shares with it."""
    if pretrained is not None:
        layer = model.get_layer("embedding")
        ids, rows = shared_rows(info.vocabulary, pretrained[0])
        matrix = keras.ops.convert_to_numpy(layer.embeddings)
        matrix[ids] = pretrained[1][rows]
        layer.embeddings.assign(matrix)
    return model


# --- recurrent classifiers -------------------------------------------------------------------------------------


def recurrent_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Width, depth, embedding size and dropout of the recurrent stack, with learning rate; defaults are the builders'."""
    return {
        "model_params": {
            "units": hp.Choice("units", [32, 64, 128], default=64),
            "layers": hp.Int("layers", 1, 2, default=1),
            "embedding_dim": hp.Choice("embedding_dim", [64, 128, 300], default=128),
            "dropout": hp.Choice("dropout", [0.2, 0.5], default=0.5),
        },
        "learning_rate": hp.Choice("learning_rate", [1e-3, 3e-3], default=1e-3),
    }


def recurrent_classifier(
    info: DatasetInfo,
    recurrent: RecurrentLayer,
    name: str,
    *,
    units: int,
    layers: int,
    embedding_dim: int,
    dropout: float,
    embeddings: str | None,
) -> keras.Model:
    """Embedding (padding masked) -> dropout -> `layers` stacked recurrent layers -> dropout -> Dense logits.

    Every recurrent layer but the last returns its whole sequence, the next one's input; the last returns
    its final state, the sentence's summary.
    """
    if layers < 1:
        raise KerasdlError(f"model {name!r}: layers must be >= 1, got {layers}")
    tokens = token_input(info, name)
    pretrained = word_vectors(embeddings, embedding_dim)
    x = word_embedding(info, embedding_dim, mask_zero=True, pretrained=pretrained)(tokens)
    x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for depth in range(1, layers + 1):
        x = recurrent(units, depth < layers, f"{name}_{depth}")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(info.num_classes, dtype="float32", name="logits")(x)
    return with_pretrained(keras.Model(tokens, logits, name=f"{name}_classifier"), info, pretrained)


def _register_recurrent(name: str) -> Callable[[Callable[..., keras.Model]], Callable[..., keras.Model]]:
    """Register a recurrent classifier. Not XLA-compiled: on CPU XLA made a BiLSTM epoch 2.4x slower (CPU time)."""
    return register_model(
        name, family="rnn", task="classification", default_data="sst2", lesson=RNN_LESSON,
        search_space=recurrent_search_space, jit_compile=False,
    )


@_register_recurrent("rnn")
def build_rnn(
    info: DatasetInfo, units: int = 64, layers: int = 1, embedding_dim: int = 128, dropout: float = 0.5,
    embeddings: str | None = None,
) -> keras.Model:
    """Vanilla RNN, h_t = tanh(W_hh h_(t-1) + W_xh x_t + b), over word embeddings; logits from the last h_t."""

    def simple_rnn(units: int, sequences: bool, name: str) -> keras.layers.Layer:
        return keras.layers.SimpleRNN(units, return_sequences=sequences, name=name)

    return recurrent_classifier(info, simple_rnn, "rnn", units=units, layers=layers, embedding_dim=embedding_dim,
                                dropout=dropout, embeddings=embeddings)


@_register_recurrent("lstm")
def build_lstm(
    info: DatasetInfo, units: int = 64, layers: int = 1, embedding_dim: int = 128, dropout: float = 0.5,
    embeddings: str | None = None,
) -> keras.Model:
    """The lesson's Sequential model for sentiment analysis: Embedding -> LSTM -> Dense (logits), with dropout."""
    if layers < 1:
        raise KerasdlError(f"model 'lstm': layers must be >= 1, got {layers}")
    tokens = token_input(info, "lstm")
    pretrained = word_vectors(embeddings, embedding_dim)
    model = keras.Sequential(
        [
            tokens,
            word_embedding(info, embedding_dim, mask_zero=True, pretrained=pretrained),
            keras.layers.Dropout(dropout, name="embedding_dropout"),
            *(keras.layers.LSTM(units, return_sequences=depth < layers, name=f"lstm_{depth}")
              for depth in range(1, layers + 1)),
            keras.layers.Dropout(dropout, name="dropout"),
            keras.layers.Dense(info.num_classes, dtype="float32", name="logits"),
        ],
        name="lstm_classifier",
    )
    return with_pretrained(model, info, pretrained)


@_register_recurrent("gru")
def build_gru(
    info: DatasetInfo, units: int = 64, layers: int = 1, embedding_dim: int = 128, dropout: float = 0.5,
    embeddings: str | None = None,
) -> keras.Model:
    """GRU classifier: the LSTM's gating with two gates (update, reset) and no separate cell state."""

    def gru(units: int, sequences: bool, name: str) -> keras.layers.Layer:
        return keras.layers.GRU(units, return_sequences=sequences, name=name)

    return recurrent_classifier(info, gru, "gru", units=units, layers=layers, embedding_dim=embedding_dim,
                                dropout=dropout, embeddings=embeddings)


@_register_recurrent("bilstm")
def build_bilstm(
    info: DatasetInfo, units: int = 64, layers: int = 1, embedding_dim: int = 128, dropout: float = 0.5,
    embeddings: str | None = None,
) -> keras.Model:
    """Bidirectional LSTM: one LSTM reads the sentence forwards, one backwards; their final states concatenated."""

    def bidirectional(units: int, sequences: bool, name: str) -> keras.layers.Layer:
        return keras.layers.Bidirectional(keras.layers.LSTM(units, return_sequences=sequences), name=name)

    return recurrent_classifier(info, bidirectional, "bilstm", units=units, layers=layers,
                                embedding_dim=embedding_dim, dropout=dropout, embeddings=embeddings)


# --- Kim (2014): CNN-rand ------------------------------------------------------------------------------------


def text_cnn_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Feature maps per width, dropout, learning rate and batch size; defaults are Kim's maps and dropout, and the
    Adam rate and batch of 64 that `kerasdl train text-cnn` uses (Kim's batch of 50 is among the choices)."""
    return {
        "model_params": {
            "filters": hp.Choice("filters", [50, 100, 200], default=100),
            "dropout": hp.Choice("dropout", [0.3, 0.5], default=0.5),
        },
        "learning_rate": hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3], default=1e-3),
        "batch_size": hp.Choice("batch_size", [32, 50, 64], default=64),
    }


@register_model(
    "text-cnn",
    family="text-cnn",
    task="classification",
    default_data="sst2",
    lesson=CNN_LESSON,
    search_space=text_cnn_search_space,
    jit_compile=False,  # XLA made its CPU epoch no faster (convolutions), and compiling costs seconds
)
def build_text_cnn(
    info: DatasetInfo,
    embedding_dim: int = 300,
    widths: tuple[int, ...] = (3, 4, 5),
    filters: int = 100,
    dropout: float = 0.5,
    embeddings: str | None = None,
) -> keras.Model:
    """Kim (2014) CNN-rand: 300-d embeddings, 100 ReLU maps per filter width 3/4/5, max over time, dropout 0.5,
    logits under an L2 max-norm of 3."""
    tokens = token_input(info, "text-cnn")
    if info.input_shape[0] < max(widths):
        raise KerasdlError(
            f"model 'text-cnn': texts of {info.input_shape[0]} tokens are shorter than its widest filter ({max(widths)})"
        )
    pretrained = word_vectors(embeddings, embedding_dim)
    x = word_embedding(info, embedding_dim, mask_zero=False, pretrained=pretrained)(tokens)
    features = [
        keras.layers.GlobalMaxPooling1D(name=f"max_over_time_{width}")(
            keras.layers.Conv1D(filters, width, activation="relu", name=f"conv_{width}")(x)
        )
        for width in widths
    ]
    x = keras.layers.Concatenate(name="features")(features) if len(features) > 1 else features[0]
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(info.num_classes, kernel_constraint=keras.constraints.MaxNorm(3), dtype="float32",
                                  name="logits")(x)
    return with_pretrained(keras.Model(tokens, logits, name="kim_cnn"), info, pretrained)
