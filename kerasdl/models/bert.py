"""Stage 5: BERT, an encoder-only Transformer pretrained here by masked-language modelling, then fine-tuned.

`bert-mini`: token ids -> token + position embeddings -> LayerNorm -> N encoder blocks (GELU feed-forward,
padding never attended) -> the masked-LM head (Dense + GELU + LayerNorm -> logits over the vocabulary) at
the positions to predict. The encoder is a named sub-model ("encoder"), so `bert-classifier` can start from it:
the same encoder -> the mean of the real tokens' vectors -> dropout -> class logits. With `backbone=` (a
bert-mini run) it takes that run's architecture and weights. The classifier reads its own data set's
tokenizer (the run contract: a task's data, not its model, decides the ids); the words it shares with the
backbone's vocabulary get the backbone's vectors, as `--embeddings` copies word2vec's (kerasdl.models.rnn),
and the rest start random. Without a backbone the same architecture starts from random weights: the
baseline that shows what pretraining buys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from kerasdl.data import DatasetInfo
from kerasdl.data.text import MAX_SEQUENCE_LENGTH
from kerasdl.errors import KerasdlError, RunDirError
from kerasdl.models.loading import load_model_file
from kerasdl.layers import PositionalEmbedding, TransformerEncoderBlock, padding_mask
from kerasdl.models.rnn import shared_rows, token_input
from kerasdl.registry import register_model

if TYPE_CHECKING:
    import keras_tuner

LESSON = "Stage 5: Transformers (BERT, masked language modelling)"
ENCODER, MLM_HEAD = "encoder", "mlm_head"
# Two 128-wide blocks (the size of Turc et al.'s BERT-Tiny): what a shared CPU pretrains in minutes. The feed-forward is
# 2 x wide (BERT: 4 x) for the same reason.
ARCHITECTURE = {"layers": 2, "heads": 4, "embedding_dim": 128, "intermediate_dim": 256, "max_length": MAX_SEQUENCE_LENGTH}
NORM_EPSILON = 1e-6


@keras.saving.register_keras_serializable(package="kerasdl")
def approximate_gelu(x):
    """GELU by its tanh approximation (as BERT's own code computes it): exact GELU exports to ONNX as Erfc,
    which ONNX lacks; this one is builtin ops in TFLite and ONNX alike."""
    return keras.activations.gelu(x, approximate=True)


def bert_encoder(
    vocabulary_size: int, sequence_length: int, *, layers: int, heads: int, embedding_dim: int,
    intermediate_dim: int | None, max_length: int, dropout: float,
) -> keras.Model:
    """token ids (sequence_length,) -> contextual vectors (sequence_length, embedding_dim), as a model named
    "encoder". `max_length` positions have a vector (longer fine-tuning texts than pretraining ones fit)."""
    if layers < 1 or embedding_dim % heads:
        raise KerasdlError(f"BERT needs layers >= 1 and heads dividing embedding-dim; got {layers}, {heads}, {embedding_dim}")
    if sequence_length > max_length:
        raise KerasdlError(f"texts of {sequence_length} tokens exceed the encoder's {max_length} positions")
    tokens = keras.Input(shape=(sequence_length,), dtype="int32", name="tokens")
    real = padding_mask(tokens)
    x = PositionalEmbedding(vocabulary_size, max_length, embedding_dim, name="embedding")(tokens)
    x = keras.layers.LayerNormalization(epsilon=NORM_EPSILON, name="embedding_norm")(x)
    x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for depth in range(1, layers + 1):
        x = TransformerEncoderBlock(
            heads, intermediate_dim or 4 * embedding_dim, dropout=dropout, activation=approximate_gelu, name=f"encoder_{depth}"
        )(x, padding_mask=real)
    return keras.Model(tokens, x, name=ENCODER)


def bert_mini_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Encoder blocks, heads, width (the feed-forward kept 2 x wide, as ARCHITECTURE's), dropout and learning rate;
    defaults are ARCHITECTURE, the builder's dropout 0.1 and the model's train_defaults (1e-3).
    Every head count divides every width."""
    width = hp.Choice("embedding_dim", [64, 128, 256], default=ARCHITECTURE["embedding_dim"])
    return {
        "model_params": {
            "layers": hp.Int("layers", 1, 4, default=ARCHITECTURE["layers"]),
            "heads": hp.Choice("heads", [2, 4, 8], default=ARCHITECTURE["heads"]),
            "embedding_dim": width,
            "intermediate_dim": width * ARCHITECTURE["intermediate_dim"] // ARCHITECTURE["embedding_dim"],
            "dropout": hp.Choice("dropout", [0.0, 0.1, 0.2], default=0.1),
        },
        "learning_rate": hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3], default=1e-3),
    }


