"""Text data: the real sets' splits, a user's CSV/TSV, and tokenization that the TF-free runner reproduces."""

from __future__ import annotations

import numpy as np
import pytest

from kerasdl.data import load
from kerasdl.data.text import TextBundle, read_text_file
from kerasdl.data.tokenizer import Tokenizer
from kerasdl.edge.runner import TextEncoder
from kerasdl.errors import DataError, KerasdlError


@pytest.fixture(scope="module")
def sst2() -> TextBundle:
    return load("sst2")


def test_sst2_is_kims_split_with_dev_as_validation(sst2):
    assert sst2.info.split_sizes == {"train": 6920, "validation": 872, "test": 1821}
    assert sst2.info.class_names == ("negative", "positive")
    assert sst2.texts["test"][0] == "no movement , no yuks , not much of anything ."
    assert np.bincount(sst2.labels("test")).tolist() == [912, 909]
    # the vocabulary comes from the training split only, ids 0 and 1 pad and stand for unknown words
    assert sst2.tokenizer.vocabulary[:3] == ("", "[UNK]", "the")
    assert sst2.info.vocabulary_size == sst2.tokenizer.size == len(sst2.info.vocabulary)
    assert sst2.ids("test").shape == (1821, sst2.info.input_shape[0])


def test_mr_split_is_fixed_80_10_10_whatever_the_seed():
    first, second = load("mr", seed=0), load("mr", seed=7)
    assert first.info.split_sizes == {"train": 8528, "validation": 1067, "test": 1067}
    assert first.texts["test"] == second.texts["test"] and first.texts["validation"] == second.texts["validation"]
    assert not set(first.texts["test"]) & set(first.texts["train"]) - {""}  # no sentence in both (MR has few repeats)
    assert abs(np.mean(first.labels("test")) - 0.5) < 0.01  # stratified


def test_shakespeare_is_one_contiguous_stream_split_90_10():
    bundle = load("shakespeare")
    train, validation, test = (bundle.texts[split][0] for split in ("train", "validation", "test"))
    assert len(train) + len(validation) + len(test) == 1_115_394
    assert len(test) == 1_115_394 - int(1_115_394 * 0.9)
    assert train.startswith("First Citizen:") and len(validation) == pytest.approx(0.1 * (len(train) + len(validation)), abs=1)
    assert bundle.tokenizer.level == "character" and bundle.tokenizer.size == 67  # 65 characters, padding and OOV
    with pytest.raises(KerasdlError, match="unlabelled text"):
        bundle.labels("train")


def test_the_runner_tokenizes_every_sst2_and_mr_test_sentence_as_text_vectorization(sst2):
    """The exported graph takes ids; the runner must produce TextVectorization's ids on its own (standardization,
    OOV, padding and truncation), here on every test sentence and on sentences made to be hard."""
    mr = load("mr")
    tricky = ["", "   ", "ÉCOLE École école", "Don't STOP!!! (ever)", "tab\tand\nnewline", "word " * 300,
              "naïve café — “quoted” ½", "a-b_c/d\\e'f", "\u00a0non-breaking\u2009spaces"]
    for bundle, texts in ((sst2, sst2.texts["test"] + tricky), (mr, mr.texts["test"] + tricky)):
        encoder = TextEncoder(bundle.tokenizer.to_json())
        np.testing.assert_array_equal(encoder.encode(texts), bundle.tokenizer.encode(texts))
    assert (sst2.ids("test") == 1).any() and (sst2.ids("test") == 0).any()  # OOV and padding both exercised
    truncated = Tokenizer(sst2.tokenizer.vocabulary, sequence_length=3)
    np.testing.assert_array_equal(TextEncoder(truncated.to_json()).encode(["the film is good"]),
                                  truncated.encode(["the film is good"]))


