"""Our attention layers (`kerasdl.layers`): the lesson's worked example by hand, multi-head attention against
Keras's own, masks that provably block what they should, the key/value cache, positional encodings,
serialization, and the errors a user can cause. Fast: nothing trains."""

from __future__ import annotations

from typing import Any, Callable

import keras
import numpy as np
import pytest

from kerasdl.layers import (
    MultiHeadAttention,
    PositionalEmbedding,
    ScaledDotProductAttention,
    SinusoidalPositionalEncoding,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
    causal_mask,
    padding_mask,
)

# --- the lesson's worked example: self-attention for "sat" in "The cat sat on the mat." -----------------------

WORDS = ("the", "cat", "sat", "on", "mat")
QUERY_SAT = np.array([[0.5, 1.0]], np.float32)
KEYS = np.array([[1.0, 0.0], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
# The lesson gives no value vectors; its 3-d token embeddings serve (mat's row: its [1, 0, 0]).
VALUES = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 1, 1], [1, 0, 0]], np.float32)
LESSON_SCORES = [0.5, 0.75, 1.25, 1.0, 1.5]


def numpy_softmax(scores: np.ndarray) -> np.ndarray:
    exponentials = np.exp(scores - scores.max())
    return exponentials / exponentials.sum()


def attend(scale: bool) -> tuple[np.ndarray, np.ndarray]:
    """Our layer on the example (a batch of one): ("sat"'s output vector, its weights over the five words)."""
    outputs, weights = ScaledDotProductAttention(scale=scale)(
        QUERY_SAT[None], KEYS[None], VALUES[None], return_attention_scores=True
    )
    return keras.ops.convert_to_numpy(outputs)[0, 0], keras.ops.convert_to_numpy(weights)[0, 0]


def test_the_lessons_scores_are_the_dot_products_of_sats_query_with_each_key():
    scores = QUERY_SAT[0] @ KEYS.T
    assert scores.tolist() == LESSON_SCORES
    _, weights = attend(scale=False)
    # softmax is exp(score) / constant: the log-weights are the lesson's scores, shifted by one constant.
    np.testing.assert_allclose(np.log(weights) - np.log(weights[0]) + LESSON_SCORES[0], LESSON_SCORES, atol=1e-6)


@pytest.mark.parametrize("scale, expected_weights", [
    (False, [0.1141, 0.1464, 0.2414, 0.1880, 0.3100]),  # the lesson's softmax of the raw scores
    (True, [0.1361, 0.1625, 0.2314, 0.1939, 0.2761]),  # divided by sqrt(d_k) = sqrt(2) first: flatter
])
def test_softmax_weights_and_the_weighted_sum_of_values(scale, expected_weights):
    outputs, weights = attend(scale)
    scores = np.array(LESSON_SCORES) / (np.sqrt(2.0) if scale else 1.0)
    np.testing.assert_allclose(weights, numpy_softmax(scores), atol=1e-6)
    np.testing.assert_allclose(weights, expected_weights, atol=5e-5)
    assert weights.sum() == pytest.approx(1.0) and WORDS[weights.argmax()] == "mat"
    np.testing.assert_allclose(outputs, numpy_softmax(scores) @ VALUES, atol=1e-6)


# --- multi-head attention against keras.layers.MultiHeadAttention ----------------------------------------------

BATCH, LENGTH, SOURCE, WIDTH, HEADS, KEY_DIM = 2, 5, 7, 12, 3, 4