@register_model(
    "bert-mini",
    family="bert",
    task="masked-language-modelling",
    default_data="english-corpus",
    lesson=LESSON,
    search_space=bert_mini_search_space,
    jit_compile=False,  # measured: the same step time, and XLA's compilation costs a minute or two on 2 cores
    train_defaults={"epochs": 1, "batch_size": 64, "learning_rate": 1e-3, "lr_schedule": "cosine"},
)
def build_bert_mini(
    info: DatasetInfo,
    layers: int = ARCHITECTURE["layers"],
    heads: int = ARCHITECTURE["heads"],
    embedding_dim: int = ARCHITECTURE["embedding_dim"],
    intermediate_dim: int | None = ARCHITECTURE["intermediate_dim"],
    max_length: int = ARCHITECTURE["max_length"],
    dropout: float = 0.1,
) -> keras.Model:
    """BERT for masked-language modelling: embeddings -> `layers` encoder blocks -> the masked-LM head's logits.

    Inputs: token ids and the positions to predict (B, K); output: logits (B, K, vocabulary), so training
    runs the vocabulary-wide head on the chosen positions only (keras-hub's BertMaskedLM does the same).
    `token_logits_model` gives every position's logits from the same layers: what fills masks and ships.
    `heads` must divide `embedding_dim`; `intermediate_dim` is the feed-forward width (None: 4 x
    embedding_dim, as in BERT); `max_length` the positions the encoder has vectors for.
    """
    tokens = token_input(info, "bert-mini")
    positions = keras.Input(shape=(None,), dtype="int32", name="positions")
    encoder = bert_encoder(info.vocabulary_size, info.input_shape[0], layers=layers, heads=heads,
                           embedding_dim=embedding_dim, intermediate_dim=intermediate_dim, max_length=max_length,
                           dropout=dropout)
    chosen = keras.ops.take_along_axis(encoder(tokens), keras.ops.expand_dims(positions, -1), axis=1)
    logits = masked_lm_head(embedding_dim, info.vocabulary_size)(chosen)
    return keras.Model([tokens, positions], logits, name="bert_mini")


def masked_lm_head(width: int, vocabulary_size: int) -> keras.Model:
    """BERT's masked-LM head as a model named "mlm_head": vectors -> Dense + GELU -> LayerNorm -> token logits."""
    vectors = keras.Input(shape=(None, width), name="vectors")
    x = keras.layers.Dense(width, activation=approximate_gelu, name="mlm_dense")(vectors)
    x = keras.layers.LayerNormalization(epsilon=NORM_EPSILON, name="mlm_norm")(x)
    logits = keras.layers.Dense(vocabulary_size, dtype="float32", name="mlm_logits")
    head = keras.Model(vectors, logits(x), name=MLM_HEAD)
    logits.bias.assign(zipf_log_prior(vocabulary_size))
    return head


def zipf_log_prior(vocabulary_size: int) -> np.ndarray:
    """Log-probabilities of Zipf's law, p(word of rank r) ~ 1 / r, over a frequency-ordered vocabulary (ids 2..,
    as TextVectorization numbers them): the head's starting bias. From a uniform start, Adam moves each bias
    by about the learning rate per step, so the first few hundred steps would only learn word frequencies."""
    ranks = np.arange(vocabulary_size, dtype=np.float32) - 1.0
    ranks[:2] = ranks[-1] = vocabulary_size  # padding, OOV and [MASK] are never the answer
    return -np.log(ranks)


def token_logits_model(model: keras.Model) -> keras.Model:
    """A trained bert-mini's encoder and head as one model: token ids in, every position's logits out."""
    encoder = model.get_layer(ENCODER)
    tokens = keras.Input(shape=encoder.input_shape[1:], dtype="int32", name="tokens")
    return keras.Model(tokens, model.get_layer(MLM_HEAD)(encoder(tokens)), name="bert_mini_token_logits")


