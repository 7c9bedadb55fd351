"""word2vec, skip-gram with negative sampling (Mikolov et al. 2013): a word's vector predicts the words near it.

    target id ──> target Embedding ──┐
                                      ├─> dot product per context ──> logits (B, 1 + negatives)
    context ids ─> context Embedding ─┘

Each target word has a vector in one table and each context word in another; the dot product of the two is the
logit of "this word appears near the target". Trained on true contexts (label 1) and negative words drawn at
random (label 0), the target table becomes the word vectors: words used in similar contexts end up close.

Training recipe: SGD, as word2vec.c. It updates only the table rows a batch looks up, where Adam keeps dense
moments for every row (measured here, 1,024 pairs a step, 15k words, XLA: SGD 2 ms, Adam 40-90 ms a step).
The loss is a mean over B x (1 + negatives) logits, so SGD's learning rate 0.025 x B x (1 + negatives) matches
word2vec.c's 0.025 per pair. These are the model's `train_defaults`, so `kerasdl train word2vec` uses
SGD at 100, batches of 1,024 and 8 epochs on a cosine schedule (english-text: about 7 minutes on two shared
CPU cores); flags given on the command line still win.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from kerasdl.data import DatasetInfo
from kerasdl.errors import KerasdlError, RunDirError
from kerasdl.models.loading import load_model_file
from kerasdl.registry import register_model

if TYPE_CHECKING:
    import keras_tuner

TARGET_EMBEDDING, CONTEXT_EMBEDDING = "target_embedding", "context_embedding"


def word2vec_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Vector size and SGD's learning rate (half, once and twice the train_defaults' 100, about word2vec.c's 0.025
    per pair at batches of 1,024); defaults are the builder's 128 and the model's 100.

    The window and the negatives are not searched: they are task params, which make the pairs, and a search
    makes its data once for all trials. Nor could val_loss compare them: both change the validation pairs
    (other contexts, more or fewer negative columns) that the loss is measured on.
    """
    return {
        "model_params": {"embedding_dim": hp.Choice("embedding_dim", [64, 128, 300], default=128)},
        "learning_rate": hp.Choice("learning_rate", [50.0, 100.0, 200.0], default=100.0),
    }


@register_model(
    "word2vec",
    family="embeddings",
    task="word-embedding",
    default_data="english-text",
    lesson="Stage 3: Word embeddings (word2vec skip-gram with negative sampling)",
    search_space=word2vec_search_space,
    train_defaults={"optimizer": "sgd", "learning_rate": 100.0, "batch_size": 1024, "epochs": 8, "lr_schedule": "cosine"},
)
def build_word2vec(info: DatasetInfo, embedding_dim: int = 128) -> keras.Model:
    """Skip-gram word2vec: target and context Embeddings, one dot-product logit per context word."""
    if not info.vocabulary_size:
        raise KerasdlError(f"word2vec needs a word vocabulary; data set {info.name!r} has none (is it text?)")
    target = keras.Input(shape=(1,), dtype="int32", name="target")
    contexts = keras.Input(shape=(None,), dtype="int32", name="contexts")  # the true context, then negatives
    target_vector = keras.layers.Embedding(info.vocabulary_size, embedding_dim, name=TARGET_EMBEDDING)(target)
    # Context vectors start at zero, as in word2vec.c: the first updates then follow the random target vectors.
    context_vectors = keras.layers.Embedding(
        info.vocabulary_size, embedding_dim, embeddings_initializer="zeros", name=CONTEXT_EMBEDDING
    )(contexts)
    dots = keras.layers.Dot(axes=(2, 2), dtype="float32", name="dot_product")([context_vectors, target_vector])
    logits = keras.layers.Reshape((-1,), dtype="float32", name="logits")(dots)  # (B, 1 + k)
    return keras.Model([target, contexts], logits, name="word2vec")


def word_vector_model(model: keras.Model) -> keras.Model:
    """One word id (B, 1) int32 -> its vector (B, D): the trained model's target Embedding, what ships."""
    table = model.get_layer(TARGET_EMBEDDING)
    word = keras.Input(shape=(1,), dtype="int32", name="word")
    vector = keras.layers.Reshape((table.output_dim,), name="vector")(table(word))
    return keras.Model(word, vector, name="word_vectors")


def load_word_vectors(run_dir: str | Path) -> tuple[tuple[str, ...], np.ndarray]:
    """A word2vec run's vocabulary (id i's word; 0 pads, 1 is OOV) and its (vocabulary, D) float32 word vectors."""
    run = Path(run_dir)
    config_path, state_path, model_path = run / "config.json", run / "data_state.json", run / "model.keras"
    for path in (config_path, state_path, model_path):
        if not path.is_file():
            raise RunDirError(f"{run} is not a finished word2vec run: {path.name} is missing")
    model_name = json.loads(config_path.read_text()).get("model")
    if model_name != "word2vec":
        raise RunDirError(f"{run} is a {model_name!r} run, not a word2vec run")
    vocabulary = tuple(json.loads(state_path.read_text())["tokenizer"]["vocabulary"])
    model = load_model_file(model_path)
    vectors = np.asarray(model.get_layer(TARGET_EMBEDDING).embeddings, np.float32)
    if len(vectors) != len(vocabulary):
        raise RunDirError(f"{run}: {len(vectors)} word vectors for a vocabulary of {len(vocabulary)} words")
    return vocabulary, vectors