def random(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def numpy_of(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def padding(lengths: tuple[int, ...], length: int) -> np.ndarray:
    """(batch, length) booleans: the first lengths[i] positions of row i are real tokens."""
    return np.arange(length)[None, :] < np.array(lengths)[:, None]


@pytest.fixture(scope="module")
def twin_attention():
    """Ours and Keras's multi-head attention, with Keras's weights copied into ours; a query and a source."""
    query, source = random(BATCH, LENGTH, WIDTH, seed=1), random(BATCH, SOURCE, WIDTH, seed=2)
    reference = keras.layers.MultiHeadAttention(HEADS, KEY_DIM)
    reference(query, source)
    ours = MultiHeadAttention(HEADS, KEY_DIM)
    ours(query, source)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in reference.get_weights()]
    ours.set_weights(reference.get_weights())
    return ours, reference, query, source


@pytest.mark.parametrize("case", ["none", "attention-mask", "padding", "causal"])
def test_our_multi_head_attention_equals_keras_with_its_weights(twin_attention, case):
    ours, reference, query, source = twin_attention
    keys = padding((SOURCE, 4), SOURCE)
    allowed = random(BATCH, LENGTH, SOURCE, seed=3) > -0.5
    allowed[:, :, 0] = True  # every query keeps a key: a fully masked row has no meaningful softmax
    value = query if case == "causal" else source
    ours_kwargs, keras_kwargs = {
        "none": ({}, {}),
        "attention-mask": ({"attention_mask": allowed}, {"attention_mask": allowed}),
        "padding": ({"padding_mask": keys}, {"attention_mask": np.repeat(keys[:, None, :], LENGTH, axis=1)}),
        "causal": ({"use_causal_mask": True}, {"use_causal_mask": True}),
    }[case]
    outputs, weights = ours(query, value, return_attention_scores=True, **ours_kwargs)
    expected, expected_weights = reference(query, value, return_attention_scores=True, **keras_kwargs)
    np.testing.assert_allclose(numpy_of(outputs), numpy_of(expected), atol=1e-5)
    np.testing.assert_allclose(numpy_of(weights), numpy_of(expected_weights), atol=1e-5)
    if case == "padding":
        assert np.all(numpy_of(weights)[1, :, :, 4:] < 1e-6)  # padded keys get no weight


# --- masks provably block the future -----------------------------------------------------------------------------


def test_causal_and_padding_masks_are_true_where_a_query_may_look():
    np.testing.assert_array_equal(numpy_of(causal_mask(3)), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    np.testing.assert_array_equal(numpy_of(causal_mask(2, 4)), [[1, 1, 1, 0], [1, 1, 1, 1]])  # the last queries
    np.testing.assert_array_equal(numpy_of(padding_mask(np.array([[5, 3, 0, 0]]))), [[1, 1, 0, 0]])


def causal_layers() -> dict[str, Callable[[np.ndarray], Any]]:
    """Each causal path of ours as a function of a (1, LENGTH, WIDTH) sequence."""
    attention = ScaledDotProductAttention(causal=True)
    heads = MultiHeadAttention(HEADS, KEY_DIM)
    decoder = TransformerDecoderBlock(HEADS, 16, dropout=0.0, cross_attention=False)
    return {
        "scaled-dot-product": lambda x: attention(x, x, x),
        "multi-head": lambda x: heads(x, x, use_causal_mask=True),
        "decoder-block": lambda x: decoder(x),
    }


@pytest.mark.parametrize("name", ["scaled-dot-product", "multi-head", "decoder-block"])
@pytest.mark.parametrize("t", [0, 2, LENGTH - 2])
def test_changing_token_t_plus_1_leaves_every_output_up_to_t_unchanged(name, t):
    layer = causal_layers()[name]
    sequence = random(1, LENGTH, WIDTH, seed=4)
    changed = sequence.copy()
    changed[:, t + 1:] = random(1, LENGTH - t - 1, WIDTH, seed=5)
    before, after = numpy_of(layer(sequence)), numpy_of(layer(changed))
    np.testing.assert_array_equal(before[:, : t + 1], after[:, : t + 1])
    assert np.abs(before[:, t + 1] - after[:, t + 1]).max() > 1e-3  # position t + 1 itself does see the change


def test_padding_never_changes_an_encoders_outputs_at_real_tokens():
    block = TransformerEncoderBlock(HEADS, 16, dropout=0.0)
    sequence = random(1, LENGTH, WIDTH, seed=6)
    changed = sequence.copy()
    changed[:, 3:] = 7.0
    real = padding((3,), LENGTH)
    np.testing.assert_allclose(numpy_of(block(sequence, padding_mask=real))[:, :3],
                               numpy_of(block(changed, padding_mask=real))[:, :3], atol=1e-6)


# --- the key/value cache: one step at a time equals the full causal pass -------------------------------------


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_one_step_decoding_equals_the_full_causal_pass(norm_first):
    decoder = TransformerDecoderBlock(HEADS, 16, dropout=0.0, norm_first=norm_first)
    sequence, memory = random(BATCH, LENGTH, WIDTH, seed=7), random(BATCH, SOURCE, WIDTH, seed=8)
    full = numpy_of(decoder(sequence, encoder_outputs=memory))
    cache = np.zeros((BATCH, 2, LENGTH, HEADS, KEY_DIM), np.float32)
    for t in range(LENGTH):
        step, cache = decoder(sequence[:, t:t + 1], encoder_outputs=memory, cache=cache, cache_index=t)
        np.testing.assert_allclose(numpy_of(step)[:, 0], full[:, t], atol=1e-5)
    assert cache.shape == (BATCH, 2, LENGTH, HEADS, KEY_DIM)


def test_each_row_may_be_at_its_own_position_in_the_cache():
    heads = MultiHeadAttention(HEADS, KEY_DIM)
    sequence = random(BATCH, LENGTH, WIDTH, seed=9)
    full = numpy_of(heads(sequence, sequence, use_causal_mask=True))
    cache = np.zeros((BATCH, 2, LENGTH, HEADS, KEY_DIM), np.float32)
    for t in range(3):
        _, cache = heads(sequence[:, t:t + 1], sequence[:, t:t + 1], cache=cache, cache_index=t)
    rows = np.array([3, 2])  # row 0 goes on to position 3; row 1 redoes position 2
    step = sequence[np.arange(BATCH), rows][:, None]
    outputs, _ = heads(step, step, cache=cache, cache_index=rows)
    np.testing.assert_allclose(numpy_of(outputs)[:, 0], full[np.arange(BATCH), rows], atol=1e-5)


# --- positional encodings ---------------------------------------------------------------------------------------


def test_sinusoids_follow_the_papers_formula():
    width, length = 6, 9
    added = numpy_of(SinusoidalPositionalEncoding(length)(np.zeros((1, length, width), np.float32)))[0]
    for p in range(length):
        for i in range(width // 2):
            angle = p / 10000 ** (2 * i / width)
            assert added[p, 2 * i] == pytest.approx(np.sin(angle), abs=1e-6)
            assert added[p, 2 * i + 1] == pytest.approx(np.cos(angle), abs=1e-6)
    shifted = SinusoidalPositionalEncoding(length)(np.zeros((1, 2, width), np.float32), start_index=4)
    np.testing.assert_allclose(numpy_of(shifted)[0], added[4:6], atol=1e-6)


def test_positional_embedding_adds_a_learned_vector_per_position_and_masks_padding():
    layer = PositionalEmbedding(10, 6, 4, mask_zero=True)
    ids = np.array([[3, 3, 0]])
    vectors = numpy_of(layer(ids))
    tokens, positions = (numpy_of(table.embeddings) for table in (layer.token_embedding, layer.position_embedding))
    np.testing.assert_allclose(vectors[0], tokens[[3, 3, 0]] + positions[:3], atol=1e-6)
    np.testing.assert_allclose(numpy_of(layer(ids[:, 1:2], start_index=1))[0, 0], vectors[0, 1], atol=1e-6)
    np.testing.assert_array_equal(numpy_of(layer.compute_mask(ids)), [[True, True, False]])


def test_a_keras_mask_flows_through_the_blocks_as_their_padding_mask():
    """PositionalEmbedding(mask_zero=True) -> encoder block -> mean pooling, no mask passed by hand: a sentence
    gives the same vector however much padding follows it (the same layers over 6 and over 4 ids)."""
    embedding, block, pooling = PositionalEmbedding(20, 6, 8, mask_zero=True), TransformerEncoderBlock(2, 8, 0.0), \
        keras.layers.GlobalAveragePooling1D()
    long, short = (keras.Input((length,), dtype="int32") for length in (6, 4))
    models = [keras.Model(ids, pooling(block(embedding(ids)))) for ids in (long, short)]
    padded = numpy_of(models[0](np.array([[4, 5, 6, 0, 0, 0]])))
    np.testing.assert_allclose(padded, numpy_of(models[1](np.array([[4, 5, 6, 0]]))), atol=1e-6)
    assert np.abs(padded - numpy_of(models[1](np.array([[4, 5, 6, 7]])))).max() > 1e-3


# --- pre-norm and post-norm, serialization, errors ---------------------------------------------------------------


@pytest.mark.parametrize("norm_first", [False, True])
def test_pre_norm_and_post_norm_blocks_both_learn(norm_first):
    """Post-norm leaves every position layer-normalized, pre-norm the residual stream as it is; both fit a target."""
    import tensorflow as tf

    block = TransformerEncoderBlock(HEADS, 16, dropout=0.0, norm_first=norm_first)
    sequence, target = random(BATCH, LENGTH, WIDTH, seed=10), random(BATCH, LENGTH, WIDTH, seed=11)
    outputs = numpy_of(block(sequence))
    if norm_first:
        assert np.abs(outputs.std(axis=-1) - 1).max() > 1e-2
    else:
        np.testing.assert_allclose(outputs.mean(axis=-1), 0, atol=1e-5)
        np.testing.assert_allclose(outputs.std(axis=-1), 1, atol=1e-3)
    optimizer, losses = keras.optimizers.Adam(3e-2), []
    for _ in range(6):
        with tf.GradientTape() as tape:
            loss = keras.ops.mean((block(sequence, training=True) - target) ** 2)
        optimizer.apply(tape.gradient(loss, block.trainable_variables), block.trainable_variables)
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0], losses


def all_layers_model() -> keras.Model:
    """Every layer of ours in one small encoder-decoder: what a reload must rebuild without custom objects."""
    source, target = keras.Input((6,), dtype="int32", name="source"), keras.Input((5,), dtype="int32", name="target")
    memory = SinusoidalPositionalEncoding(6)(keras.layers.Embedding(20, WIDTH)(source))
    memory = TransformerEncoderBlock(HEADS, 16, norm_first=True)(memory, padding_mask=padding_mask(source))
    x = PositionalEmbedding(20, 5, WIDTH)(target)
    x = TransformerDecoderBlock(HEADS, 16)(x, encoder_outputs=memory, encoder_padding_mask=padding_mask(source))
    x = MultiHeadAttention(HEADS, KEY_DIM)(x, memory, padding_mask=padding_mask(source))
    x = ScaledDotProductAttention(causal=True)(x, x, x)
    return keras.Model([source, target], keras.layers.Dense(20)(x))


def test_a_model_of_all_our_layers_reloads_from_keras_file_in_safe_mode(tmp_path):
    model = all_layers_model()
    inputs = [np.array([[3, 4, 5, 0, 0, 0], [1, 2, 3, 4, 5, 6]]), np.array([[1, 2, 3, 4, 5], [5, 4, 3, 0, 0]])]
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_allclose(numpy_of(reloaded(inputs)), numpy_of(model(inputs)), atol=1e-6)


@pytest.mark.parametrize("layer", [
    ScaledDotProductAttention(causal=True, scale=False),
    MultiHeadAttention(2, 3, value_dim=5, dropout=0.2, use_bias=False),
    SinusoidalPositionalEncoding(11, base=100.0),
    PositionalEmbedding(30, 7, 6, mask_zero=True),
    TransformerEncoderBlock(4, 32, dropout=0.3, norm_first=True, activation="gelu"),
    TransformerDecoderBlock(2, 8, dropout=0.0, cross_attention=False, epsilon=1e-6),
], ids=lambda layer: type(layer).__name__)
def test_every_layer_round_trips_its_config(layer):
    config = layer.get_config()
    copy = type(layer).from_config(config)
    assert copy.get_config() == config
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer)).get_config() == config


def test_a_width_that_heads_do_not_divide_is_refused_in_one_line():
    with pytest.raises(ValueError, match="width 10 is not divisible by num_heads=3"):
        TransformerEncoderBlock(3, 16)(random(1, 4, 10))


def test_a_cross_attention_decoder_needs_the_encoders_outputs():
    with pytest.raises(ValueError, match="has cross-attention: pass encoder_outputs"):
        TransformerDecoderBlock(2, 16)(random(1, 4, 8))
