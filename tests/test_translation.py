"""Translation: sentence pairs and their errors, the masked loss, the Transformer translator (overfitting 64
pairs, BLEU on held-out fra-eng pairs), greedy and beam search, the key/value cache against full passes,
its TFLite decoding step against Keras in the TF-free runner, and `kerasdl translate`.

One small translator is trained per module on the short fra-eng pairs (see SMALL) and shared.
"""

from __future__ import annotations

import gzip
import json

import keras
import numpy as np
import pytest

import kerasdl
from kerasdl.cli import main
from kerasdl.data import data_root, load
from kerasdl.data.translation import (
    END_ID, START_ID, TranslationPairs, grouped_split, load_en_cmn, load_fra_eng, load_multi30k, read_pairs, reference,
    target_tokens,
)
from kerasdl.edge.runner import EdgeModel, TextEncoder, detokenize, translate_text
from kerasdl.errors import DataError, KerasdlError
from kerasdl.export.errors import ExportError
from kerasdl.export.exporter import export_run
from kerasdl.registry import model_spec
from kerasdl.tasks import get_task
from kerasdl.tasks.translation import beam_search, decoding_step, greedy, masked_cross_entropy, translate
from kerasdl.training import TrainConfig

TASK = get_task("translation")
# Pairs of at most 5 words (tokens) a side: about 15,600 training pairs, 1,908 test pairs. One encoder and one
# decoder block of width 64, 3 epochs of batch 128 (366 steps): 242 s on the shared, loaded 2-core machine.
SMALL = {
    "epochs": 3, "batch_size": 128, "learning_rate": 2e-3,
    "model_params": {"layers": 1, "embedding_dim": 64, "units": 128, "heads": 4, "dropout": 0.1},
    "task_params": {"sequence_length": 5, "vocabulary_size": 6000},
}
MIN_BLEU = 8.0  # measured: greedy 11.5, beam 12.0 (chrF 31.1, 30.5) on the first 500 test pairs


@pytest.fixture(scope="module")
def fra_eng() -> TranslationPairs:
    return load("fra-eng")


@pytest.fixture(scope="module")
def small(trained):
    return trained(TrainConfig("translator", **SMALL))


@pytest.fixture(scope="module")
def small_data(small) -> TranslationPairs:
    from kerasdl.training.train import load_for

    return load_for(small.run.read_config(), state=small.run.read_data_state())


# --- data --------------------------------------------------------------------------------------------------
def test_french_is_tokenized_into_words_and_punctuation_and_joined_back():
    assert target_tokens("Je t\u2019aime\u202f!", "word") == ("je", "t'", "aime", "!")
    assert target_tokens("Parle-nous-en.", "word") == ("parle", "-", "nous", "-", "en", ".")
    assert reference("Aujourd'hui, j'ai vu l'Éléphant.", "word") == "aujourd'hui, j'ai vu l'éléphant."
    assert target_tokens("我爱你。", "character") == ("我", "爱", "你", "。")
    assert detokenize(["我", "爱", "你"], "character") == "我爱你"


def test_fra_eng_pairs_become_shifted_ids_with_start_and_end(fra_eng):
    sources, decoder_inputs, labels = fra_eng.arrays("test")
    info = fra_eng.info
    assert sources.shape == (info.split_sizes["test"], *info.input_shape) and decoder_inputs.shape == labels.shape
    assert labels.shape[1] == info.target_length and info.num_classes == fra_eng.target_tokenizer.size
    assert fra_eng.target_tokenizer.vocabulary[START_ID : END_ID + 1] == ("[start]", "[end]")
    assert np.all(decoder_inputs[:, 0] == START_ID)
    np.testing.assert_array_equal(decoder_inputs[:, 1:], np.where(labels[:, :-1] == END_ID, 0, labels[:, :-1]))
    assert np.all((labels == END_ID).sum(axis=1) == 1)
    assert fra_eng.target_text(labels[0]) == reference(fra_eng.pairs_texts("test")[1][0], "word")
    assert sum(info.split_sizes.values()) == 76_037


def test_test_sentences_are_fixed_and_never_trained_on(fra_eng):
    corpus = load_fra_eng(data_root())  # its test split is made before any run's seed is known
    assert corpus.test == fra_eng.pairs_texts("test")
    assert grouped_split(corpus.train, 0.1, 1)[1] != fra_eng.pairs_texts("validation")
    train = set(fra_eng.pairs_texts("train")[0])
    assert not train & set(fra_eng.pairs_texts("test")[0]) and not train & set(fra_eng.pairs_texts("validation")[0])