def test_the_runner_encodes_and_decodes_characters_as_keras():
    text = load("shakespeare").texts["test"][0][:5000] + "é"
    tokenizer = load("shakespeare").tokenizer
    encoder = TextEncoder(tokenizer.to_json())
    np.testing.assert_array_equal(encoder.encode_stream(text), tokenizer.encode_stream(text))
    assert encoder.decode(tokenizer.encode_stream("ROMEO:\nO")) == tokenizer.decode(tokenizer.encode_stream("ROMEO:\nO")) == "ROMEO:\nO"


def test_a_run_keeps_its_vocabulary(sst2):
    """state() is what training writes to data_state.json; restored() makes another load use it."""
    other = load("mr").restored(sst2.state())
    assert other.tokenizer == sst2.tokenizer and other.info.input_shape == sst2.info.input_shape
    assert other.texts["test"] == load("mr").texts["test"]
    assert Tokenizer.from_json(sst2.tokenizer.to_json()) == sst2.tokenizer


# --- a user's own file ----------------------------------------------------------------------------------------

REVIEWS = [("a gorgeous, witty film", "pos"), ("dull and far too long", "neg")] * 10


@pytest.mark.parametrize("suffix, delimiter", [(".csv", ","), (".tsv", "\t")])
@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("label_first", [True, False])
def test_user_files_in_either_column_order_with_or_without_header(tmp_path, suffix, delimiter, header, label_first):
    import csv

    path = tmp_path / f"reviews{suffix}"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        if header:
            writer.writerow(["label", "text"] if label_first else ["review", "sentiment"])
        for text, label in REVIEWS:
            writer.writerow([label, text] if label_first else [text, label])
            writer.writerow([])  # empty lines are skipped
    bundle = load(str(path))
    assert bundle.info.class_names == ("neg", "pos")
    assert sum(bundle.info.split_sizes.values()) == 20
    assert "a gorgeous, witty film" in bundle.texts["train"] + bundle.texts["validation"] + bundle.texts["test"]


def test_user_file_errors_are_one_clear_line(tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("caf\xe9 au lait,pos\nbad,neg\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 \(byte 0xe9 at offset 3\)"):
        read_text_file(latin)
    one_label = tmp_path / "one.tsv"
    one_label.write_text("".join(f"review {i}\tpos\n" for i in range(10)))
    with pytest.raises(DataError, match="every label is 'pos'"):
        read_text_file(one_label)
    missing = tmp_path / "missing.csv"
    missing.write_text("text,label\nfine,pos\n,neg\n")
    with pytest.raises(DataError, match="row 2 lacks a text or a label"):
        read_text_file(missing)
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="holds no rows"):
        read_text_file(empty)


def test_missing_local_text_falls_back_to_tfds_and_says_what_to_put_where(tmp_path, monkeypatch):
    """No local copy: the real download path (tfds glue/sst2, imdb_reviews) is tried; offline it fails in one line."""
    tfds = pytest.importorskip("tensorflow_datasets")
    asked = []

    def offline(name, **kwargs):
        asked.append(name)
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds, "load", offline)
    monkeypatch.setenv("KERASDL_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"could not be downloaded with tfds 'glue/sst2'.*stsa\.binary"):
        load("sst2")
    with pytest.raises(DataError, match=r"tfds 'imdb_reviews'.*aclImdb"):
        load("imdb")
    assert asked == ["glue/sst2", "imdb_reviews"]


def test_imdb_reads_the_original_aclimdb_layout(tmp_path, monkeypatch):
    for split in ("train", "test"):
        for label, words in (("pos", "great fun"), ("neg", "awful mess")):
            folder = tmp_path / "imdb" / "aclImdb" / split / label
            folder.mkdir(parents=True)
            for i in range(6):
                (folder / f"{i}_8.txt").write_text(f"{words} number {i}<br /><br />the end")
    monkeypatch.setenv("KERASDL_DATA", str(tmp_path))
    bundle = load("imdb")
    assert bundle.info.split_sizes["test"] == 12
    assert "<br />" not in bundle.texts["test"][0] and bundle.labels("test").tolist() == [0] * 6 + [1] * 6
