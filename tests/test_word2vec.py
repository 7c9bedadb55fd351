"""word2vec: skip-gram pairs (window, subsampling, negatives, seeds), the word-embedding task on real English
text, the neighbours command and analogies, the projector files, and the TFLite word vectors in the runner.

One word2vec model (64-d) is fitted per module for one epoch of SGD on the 3.2M skip-gram pairs of the
local English sentences, and saved as a run directory; a tiny run on 2,000 MR sentences goes through
`train` with the tape loop and through `evaluate_run`.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasdl.cli import main as cli
from kerasdl.data import load
from kerasdl.data.skipgrams import (
    SkipGramBundle,
    SkipGramSettings,
    draw_negatives,
    keep_probabilities,
    negative_distribution,
    skipgram_pairs,
    subsampled,
    texts_of,
)
from kerasdl.data.tokenizer import Tokenizer
from kerasdl.errors import KerasdlError, RunDirError
from kerasdl.evaluation.report import evaluate_run
from kerasdl.export.exporter import export_model
from kerasdl.models.embeddings import TARGET_EMBEDDING, load_word_vectors
from kerasdl.registry import model_spec
from kerasdl.tasks import get_task
from kerasdl.tasks.word_embedding import WordVectors
from kerasdl.training import RunDirectory, TrainConfig, train
from kerasdl.training.train import load_for

TASK = get_task("word-embedding")
EMBEDDING_DIM = 64
# SGD's step is on a batch mean over B x (1 + negatives) logits: 100 is about word2vec.c's 0.025 per pair.
FIT = {"batch_size": 1024, "optimizer": "sgd", "learning_rate": 100.0, "model_params": {"embedding_dim": EMBEDDING_DIM}}


# --- pairs on hand-made ids ------------------------------------------------------------------------------------
def test_window_one_pairs_each_word_with_its_neighbours_in_its_own_text():
    ids, text_index = np.array([2, 3, 4, 5, 6]), np.array([0, 0, 0, 1, 1])
    targets, contexts = skipgram_pairs(ids, text_index, window_size=1, seed=0)
    assert sorted(zip(targets.tolist(), contexts.tolist())) == [(2, 3), (3, 2), (3, 4), (4, 3), (5, 6), (6, 5)]


def test_pairs_stay_within_the_window_and_nearer_words_pair_more_often():
    ids = np.arange(2, 2002)  # id - 2 is the position: a pair's id difference is its distance
    text_index = np.arange(2000) // 100  # twenty texts of 100 words
    targets, contexts = skipgram_pairs(ids, text_index, window_size=4, seed=0)
    distance = np.abs(targets - contexts)
    assert distance.min() == 1 and distance.max() == 4
    assert np.all((targets - 2) // 100 == (contexts - 2) // 100)  # never across texts
    counts = np.bincount(distance)[1:]
    assert np.all(np.diff(counts) < 0)  # the random window b <= 4 makes nearer words count more
    assert counts[0] == 2 * 20 * 99  # distance 1 is always in reach (b >= 1): every adjacent pair, both ways


def test_negatives_are_never_the_true_context_never_padding_and_follow_unigram_to_the_075():
    counts = np.array([0, 0, 5000, 1000, 200, 40, 8])
    probabilities = negative_distribution(counts)
    contexts = np.random.default_rng(0).choice([2, 3, 4], size=50_000).astype(np.int32)
    negatives = draw_negatives(contexts, probabilities, 4, seed=1)
    assert negatives.shape == (50_000, 4) and negatives.min() >= 2
    assert not np.any(negatives == contexts[:, None])
    # Ids 5 and 6 are never a context: drawn again after a clash with context c, they get p / (1 - p_c).
    share = np.bincount(negatives.ravel(), minlength=7)[5:] / negatives.size
    expected = probabilities[5:] * np.mean(1 / (1 - probabilities[contexts]))
    np.testing.assert_allclose(share, expected, rtol=0.1)


def test_subsampling_discards_frequent_words_and_keeps_rare_ones():
    counts = np.array([0, 0, 1_000_000, 1000, 10])
    keep = keep_probabilities(counts, 1e-3)
    assert keep[2] < 0.05 and keep[4] == 1.0 and keep[2] < keep[3] <= keep[4]
    np.testing.assert_array_equal(keep_probabilities(counts, 0.0), 1.0)


def test_pairs_negatives_and_subsampling_are_fixed_by_their_seed():
    rng = np.random.default_rng(0)
    ids, text_index = rng.integers(2, 50, 5000), np.arange(5000) // 20
    probabilities = negative_distribution(np.bincount(ids, minlength=50))
    keep = keep_probabilities(np.bincount(ids, minlength=50), 1e-3)  # keeps about 1 in 4
    for draw in (
        lambda seed: skipgram_pairs(ids, text_index, 4, seed),
        lambda seed: subsampled(ids, text_index, keep, seed),
        lambda seed: (draw_negatives(ids, probabilities, 4, seed),),
    ):
        first, again, other = draw(0), draw(0), draw(1)
        assert all(np.array_equal(a, b) for a, b in zip(first, again))
        assert not all(np.array_equal(a, b) for a, b in zip(first, other))


# --- the bundle on a few hand-written texts -------------------------------------------------------------------
TEXTS = {
    "train": ["the king and the queen", "the man and the woman", "a good day and a great night"] * 20,
    "validation": ["the king and the man", "a great queen"] * 5,
    "test": ["the woman and the king", "a good night"] * 5,
}


@pytest.fixture(scope="module")
def small_bundle() -> SkipGramBundle:
    vocabulary = ("", "[UNK]", "the", "and", "a", "king", "queen", "man", "woman", "good", "day", "great", "night")
    settings = SkipGramSettings(window_size=2, negative_samples=3, subsample=0.0, min_count=1)
    return SkipGramBundle.of("tiny", TEXTS, Tokenizer(vocabulary, sequence_length=1), settings)


def test_batches_hold_a_target_its_true_context_and_negatives_labelled_one_then_zeros(small_bundle):
    (targets, contexts), labels = next(iter(small_bundle.dataset("train", 8, shuffle_seed=0)))
    assert targets.shape == (8, 1) and contexts.shape == (8, 4) and labels.shape == (8, 4)
    np.testing.assert_array_equal(labels.numpy(), np.tile([1.0, 0.0, 0.0, 0.0], (8, 1)))
    assert not np.any(contexts.numpy()[:, 1:] == contexts.numpy()[:, :1])
    assert small_bundle.info.input_shape == (1,) and small_bundle.runner_input()["tokenizer"]["sequence_length"] == 1


def test_training_passes_draw_new_negatives_and_a_seed_repeats_them(small_bundle):
    def passes(seed: int, count: int) -> list[np.ndarray]:
        ds = small_bundle.dataset("train", 1000, shuffle_seed=seed)
        return [np.concatenate([x[0].numpy(), x[1].numpy()], axis=1) for _ in range(count) for x, _ in ds]

    first, second = passes(0, 2)
    assert not np.array_equal(first, second)  # reshuffled, new negatives
    np.testing.assert_array_equal(passes(0, 1)[0], first)  # the same seed, the same first pass
    held_out = [np.asarray(x[1]) for x, _ in small_bundle.dataset("validation", 1000)]
    np.testing.assert_array_equal(held_out[0], small_bundle.contexts("validation"))  # fixed, in order


def test_the_vocabulary_travels_with_the_state_and_bad_params_fail_in_one_line(small_bundle):
    assert small_bundle.restored(json.loads(json.dumps(small_bundle.state()))) is small_bundle
    for params in ({"window": 3}, {"window_size": 0}, {"negative_samples": "4"}, {"subsample": 1.5}):
        with pytest.raises(KerasdlError):
            TASK.adapt_data(small_bundle, params)
    with pytest.raises(KerasdlError, match="is not text"):
        texts_of(load("digits"))


# --- word2vec on the local English sentences -------------------------------------------------------------------
@pytest.fixture(scope="module")
def english() -> SkipGramBundle:
    return load_for(TrainConfig("word2vec", data="english-text"))


@pytest.fixture(scope="module")
def run(english, tmp_path_factory) -> tuple[RunDirectory, dict, keras.Model]:
    """One epoch of SGD over every training pair, saved as a run directory (config, vocabulary, model, metrics)."""
    config = TrainConfig("word2vec", data="english-text", epochs=1, **FIT)
    run = RunDirectory(tmp_path_factory.mktemp("word2vec"))
    run.prepare(config.to_json())
    run.write_data_state(english.state())
    keras.utils.set_random_seed(0)
    model = model_spec("word2vec").build(english.info, **config.model_params)
    TASK.compile(model, keras.optimizers.SGD(config.learning_rate), jit_compile=True, steps_per_execution=32)
    model.fit(english.dataset("train", config.batch_size, shuffle_seed=0), epochs=1, shuffle=False, verbose=0)
    model.save(run.model_path)
    metrics = TASK.evaluate(model, english, {}, run.plots_dir)
    run.write_json(run.metrics_path, metrics)
    return run, metrics, model


def test_well_known_pairs_are_far_closer_than_the_same_words_paired_at_random(run):
    _, metrics, _ = run
    cosines = metrics["pair_cosines"]
    assert {"king/queen", "man/woman", "good/great", "father/mother", "boy/girl"} <= set(cosines)
    assert metrics["test_pair_cosine"] > metrics["test_random_cosine"] + 0.15, metrics
    assert np.mean([c > metrics["test_random_cosine"] for c in cosines.values()]) >= 0.8, cosines
    assert metrics["test_loss"] < math.log(2)  # below a model that knows nothing (every logit 0)
    assert len(metrics["neighbours"]["king"]) == 8 and "king" not in metrics["neighbours"]["king"]


def test_projector_files_are_one_word_and_one_vector_a_line(run, english):
    run_dir, metrics, model = run
    vectors = (run_dir.path / "vectors.tsv").read_text().splitlines()
    words = (run_dir.path / "metadata.tsv").read_text().splitlines()
    assert len(words) == len(vectors) == min(10_000, english.info.vocabulary_size - 2)
    assert words == list(english.info.vocabulary[2 : 2 + len(words)]) and all(w and "\t" not in w for w in words)
    table = np.asarray([[float(v) for v in line.split("\t")] for line in vectors])
    trained = model.get_layer(TARGET_EMBEDDING).embeddings.numpy()
    np.testing.assert_allclose(table, trained[2 : 2 + len(words)], atol=1e-5)
    assert (run_dir.plots_dir / "word_pca.png").stat().st_size > 10_000


def test_load_word_vectors_gives_the_vocabulary_and_the_target_table(run, english, tmp_path):
    run_dir, _, model = run
    vocabulary, vectors = load_word_vectors(run_dir.path)
    assert vocabulary == english.info.vocabulary and vectors.shape == (len(vocabulary), EMBEDDING_DIM)
    np.testing.assert_array_equal(vectors, model.get_layer(TARGET_EMBEDDING).embeddings.numpy())
    (tmp_path / "config.json").write_text(json.dumps({"model": "mlp"}))
    (tmp_path / "data_state.json").write_text("{}")
    (tmp_path / "model.keras").write_bytes(b"")
    with pytest.raises(RunDirError, match="not a word2vec run"):
        load_word_vectors(tmp_path)


def test_neighbours_and_analogies_leave_the_query_words_out(run):
    words = WordVectors.from_run(run[0].path)
    nearest = words.neighbours("King", 10)  # standardized as in training
    assert len(nearest) == 10 and "king" not in {n["word"] for n in nearest}
    cosines = [n["cosine"] for n in nearest]
    assert cosines == sorted(cosines, reverse=True)
    assert cosines[0] == pytest.approx(words.cosine("king", nearest[0]["word"]), abs=1e-4)
    found = {n["word"] for n in words.analogy("man", "king", "woman", 10)}
    assert not found & {"man", "king", "woman"}
    with pytest.raises(KerasdlError, match="not a word of this vocabulary"):
        words.neighbours("qwertyuiop")


def test_neighbours_command_prints_words_and_analogies_and_one_line_errors(run, capsys, tmp_path):
    path = str(run[0].path)
    assert cli(["neighbours", path, "king", "water", "--top-k", "5", "--analogy", "man", "king", "woman"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["king", "water", "man "]
    assert lines[2].startswith("man : king :: woman : ?: ")
    expected = WordVectors.from_run(path).neighbours("water", 5)
    assert lines[1] == "water: " + ", ".join(f"{n['word']} ({n['cosine']:.3f})" for n in expected)
    for args in ([path, "qwertyuiop"], [path], [str(tmp_path / "missing"), "king"]):
        assert cli(["neighbours", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("kerasdl neighbours: error:") and len(err.strip().splitlines()) == 1


def test_tflite_word_vectors_match_keras_and_the_runner_lists_the_same_neighbours(run, english, tmp_path, capsys):
    run_dir, _, model = run
    result = export_model(
        model, english, "tflite", tmp_path / "tflite", task=TASK.name, family="embeddings", latency_runs=5
    )
    report = result.report
    assert report["builtin_ops_only"] and report["targets"]["met"], report
    assert report["parity"]["max_abs_diff"] < 1e-5 and report["parity"]["neighbour_agreement"] == 1.0
    spec = json.loads((result.artifact.parent / "preprocessing.json").read_text())
    assert spec["task"] == "word-embedding" and spec["input"]["shape"] == [1] and spec["input"]["dtype"] == "int32"
    assert cli(["infer", str(result.artifact), "--text", "king", "--text", "good", "--top-k", "8", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["neighbours"]
    words = WordVectors.from_run(run_dir.path)
    for word in ("king", "good"):
        assert [n["word"] for n in found[word]] == [n["word"] for n in words.neighbours(word, 8)]


# --- the whole path: train (tape loop) into a run directory, then evaluate it ---------------------------------
@pytest.fixture(scope="module")
def review_sentences(tmp_path_factory) -> Path:
    """2,000 MR sentences as a user's CSV of text and label (word2vec ignores the labels)."""
    folder = Path(os.environ["KERASDL_DATA"]) / "mr"
    path = tmp_path_factory.mktemp("reviews") / "reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for label in ("neg", "pos"):
            lines = (folder / f"rt-polarity.{label}").read_text(encoding="utf-8").splitlines()[:1000]
            writer.writerows([line, label] for line in lines)
    return path