def test_limits_and_saved_vocabularies(fra_eng):
    short = TASK.adapt_data(fra_eng, {"sequence_length": 4, "train_samples": 500, "vocabulary_size": 300})
    assert short.info.split_sizes["train"] == 500 and short.info.input_shape == (4,)
    assert short.info.vocabulary_size <= 300 and short.info.num_classes <= 300
    assert all(len(text.split()) <= 4 for text in short.pairs_texts("test")[0])
    again = TranslationPairs.from_state("fra-eng", json.loads(json.dumps(short.state())))
    np.testing.assert_array_equal(again.source_ids(["I'm ill."]), short.source_ids(["I'm ill."]))
    assert again.info.target_length == short.info.target_length
    with pytest.raises(KerasdlError, match="unknown task parameter"):
        TASK.adapt_data(fra_eng, {"noise": 0.1})
    with pytest.raises(KerasdlError, match="word level"):
        TASK.adapt_data(fra_eng, {"tokenizer": "character"})


def test_en_cmn_and_multi30k():
    mandarin, multi30k = load("en-cmn"), load("multi30k")
    assert mandarin.target_level == "character" and mandarin.bleu_tokenize == "zh"
    first_reference = reference(mandarin.pairs_texts("test")[1][0], "character")
    assert mandarin.target_text(mandarin.labels("test")[0]) == first_reference
    assert multi30k.info.split_sizes["validation"] <= 1014 and multi30k.info.split_sizes["test"] <= 1000


