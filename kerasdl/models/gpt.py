"""GPT (Stage 5: Transformers): a decoder-only Transformer language model, in nanoGPT's shape.

    token ids (block,) -> PositionalEmbedding (token + learned position)
                       -> layers x TransformerDecoderBlock (causal self-attention, feed-forward; pre-norm)
                       -> LayerNorm -> Dense: next-token logits at every position

GPT keeps only the Transformer's decoder (the curriculum says encoder; BERT is the encoder-only one), without
its cross-attention: each position attends to itself and the positions before it. The block size, the
positions it has, is the task's window (`--sequence-length`). The feed-forward networks use ReLU, not GPT's
GELU: TensorFlow's exact GELU becomes an Erfc node in ONNX, which onnxruntime does not run.

Generation runs the same weights one token at a time against a key/value cache (`step_model`): each block's
keys and values of the positions read so far, (2, block, heads, head_dim), so a new token costs one
fixed-size step instead of a pass over the whole context. The step has the language models' single-step
contract, one packed float input [token, state] -> [logits, new state], with state = [position, every block's
cache flattened]; the runner re-primes the cache when it holds `block` tokens (kerasdl.edge.runner.generate_text).
`generate_uncached` is the same sampling without a cache (the sequence model re-run on the whole context
for each token): the reference the cache is tested and benchmarked against.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Callable

import keras
import numpy as np

from kerasdl.data import DatasetInfo
from kerasdl.errors import KerasdlError
from kerasdl.layers import PositionalEmbedding, TransformerDecoderBlock
from kerasdl.models.traced import traced
from kerasdl.registry import register_model
from kerasdl.tasks.language_modelling import context_length, register_step_model

if TYPE_CHECKING:
    import keras_tuner

LESSON = "Stage 5: Transformers (GPT, causal language modelling)"
FEED_FORWARD_RATIO = 4  # the feed-forward network's width per model width (GPT-2, nanoGPT)


def gpt_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Depth, heads, width (the feed-forward is FEED_FORWARD_RATIO x wide), dropout and learning rate; defaults
    are the builder's (4 blocks, 4 heads, 128 wide, no dropout) and the model's train_defaults (1e-3).
    Every head count divides every width."""
    return {
        "model_params": {
            "layers": hp.Choice("layers", [2, 4, 6], default=4),
            "heads": hp.Choice("heads", [2, 4, 8], default=4),
            "embedding_dim": hp.Choice("embedding_dim", [64, 128, 256], default=128),
            "dropout": hp.Choice("dropout", [0.0, 0.1, 0.2], default=0.0),
        },
        "learning_rate": hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3], default=1e-3),
    }


@register_model(
    "gpt", family="transformer-lm", task="language-modelling", default_data="shakespeare", lesson=LESSON,
    search_space=gpt_search_space, train_defaults={"batch_size": 32, "learning_rate": 1e-3},
)
def build_gpt(
    info: DatasetInfo, layers: int = 4, heads: int = 4, embedding_dim: int = 128, dropout: float = 0.0
) -> keras.Model:
    """Decoder-only Transformer (GPT): next-token logits at every position of a window of token ids."""
    if not info.vocabulary_size or len(info.input_shape) != 1:
        raise KerasdlError(f"gpt reads windows of token ids; {info.name!r} is not a text stream")
    if embedding_dim % heads:
        raise KerasdlError(f"embedding_dim {embedding_dim} must be divisible by heads {heads}")
    if not 0 <= dropout < 1:
        raise KerasdlError(f"dropout must be in [0, 1), got {dropout}")
    block = info.input_shape[0]
    ids = keras.Input(shape=(block,), dtype="int32", name="tokens")
    x = PositionalEmbedding(info.vocabulary_size, block, embedding_dim, name="embedding")(ids)
    x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for depth in range(1, layers + 1):
        x = TransformerDecoderBlock(
            heads, FEED_FORWARD_RATIO * embedding_dim, dropout=dropout, norm_first=True, activation="relu",
            cross_attention=False, name=f"decoder_{depth}",
        )(x)
    x = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    logits = keras.layers.Dense(info.vocabulary_size, dtype="float32", name="logits")(x)
    return keras.Model(ids, logits, name="gpt")


