"""BERT: the 80/10/10 masking, masked-LM pretraining on english-corpus against the unigram baseline, a
classifier fine-tuned from that run's encoder, fill-mask and the classifier on the edge, and clear errors."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import kerasdl
from kerasdl.cli import main
from kerasdl.data.masked_lm import MASK, MaskedSentences, mask_tokens, pack
from kerasdl.data.text import TextCorpus
from kerasdl.edge.runner import RunnerError, TextEncoder, mask_encode
from kerasdl.evaluation.contextual_embeddings import sense_similarities
from kerasdl.errors import KerasdlError
from kerasdl.export.exporter import export_model, export_run
from kerasdl.models.bert import ENCODER, build_bert_classifier
from kerasdl.registry import model_spec
from kerasdl.tasks.masked_language_modelling import fill_mask
from kerasdl.training import TrainConfig, train
from kerasdl.training.train import load_for

# A short pretraining: 120 steps of 64 rows of 32 words (7,680 rows drawn from english-corpus's training split).
PRETRAIN = TrainConfig(
    "bert-mini", data="english-corpus", epochs=1, batch_size=64, learning_rate=2e-3, lr_schedule="cosine",
    task_params={"train_samples": 7680},
)
FINE_TUNE = {"epochs": 1, "batch_size": 64, "learning_rate": 5e-4}
FILL_TEXT = "the movie was [MASK] and the acting was [MASK] ."


def test_masking_follows_berts_rates_and_never_chooses_padding():
    rng = np.random.default_rng(0)
    ids = rng.integers(2, 1000, size=(4000, 32), dtype=np.int32)
    ids[::2, 20:] = 0  # half the rows end in padding
    ids[:, 5] = 1  # out-of-vocabulary tokens
    inputs, targets = (np.asarray(part) for part in mask_tokens(ids, (3, 4), mask_id=1000))
    words = ids >= 2
    chosen = targets > 0
    assert not chosen[~words].any() and (inputs[~words] == ids[~words]).all()  # padding and OOV untouched
    assert (targets[chosen] == ids[chosen]).all() and (inputs[~chosen] == ids[~chosen]).all()
    assert abs(chosen.sum() / words.sum() - 0.15) < 0.005  # 15% of ~112,000 words: sd 0.001
    masked, kept = inputs[chosen] == 1000, inputs[chosen] == ids[chosen]
    replaced = ~masked & ~kept
    assert abs(masked.mean() - 0.8) < 0.01 and abs(replaced.mean() - 0.1) < 0.01  # of ~16,800 chosen: sd 0.003
    assert abs(kept.mean() - 0.1) < 0.01
    assert ((inputs[chosen][replaced] >= 2) & (inputs[chosen][replaced] < 1000)).all()  # random words, never [MASK]
    again = np.asarray(mask_tokens(ids, (3, 4), mask_id=1000)[0])
    assert (again == inputs).all() and not (np.asarray(mask_tokens(ids, (3, 5), mask_id=1000)[0]) == inputs).all()


def small_corpus() -> MaskedSentences:
    sentences = [f"the film number {i} was good and the plot was bad" for i in range(200)]
    corpus = TextCorpus((sentences, np.zeros(0, np.int32)), (sentences[:40], np.zeros(0, np.int32)))
    return MaskedSentences.of(corpus.bundle("tiny", validation_fraction=0.1, seed=0, image_size=None),
                              sequence_length=8, vocabulary_size=64)


def test_sentences_are_packed_and_training_masks_afresh_each_epoch():
    assert (pack(np.array([[3, 4, 0, 0], [5, 6, 7, 0], [8, 9, 10, 11]]), None) == [[3, 4, 5, 6], [7, 8, 9, 10]]).all()
    data = small_corpus()
    assert data.tokenizer.vocabulary[-1] == MASK and data.mask_id == 63 and data.info.input_shape == (8,)
    assert (data.ids("train") > 0).all()  # packed: no padding
    train = data.dataset("train", 1000, shuffle_seed=0)
    first, second = ([np.asarray(t) for t in batch] for batch in (next(iter(train)), next(iter(train))))
    assert not np.array_equal(first[1] > 0, second[1] > 0)  # a fresh masking (and order) each epoch
    fixed = [np.asarray(next(iter(data.dataset("test", 1000)))[1]) for _ in range(2)]
    assert np.array_equal(fixed[0], fixed[1]) and np.array_equal(fixed[0], data.labels("test"))
    with pytest.raises(KerasdlError, match="vocabulary_size must be a whole number >= 4"):
        MaskedSentences.of(data.text, vocabulary_size=2)


def test_mask_encoding_keeps_the_mask_token_and_fails_clearly():
    encoder = TextEncoder({"vocabulary": ["", "[UNK]", "the", "movie", MASK], "level": "word", "sequence_length": 4,
                           "standardize": "lower_and_strip_punctuation"})
    ids, positions = mask_encode(encoder, "The [MASK] movie", MASK)  # standardizing would strip its brackets
    assert ids.tolist() == [2, 4, 3, 0] and positions == [1]
    with pytest.raises(RunnerError, match=r"no \[MASK\] to fill"):
        mask_encode(encoder, "the movie", MASK)
    with pytest.raises(RunnerError, match="has 5 tokens; this model reads at most 4"):
        mask_encode(encoder, "the movie the movie [MASK]", MASK)


# --- pretraining and fine-tuning (trained once for the module) -------------------------------------------------


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    return train(PRETRAIN, out=tmp_path_factory.mktemp("bert-mini"), verbose=0)


@pytest.fixture(scope="module")
def classifier(pretrained, tmp_path_factory):
    config = TrainConfig("bert-classifier", data="sst2", model_params={"backbone": str(pretrained.run.path)},
                         **FINE_TUNE)
    return train(config, out=tmp_path_factory.mktemp("bert-classifier"), verbose=0)


@pytest.mark.slow
def test_pretraining_beats_the_unigram_baseline(pretrained):
    metrics = pretrained.metrics
    assert metrics["task"] == "masked-language-modelling" and metrics["test_masked_tokens"] > 2000
    assert metrics["test_loss"] < metrics["unigram_loss"] - 0.1, metrics
    assert metrics["test_masked_accuracy"] > 0.05  # measured 0.076
    assert set(metrics["fill_mask"]) and all(len(words) == 5 for words in metrics["fill_mask"].values())


@pytest.mark.slow
def test_contextual_vectors_of_a_word_differ_by_sentence(pretrained):
    rows = sense_similarities(pretrained.model.get_layer(ENCODER), pretrained.run.read_data_state()["tokenizer"])
    assert [row["word"] for row in rows] == ["bass", "apple"] and all(row["in_vocabulary"] for row in rows)
    for row in rows:  # one vector per sentence, not one per word: no cosine is 1
        assert all(-1 < row[key] < 0.99 for key in ("within_first", "within_second", "across"))


@pytest.mark.slow
def test_fill_mask_on_the_edge_matches_keras(pretrained, tmp_path, capsys):
    run, model = pretrained.run, pretrained.model
    state = run.read_data_state()
    expected = [[guess["token"] for guess in mask] for mask in fill_mask(model, state["tokenizer"], FILL_TEXT, 3)]
    data = load_for(run.read_config(), state=state)
    for fmt in ("tflite", "onnx"):
        report = export_model(model, data, fmt, tmp_path / fmt, task="masked-language-modelling", family="bert",
                              latency_runs=2).report
        assert report["targets"]["met"], report["parity"]
        assert report.get("builtin_ops_only", True), report
        artifact = next(path for path in (tmp_path / fmt).iterdir() if path.suffix in (".tflite", ".onnx"))
        capsys.readouterr()
        assert main(["infer", str(artifact), "--text", FILL_TEXT, "--top-k", "3", "--json"]) == 0
        result = json.loads(capsys.readouterr().out)["results"][0]
        assert [[guess["token"] for guess in mask] for mask in result["masks"]] == expected
        assert "[MASK]" not in result["filled"]
    # kerasdl.pipeline: the run (Keras) and its export (TF-free) fill alike, in Hugging Face's shape.
    answers = [kerasdl.pipeline("fill-mask", where, top_k=3)(FILL_TEXT) for where in (run.path, tmp_path / "tflite")]
    for answer in answers:
        assert [[candidate["token_str"] for candidate in mask] for mask in answer] == expected  # two masks: a list each
        assert all(candidate["sequence"].count("[MASK]") == 1 for mask in answer for candidate in mask)
    scores = [[candidate["score"] for mask in answer for candidate in mask] for answer in answers]
    np.testing.assert_allclose(scores[0], scores[1], atol=2e-4)


@pytest.mark.slow
def test_classifier_starts_from_the_backbones_encoder(pretrained):
    data = load_for(TrainConfig("bert-classifier", data="sst2"))
    model = build_bert_classifier(data.info, backbone=str(pretrained.run.path))
    source, target = pretrained.model.get_layer(ENCODER), model.get_layer(ENCODER)
    for layer in source.layers:
        if layer.name.startswith("encoder_") or layer.name == "embedding_norm":
            for a, b in zip(layer.get_weights(), target.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(a, b)
    vocabulary = pretrained.run.read_data_state()["tokenizer"]["vocabulary"]
    tokens = source.get_layer("embedding").token_embedding.embeddings.numpy()
    mine = target.get_layer("embedding").token_embedding.embeddings.numpy()
    np.testing.assert_array_equal(mine[data.tokenizer.index("movie")], tokens[vocabulary.index("movie")])
    random = build_bert_classifier(data.info)
    assert [w.shape for w in random.weights] == [w.shape for w in model.weights]
    assert not np.array_equal(random.get_layer(ENCODER).get_layer("encoder_1").get_weights()[0],
                              target.get_layer("encoder_1").get_weights()[0])


@pytest.mark.slow
def test_fine_tuned_classifier_trains_and_classifies_on_the_edge(classifier, tmp_path, capsys):
    assert classifier.metrics["test_accuracy"] > 0.7, classifier.metrics  # measured 0.744 (1 epoch)
    texts = ["a gorgeous , witty , seductive movie .", "the plot is a dull , tedious mess ."]
    state = classifier.run.read_data_state()
    expected = classifier.model.predict(TextEncoder(state["tokenizer"]).encode(texts), verbose=0).argmax(axis=1)
    for fmt in ("tflite", "onnx"):
        report = export_run(classifier.run.path, fmt, tmp_path / fmt, latency_runs=2).report
        assert report["targets"]["met"], report["parity"]
        assert report.get("builtin_ops_only", True), report
        artifact = next(path for path in (tmp_path / fmt).iterdir() if path.suffix in (".tflite", ".onnx"))
        capsys.readouterr()
        assert main(["infer", str(artifact), *[arg for text in texts for arg in ("--text", text)], "--json"]) == 0
        predictions = json.loads(capsys.readouterr().out)["predictions"]
        assert [top[0]["index"] for top in predictions] == list(expected)


@pytest.mark.slow
def test_backbone_errors_are_one_clear_line(classifier, tmp_path):
    info = load_for(classifier.run.read_config()).info
    with pytest.raises(KerasdlError, match="is not a finished bert-mini run: config.json is missing"):
        build_bert_classifier(info, backbone=str(tmp_path / "nowhere"))
    with pytest.raises(KerasdlError, match="is a 'bert-classifier' run, not a bert-mini run"):
        build_bert_classifier(info, backbone=str(classifier.run.path))
    with pytest.raises(KerasdlError, match="--backbone fixes the encoder's architecture"):
        build_bert_classifier(info, backbone=str(tmp_path), layers=4)


def test_registered_models():
    mini, classifier = model_spec("bert-mini"), model_spec("bert-classifier")
    assert (mini.family, mini.task, mini.default_data) == ("bert", "masked-language-modelling", "english-corpus")
    assert (classifier.family, classifier.task, classifier.default_data) == ("bert", "classification", "sst2")
    assert keras.saving.get_registered_object("kerasdl>MaskedTokenCrossEntropy") is not None


@pytest.mark.slow
def test_served_fill_mask_equals_the_runners_and_a_text_without_a_mask_is_refused(pretrained, tmp_path, capsys):
    from kerasdl.serve.app import create_app
    from kerasdl.serve.repository import ModelRepository

    run = pretrained.run
    data = load_for(run.read_config(), state=run.read_data_state())
    artifact = export_model(pretrained.model, data, "tflite", tmp_path / "tflite", task="masked-language-modelling",
                            family="bert", latency_runs=1).artifact
    client = create_app(ModelRepository.load(artifact.parent)).test_client()
    name = client.get("/v1/models").json["models"][0]["name"]
    served = client.post(f"/v1/models/{name}:predict", json={"text": FILL_TEXT, "top_k": 3})
    assert served.status_code == 200, served.json
    capsys.readouterr()
    assert main(["infer", str(artifact), "--text", FILL_TEXT, "--top-k", "3", "--json"]) == 0
    runner = json.loads(capsys.readouterr().out)["results"]
    assert served.json["results"] == runner, "the served fills differ from the runner's"
    assert [len(mask) for mask in runner[0]["masks"]] == [3, 3] and "[MASK]" not in runner[0]["filled"]

    refused = client.post(f"/v1/models/{name}:predict", json={"text": "the movie was good ."})
    assert refused.status_code == 400 and "no [MASK] to fill" in refused.json["error"], refused.json