def test_missing_corrupt_and_offline_data_fail_in_one_line(tmp_path, monkeypatch):
    import kerasdl.data.translation as translation

    bad = tmp_path / "fra.txt"
    bad.write_text("Go.\tVa !\nno tab here\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"fra.txt:2: expected 'English<TAB>translation'"):
        read_pairs(bad, 2)
    with pytest.raises(DataError, match="cmn.txt is missing"):
        load_en_cmn(tmp_path)
    monkeypatch.setattr(translation, "FRA_ENG_URL", "http://127.0.0.1:9/fra-eng.zip")  # refused at once: offline
    with pytest.raises(DataError, match="could not be downloaded"):
        load_fra_eng(tmp_path)
    folder = tmp_path / "multi30k"
    folder.mkdir()
    for stem in ("train", "val", "test_2016_flickr"):
        for language in ("en", "fr"):
            (folder / f"{stem}.{language}.gz").write_bytes(gzip.compress(b"A dog.\n"))
    (folder / "val.fr.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="val.fr.gz is corrupt"):
        load_multi30k(tmp_path)


def test_the_loss_ignores_padding():
    targets = np.array([[5, 3, 0, 0]])
    logits = np.random.default_rng(0).normal(size=(1, 4, 8)).astype(np.float32)
    changed = logits.copy()
    changed[0, 2:] += 10.0  # padding positions: their logits must not matter
    assert float(masked_cross_entropy(targets, logits)) == pytest.approx(float(masked_cross_entropy(targets, changed)))
    expected = -np.mean([keras.ops.log_softmax(logits[0, i])[t] for i, t in enumerate((5, 3))])
    assert float(masked_cross_entropy(targets, logits)) == pytest.approx(float(expected), rel=1e-5)


# --- the translator ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_translator_overfits_64_pairs(fra_eng):
    """64 pairs of distinct English sentences (one with two translations could never reach zero loss)."""
    first = {}
    for source, target in zip(*fra_eng.pairs_texts("train")):
        if len(source.split()) <= 6 and len(target_tokens(target, "word")) <= 6:
            first.setdefault(source, target)
    pairs = (list(first)[:64], list(first.values())[:64])
    data = TranslationPairs.of("fra-eng", {"train": pairs, "validation": pairs, "test": pairs})
    keras.utils.set_random_seed(0)
    model = model_spec("translator").build(data.info, layers=1, embedding_dim=64, units=128, dropout=0.0)
    TASK.compile(model, keras.optimizers.Adam(3e-3))
    history = model.fit(data.dataset("train", 16, shuffle_seed=0), epochs=60, verbose=0)
    assert history.history["loss"][-1] < 0.05  # passes in 60 epochs; 64 pairs with repeated sources stalled at 0.12
    translations = translate(model, data, pairs[0])
    assert np.mean([t == reference(r, "word") for t, r in zip(translations, pairs[1])]) >= 0.9


@pytest.mark.slow
def test_small_run_translates_held_out_pairs(small):
    metrics = small.metrics
    assert metrics["test_bleu"] >= MIN_BLEU and metrics["test_bleu_beam"] >= MIN_BLEU
    assert metrics["bleu_pairs"] == 500 and len(metrics["examples"]) == 5
    assert set(metrics["examples"][0]) == {"source", "reference", "greedy", "beam"}


class FullPass:
    """A DecodingStep without a cache: the whole model rerun on the prefix at each step."""

    def __init__(self, model):
        self.model = model

    def start(self, sources):
        return sources, np.zeros((len(sources), 0), np.int32)

    def step(self, state, tokens):
        sources, prefix = state
        prefix = np.concatenate([prefix, np.asarray(tokens, np.int32)[:, None]], axis=1)
        padded = np.zeros((len(sources), self.model.inputs[1].shape[1]), np.int32)
        padded[:, : prefix.shape[1]] = prefix
        logits = np.asarray(self.model({"source": sources, "target": padded}, training=False))
        return logits[:, prefix.shape[1] - 1], (sources, prefix)

    def reorder(self, state, rows):
        return state[0][rows], state[1][rows]


@pytest.mark.slow
def test_cached_decoding_equals_full_passes_and_beam_of_one_is_greedy(small, small_data):
    sources, length = small_data.arrays("test")[0][:32], small_data.info.target_length
    cached, full = decoding_step(small.model), FullPass(small.model)
    state, reference_state = cached.start(sources), full.start(sources)
    tokens = np.full(len(sources), START_ID)
    for _ in range(length):
        logits, state = cached.step(state, tokens)
        expected, reference_state = full.step(reference_state, tokens)
        np.testing.assert_allclose(logits, expected, atol=1e-4)
        tokens = expected.argmax(axis=-1)
    assert greedy(cached, sources, length) == greedy(full, sources, length)
    assert beam_search(cached, sources, length, 1) == greedy(cached, sources, length)
    assert beam_search(cached, sources, length, 3) == beam_search(full, sources, length, 3)


@pytest.mark.slow
def test_tflite_step_translates_as_keras_in_the_runner(small, small_data, tmp_path, capsys):
    result = export_run(small.run.path, "tflite", tmp_path / "tflite", latency_runs=2)
    report = result.report
    assert report["builtin_ops_only"] and report["targets"]["met"], report["targets"]
    sentences = small_data.pairs_texts("test")[0][:16] + ["The cat sat on the mat."]
    edge = EdgeModel(result.artifact)
    spec = edge.preprocessing.spec
    translated = translate_text(edge.logits, edge.preprocessing.encoder, TextEncoder(spec["input"]["target_tokenizer"]),
                                sentences, spec["cache_size"], spec["start_id"], spec["end_id"])
    assert translated == translate(small.model, small_data, sentences)
    assert main(["infer", str(result.artifact), "--text", sentences[-1]]) == 0
    assert capsys.readouterr().out.strip() == translated[-1]
    # kerasdl.pipeline: the run (Keras) and its export (TF-free) translate alike, in Hugging Face's shape.
    expected = [{"translation_text": text} for text in translated[-2:]]
    assert kerasdl.pipeline("translation", small.run.path)(sentences[-2:]) == expected
    assert kerasdl.pipeline("translation", tmp_path / "tflite")(sentences[-2:]) == expected
    assert kerasdl.pipeline("translation", result.artifact)(sentences[-1]) == expected[-1:]
    with pytest.raises(ExportError, match="full-integer"):
        export_run(small.run.path, "tflite-int8", tmp_path / "int8")


@pytest.mark.slow
def test_translate_command_and_reload(small, small_data, tmp_path, capsys):
    reloaded = keras.saving.load_model(small.run.path / "model.keras")
    batch = small_data.take("test", 8)
    np.testing.assert_allclose(reloaded(batch, training=False), small.model(batch, training=False), atol=1e-5)
    assert main(["translate", str(small.run.path), "I'm ill.", "--beam-size", "3"]) == 0
    assert capsys.readouterr().out.strip() == translate(small.model, small_data, ["I'm ill."], 3)[0]
    other = tmp_path / "mlp-run"
    other.mkdir()
    (other / "model.keras").write_bytes(b"")
    (other / "config.json").write_text(json.dumps({"model": "mlp", "data": "digits"}))
    assert main(["translate", str(other), "Hello."]) == 2
    assert "translate needs a translation model" in capsys.readouterr().err


@pytest.mark.slow
def test_served_translations_equal_the_runners(small, small_data, tmp_path):
    from kerasdl.serve.app import create_app
    from kerasdl.serve.repository import ModelRepository

    artifact = export_run(small.run.path, "tflite", tmp_path / "tflite", latency_runs=1).artifact
    client = create_app(ModelRepository.load(artifact.parent)).test_client()
    name = client.get("/v1/models").json["models"][0]["name"]
    sentences = small_data.pairs_texts("test")[0][:8] + ["The cat sat on the mat."]
    served = client.post(f"/v1/models/{name}:predict", json={"texts": sentences})
    assert served.status_code == 200, served.json
    edge = EdgeModel(artifact)
    spec = edge.preprocessing.spec
    runner = translate_text(edge.logits, edge.preprocessing.encoder, TextEncoder(spec["input"]["target_tokenizer"]),
                            sentences, spec["cache_size"], spec["start_id"], spec["end_id"])
    assert served.json["translations"] == runner, "the served translations differ from the runner's"

    refused = client.post(f"/v1/models/{name}:predict", json={"texts": ["Hello.", "  "]})
    assert refused.status_code == 400 and "an empty text" in refused.json["error"], refused.json