def bert_classifier_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """What fine-tuning searches (Devlin et al. 2019 search learning rate and batch size): learning rate, batch
    size and dropout, never the architecture, which a --backbone fixes; defaults are the builder's dropout 0.1,
    the model's train_defaults (5e-4) and the batch of 64."""
    return {
        "model_params": {"dropout": hp.Choice("dropout", [0.0, 0.1, 0.2], default=0.1)},
        "learning_rate": hp.Choice("learning_rate", [2e-4, 5e-4, 1e-3], default=5e-4),
        "batch_size": hp.Choice("batch_size", [32, 64], default=64),
    }


@register_model(
    "bert-classifier",
    family="bert",
    task="classification",
    default_data="sst2",
    lesson=LESSON,
    search_space=bert_classifier_search_space,
    jit_compile=False,
    train_defaults={"epochs": 3, "learning_rate": 5e-4, "lr_schedule": "cosine"},
)
def build_bert_classifier(
    info: DatasetInfo,
    backbone: str | None = None,
    layers: int | None = None,
    heads: int | None = None,
    embedding_dim: int | None = None,
    intermediate_dim: int | None = None,
    max_length: int | None = None,
    dropout: float = 0.1,
) -> keras.Model:
    """BERT classifier: the bert-mini encoder -> masked mean of the token vectors -> dropout -> class logits.

    `backbone`: a bert-mini run whose encoder it starts from (its architecture; the architecture arguments
    must then be left out); without one, that architecture (bert-mini's defaults) from random weights.
    """
    given = {"layers": layers, "heads": heads, "embedding_dim": embedding_dim, "intermediate_dim": intermediate_dim,
             "max_length": max_length}
    if backbone and any(value is not None for value in given.values()):
        raise KerasdlError("--backbone fixes the encoder's architecture; drop --layers, --heads and --embedding-dim")
    pretrained = load_backbone(backbone) if backbone else None
    architecture = pretrained[1] if pretrained else {**ARCHITECTURE, **{k: v for k, v in given.items() if v is not None}}
    tokens = token_input(info, "bert-classifier")
    encoder = bert_encoder(info.vocabulary_size, info.input_shape[0], dropout=dropout, **architecture)
    x = keras.layers.GlobalAveragePooling1D(name="masked_mean")(encoder(tokens), mask=padding_mask(tokens))
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(info.num_classes, dtype="float32", name="logits")(x)
    model = keras.Model(tokens, logits, name="bert_classifier")
    if pretrained is not None:
        copy_encoder(pretrained[0], pretrained[2], encoder, info.vocabulary)
    return model


def load_backbone(run_dir: str) -> tuple[keras.Model, dict[str, Any], tuple[str, ...]]:
    """A bert-mini run's encoder, its architecture and its vocabulary; a clear error for anything else."""
    run = Path(run_dir)
    for name in ("config.json", "data_state.json", "model.keras"):
        if not (run / name).is_file():
            raise RunDirError(f"--backbone {run} is not a finished bert-mini run: {name} is missing")
    config = json.loads((run / "config.json").read_text())
    if config.get("model") != "bert-mini":
        raise RunDirError(f"--backbone {run} is a {config.get('model')!r} run, not a bert-mini run")
    params = config.get("model_params", {})
    architecture = {key: params.get(key, default) for key, default in ARCHITECTURE.items()}
    vocabulary = tuple(json.loads((run / "data_state.json").read_text())["tokenizer"]["vocabulary"])
    encoder = load_model_file(run / "model.keras").get_layer(ENCODER)
    return encoder, architecture, vocabulary


def copy_encoder(source: keras.Model, vocabulary: tuple[str, ...], target: keras.Model, target_vocabulary: tuple[str, ...]) -> None:
    """The pretrained encoder's weights into `target`: every block and norm as they are, the position vectors,
    and the token vectors of the words both vocabularies hold (the others keep their random start)."""
    for layer in source.layers:
        if layer.name == "embedding":
            embedding = target.get_layer("embedding")
            embedding.position_embedding.set_weights(layer.position_embedding.get_weights())
            ids, rows = shared_rows(target_vocabulary, vocabulary)
            matrix = keras.ops.convert_to_numpy(embedding.token_embedding.embeddings)
            matrix[ids] = keras.ops.convert_to_numpy(layer.token_embedding.embeddings)[rows]
            embedding.token_embedding.embeddings.assign(matrix)
        elif layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())