@keras.saving.register_keras_serializable(package="kerasdl")
class CachedStep(keras.layers.Layer):
    """A trained decoder block's one cached step, (x, cache, position) -> (x, new cache), as a layer of its own.

    Calling the shared block itself with a cache sliced out of the packed input leaves Keras's functional graph
    unable to connect the outputs ("Output ... is not connected to inputs"); this wrapper (sharing the block's
    weights) gives the step model one node per block with a declared output spec.
    """

    def __init__(self, block: TransformerDecoderBlock, **kwargs):
        kwargs.setdefault("name", f"{block.name}_step")
        super().__init__(**kwargs)
        self.block = block

    def call(self, x, cache, position):
        return self.block(x, cache=cache, cache_index=position, training=False)

    def compute_output_spec(self, x, cache, position):
        return keras.KerasTensor(x.shape, x.dtype), keras.KerasTensor(cache.shape, cache.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "block": keras.saving.serialize_keras_object(self.block)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "CachedStep":
        return cls(keras.saving.deserialize_keras_object(config.pop("block")), **config)


def decoder_blocks(model: keras.Model) -> list[TransformerDecoderBlock]:
    """The model's decoder blocks, bottom first."""
    return [layer for layer in model.layers if isinstance(layer, TransformerDecoderBlock)]


@register_step_model
def step_model(model: keras.Model) -> keras.Model | None:
    """The trained GPT as one cached step: packed [token, position, caches] (2 + C,) float32 -> [logits (V),
    position + 1, new caches]; None for a model without decoder blocks. The step shares the GPT's layers."""
    blocks = decoder_blocks(model)
    if not blocks:
        return None
    embedding = model.get_layer("embedding")
    shape = (2, embedding.max_length, blocks[0].num_heads, embedding.width // blocks[0].num_heads)
    size = int(np.prod(shape))
    packed = keras.Input(shape=(2 + len(blocks) * size,), dtype="float32", name="token_and_state")
    token = keras.ops.cast(keras.ops.round(packed[:, :1]), "int32")  # (batch, 1): one new position
    position = keras.ops.cast(keras.ops.round(packed[:, 1]), "int32")  # (batch,)
    x, caches = embedding(token, start_index=position), []
    for index, block in enumerate(blocks):
        cache = keras.ops.reshape(packed[:, 2 + index * size : 2 + (index + 1) * size], (-1, *shape))
        x, cache = CachedStep(block)(x, cache, position)
        caches.append(keras.ops.reshape(cache, (-1, size)))
    logits = keras.ops.squeeze(model.get_layer("logits")(model.get_layer("final_norm")(x)), axis=1)
    following = keras.ops.cast(position + 1, "float32")[:, None]
    return keras.Model(packed, keras.ops.concatenate([logits, following, *caches], axis=-1), name=f"{model.name}_step")


def generate_uncached(
    model: keras.Model, tokenizer: dict[str, Any], prompt: str, length: int, temperature: float = 1.0,
    top_k: int | None = None, seed: int = 0, top_p: float | None = None,
) -> str:
    """What `generate` does without a cache: for every new token the sequence model reads the whole context
    again (the same context: re-primed from its last half when the window is full), O(window) work a token."""
    from kerasdl.edge.runner import TextEncoder, sample_next

    encoder, window = TextEncoder(tokenizer), context_length(model)
    context, forward = [int(i) for i in encoder.encode_stream(prompt)[-window:]], _forward(model)
    rng, generated = np.random.default_rng(seed), []
    for _ in range(length):
        ids = np.zeros((1, window), np.int32)
        ids[0, : len(context)] = context  # causal: the padding after the context cannot change its logits
        generated.append(sample_next(forward(ids)[0, len(context) - 1], temperature, top_k, rng, top_p))
        context = (context + generated[-1:])[-(window // 2):] if len(context) == window else context + generated[-1:]
    return prompt + encoder.decode(generated)


def _forward(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """The sequence model as a NumPy function, traced once per model under TensorFlow (the window's fixed shape)."""
    if model not in _TRACED_FORWARDS:
        reference = weakref.ref(model)  # the cache must not keep the model alive
        call = traced(lambda x: reference()(x, training=False))
        _TRACED_FORWARDS[model] = lambda x: keras.ops.convert_to_numpy(call(keras.ops.convert_to_tensor(x)))
    return _TRACED_FORWARDS[model]


_TRACED_FORWARDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