def test_tape_loop_trains_a_run_that_evaluate_reproduces(review_sentences, tmp_path):
    config = TrainConfig("word2vec", data=str(review_sentences), loop="tape", epochs=2, batch_size=256,
                         task_params={"window_size": 2, "negative_samples": 2})
    result = train(config, out=tmp_path / "run", verbose=0)
    metrics = result.metrics
    assert metrics["epochs"] == 2 and np.isfinite(metrics["test_loss"]) and metrics["test_samples"] > 1000
    state = json.loads((tmp_path / "run" / "data_state.json").read_text())
    vocabulary_size = result.model.get_layer(TARGET_EMBEDDING).input_dim
    assert len(state["tokenizer"]["vocabulary"]) == metrics["vocabulary_size"] == vocabulary_size
    again, _ = evaluate_run(str(tmp_path / "run"))
    assert again["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-6)


def test_served_neighbours_equal_the_runners_and_an_unknown_word_is_refused(run, english, tmp_path, capsys):
    from kerasdl.serve.app import create_app
    from kerasdl.serve.repository import ModelRepository

    _, _, model = run
    artifact = export_model(
        model, english, "tflite", tmp_path / "tflite", task=TASK.name, family="embeddings", latency_runs=1
    ).artifact
    client = create_app(ModelRepository.load(artifact.parent)).test_client()
    name = client.get("/v1/models").json["models"][0]["name"]
    served = client.post(f"/v1/models/{name}:predict", json={"words": ["king", "good"], "top_k": 8})
    assert served.status_code == 200, served.json
    capsys.readouterr()
    assert cli(["infer", str(artifact), "--text", "king", "--text", "good", "--top-k", "8", "--json"]) == 0
    runner = json.loads(capsys.readouterr().out)["neighbours"]
    assert served.json["neighbours"] == runner, "the served neighbours differ from the runner's"
    assert [len(found) for found in runner.values()] == [8, 8]

    refused = client.post(f"/v1/models/{name}:predict", json={"word": "qwertyuiop"})
    assert refused.status_code == 400 and "'qwertyuiop' is not one word of the vocabulary" in refused.json["error"]
