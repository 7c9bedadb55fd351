"""The LSTM encoder-decoder with Luong attention (seq2seq-attention): shapes, masking of padded source
positions, overfitting 64 fra-eng pairs, its decoding step against the teacher-forced pass, reload from
.keras, one GradientTape step, and the clear refusals (bad settings, edge export).

One small model (width 64) is fitted once per module on 64 fra-eng training pairs, one per English sentence:
fra-eng often gives several translations of a sentence ("Go." -> "Va !", "Marche.", "Bouge !"), and no model
can fit all of them to near-zero loss.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasdl.data import DatasetInfo
from kerasdl.data.base import data_root
from kerasdl.data.translation import TranslationPairs, load_fra_eng
from kerasdl.errors import KerasdlError
from kerasdl.export.errors import ExportError
from kerasdl.registry import model_spec
from kerasdl.tasks import get_task
from kerasdl.tasks.translation import decoding_step, translate

TASK = get_task("translation")
SMALL = {"embedding_dim": 32, "units": 64}
PAIRS, MAX_WORDS = 64, 8
OVERFIT_STEPS = 100  # full-batch steps on the 64 pairs: the loss is about 0.004 after them


def build(info: DatasetInfo, **params) -> keras.Model:
    keras.utils.set_random_seed(0)
    return model_spec("seq2seq-attention").build(info, **{**SMALL, **params})


@pytest.fixture(scope="module")
def pairs() -> TranslationPairs:
    """The first PAIRS distinct English sentences of fra-eng's training split with their first translation,
    tokenized on themselves; the fixed test split as test."""
    corpus = load_fra_eng(data_root())
    first: dict[str, str] = {}
    for source, target in zip(*corpus.train):
        if len(source.split()) <= MAX_WORDS:
            first.setdefault(source, target)
    sources = list(first)[:PAIRS]
    train = (sources, [first[source] for source in sources])
    return TranslationPairs.of("fra-eng", {"train": train, "validation": train, "test": corpus.test},
                               max_length=MAX_WORDS)


@pytest.fixture(scope="module")
def overfit(pairs) -> keras.Model:
    model = build(pairs.info)
    TASK.compile(model, keras.optimizers.Adam(2e-2), jit_compile=False, steps_per_execution=25)
    model.fit(pairs.dataset("train", PAIRS).repeat(), steps_per_epoch=OVERFIT_STEPS, epochs=1, verbose=0)
    return model


def teacher_forced_steps(model: keras.Model, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Logits (B, T, V) from the decoding step fed the reference one token at a time."""
    step = decoding_step(model)
    state, logits = step.start(inputs["source"]), []
    for position in range(inputs["target"].shape[1]):
        step_logits, state = step.step(state, inputs["target"][:, position])
        logits.append(step_logits)
    return np.stack(logits, axis=1)


# --- the model ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("score", ["general", "dot"])
def test_logits_for_every_target_position_and_the_step_equals_the_full_pass(pairs, score):
    model = build(pairs.info, score=score)
    inputs = pairs.take("test", 8)
    logits = np.asarray(model(inputs))
    assert [tensor.name for tensor in model.inputs] == ["source", "target"]
    assert logits.shape == (8, pairs.info.target_length, pairs.info.num_classes)
    TASK.check_data(model, pairs)
    np.testing.assert_allclose(teacher_forced_steps(model, inputs), logits, atol=1e-5)


def test_padded_source_positions_get_no_attention(pairs):
    """More padding after a sentence changes nothing: the encoder skips it and attention gives it no weight."""
    model = build(pairs.info)
    inputs = pairs.take("test", 8)
    assert (inputs["source"] == 0).any()
    padded = {**inputs, "source": np.pad(inputs["source"], ((0, 0), (0, 5)))}
    np.testing.assert_allclose(teacher_forced_steps(model, padded), np.asarray(model(inputs)), atol=1e-5)


def test_bad_settings_and_edge_export_fail_in_one_line(pairs):
    with pytest.raises(KerasdlError, match="unknown attention score 'additive'"):
        build(pairs.info, score="additive")
    with pytest.raises(KerasdlError, match="not a translation data set"):
        build(DatasetInfo("digits", (64,), 10, ()))
    with pytest.raises(ExportError, match="only the translator exports"):
        TASK.edge_part(build(pairs.info))


# --- training, decoding, reload ----------------------------------------------------------------------------
@pytest.mark.slow
def test_overfits_64_pairs_and_decodes_them_back(overfit, pairs):
    sources, decoder_inputs, labels = pairs.arrays("train")
    logits = np.asarray(overfit({"source": sources, "target": decoder_inputs}))
    loss = float(TASK.loss()(labels, logits))
    assert loss < 0.05, loss
    sentences, references = (texts[:16] for texts in pairs.pairs_texts("train"))
    decoded = translate(overfit, pairs, sentences)
    targets = [pairs.target_text(row) for row in labels[:16]]
    assert np.mean([ours == target for ours, target in zip(decoded, targets)]) >= 0.9, list(zip(decoded, targets))
    assert translate(overfit, pairs, sentences[:4], beam_size=3) == decoded[:4]


@pytest.mark.slow
def test_trained_step_equals_full_pass_and_reloads_from_keras_file(overfit, pairs, tmp_path):
    inputs = pairs.take("train", 16)
    logits = np.asarray(overfit(inputs))
    np.testing.assert_allclose(teacher_forced_steps(overfit, inputs), logits, atol=1e-4)
    overfit.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")  # no custom_objects: all registered
    assert reloaded.name == overfit.name
    np.testing.assert_allclose(np.asarray(reloaded(inputs)), logits, atol=1e-6)
    sentences = pairs.pairs_texts("train")[0][:4]
    assert translate(reloaded, pairs, sentences) == translate(overfit, pairs, sentences)


def test_tape_loop_step_lowers_the_loss(pairs):
    model = build(pairs.info)
    step = TASK.train_step(model, keras.optimizers.Adam(1e-2))
    x, y = next(iter(pairs.dataset("train", PAIRS, shuffle_seed=0)))
    losses = [float(step(x, y)["loss"]) for _ in range(3)]
    assert losses[-1] < losses[0], losses
