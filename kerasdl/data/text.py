"""Text data sets: labelled sentences (SST-2, MR, IMDB, a user's CSV/TSV) and unlabelled text (Shakespeare,
an English corpus), as a `TextBundle` of raw strings, labels and the vocabulary adapted on the training split.

A model sees token ids, never strings: `TextBundle.dataset` yields (ids, label) batches, the vocabulary is
saved with the run (`state`) and reused on reload (`restored`). Tasks that read the same text another way
(a character language model, skip-grams for word2vec) build their own bundle from `texts`.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import zlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from kerasdl.data.base import DatasetInfo, register_dataset
from kerasdl.data.bundle import SPLITS, DataBundle
from kerasdl.data.tokenizer import Tokenizer
from kerasdl.errors import DataError, KerasdlError

MAX_TOKENS = 20_000  # word vocabulary: the most frequent training words (SST-2 and MR have fewer)
MAX_SEQUENCE_LENGTH = 128  # word ids per text: the longest training text, up to this
FIXED_SPLIT_SEED = 0  # MR and a user's file: their test split never depends on the run's seed
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
Split = tuple[list[str], np.ndarray]  # texts and int labels (empty for unlabelled text)


@dataclass(frozen=True)
class TextCorpus:
    """What a text source returns: texts (and labels) per split; splits and tokenizes itself into a bundle.

    `validation` is the set's own held-out split where it has one (SST-2's dev sentences, MR's fixed 10%);
    otherwise the bundle holds out `validation_fraction` of train. A `stream` is one running text per split
    (Shakespeare), split by position, never by sentence.
    """

    train: Split
    test: Split
    class_names: tuple[str, ...] = ()
    validation: Split | None = None
    stream: bool = False
    level: str = "word"

    def bundle(self, name: str, *, validation_fraction: float, seed: int, image_size: int | None) -> TextBundle:
        if image_size is not None:
            raise KerasdlError(f"data set {name!r} is text; drop --image-size")
        train, validation = self._validation_split(validation_fraction, seed)
        splits = {"train": train, "validation": validation, "test": self.test}
        if self.stream:
            tokenizer = Tokenizer.adapt(train[0], level="character", standardize=None)
        else:
            tokenizer = Tokenizer.adapt(
                train[0], level=self.level, max_tokens=MAX_TOKENS,
                sequence_length=min(MAX_SEQUENCE_LENGTH, max(1, *(len(text.split()) for text in train[0]))),
            )
        return TextBundle.of(name, splits, self.class_names, tokenizer, stream=self.stream)

    def _validation_split(self, fraction: float, seed: int) -> tuple[Split, Split]:
        if self.validation is not None:
            return self.train, self.validation
        texts, labels = self.train
        if self.stream:  # the end of the running text, as the test split is the end of the whole
            cut = int(len(texts[0]) * (1 - fraction))
            return ([texts[0][:cut]], labels), ([texts[0][cut:]], labels)
        if not len(labels):
            order = np.random.default_rng(seed).permutation(len(texts))
            held = max(1, math.ceil(fraction * len(texts)))
            return ([texts[i] for i in sorted(order[held:])], labels), ([texts[i] for i in sorted(order[:held])], labels)
        return _stratified(texts, labels, fraction, seed)


def _stratified(texts: list[str], labels: np.ndarray, fraction: float, seed: int) -> tuple[Split, Split]:
    from kerasdl.data.splits import stratified_split

    kept, held, kept_labels, held_labels = stratified_split(texts, labels, fraction, seed, "text (validation split)")
    return (list(kept), np.asarray(kept_labels, np.int32)), (list(held), np.asarray(held_labels, np.int32))


@dataclass(frozen=True)
class TextBundle(DataBundle):
    """Raw texts and labels per split, and the tokenizer that turns them into model inputs (token ids)."""

    info: DatasetInfo
    texts: dict[str, list[str]]
    label_arrays: dict[str, np.ndarray]
    tokenizer: Tokenizer
    stream: bool = False
    _ids: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(
        cls, name: str, splits: dict[str, Split], class_names: tuple[str, ...], tokenizer: Tokenizer, stream: bool = False
    ) -> TextBundle:
        texts = {split: list(splits[split][0]) for split in SPLITS}
        labels = {split: np.asarray(splits[split][1], np.int32) for split in SPLITS}
        sizes = {split: (sum(map(len, texts[split])) if stream else len(texts[split])) for split in SPLITS}
        info = DatasetInfo(
            name=name,
            input_shape=(tokenizer.sequence_length,) if tokenizer.sequence_length else (),
            num_classes=len(class_names),
            class_names=class_names,
            split_sizes=sizes,
            pixel_max=0.0,
            vocabulary=tokenizer.vocabulary,
        )
        return cls(info, texts, labels, tokenizer, stream)

    def with_tokenizer(self, tokenizer: Tokenizer) -> TextBundle:
        """The same texts under another vocabulary (a run's saved one) or sequence length."""
        info = dataclasses.replace(
            self.info,
            input_shape=(tokenizer.sequence_length,) if tokenizer.sequence_length else (),
            vocabulary=tokenizer.vocabulary,
        )
        return TextBundle(info, self.texts, self.label_arrays, tokenizer, self.stream)

    # --- what the run keeps, and what the edge runner needs ----------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.to_json()}

    def restored(self, state: dict[str, Any] | None) -> TextBundle:
        if not state:
            return self
        if not isinstance(state, dict) or "tokenizer" not in state:
            raise DataError("a text run's data_state.json holds no tokenizer")
        return self.with_tokenizer(Tokenizer.from_json(state["tokenizer"]))

    def runner_input(self) -> dict[str, Any]:
        return {"kind": "text", "tokenizer": self.tokenizer.to_json()}

    # --- model inputs -------------------------------------------------------------------------------------
    def ids(self, split: str) -> np.ndarray:
        """The split's token ids: (texts, sequence_length), or a stream's 1-D ids."""
        split = self._checked(split)
        if split not in self._ids:
            texts = self.texts[split]
            self._ids[split] = self.tokenizer.encode_stream("".join(texts)) if self.stream else self.tokenizer.encode(texts)
        return self._ids[split]

    def inputs_for(self, texts: list[str]) -> np.ndarray:
        """Model inputs (token ids) for raw strings, tokenized as every split is."""
        return self.tokenizer.encode(texts)

    def labels(self, split: str) -> np.ndarray:
        self._require_labels()
        return self.label_arrays[self._checked(split)]

    def batches(self, split: str, batch_size: int = 256) -> Iterator[np.ndarray]:
        self._require_labels()
        ids = self.ids(split)
        for start in range(0, len(ids), batch_size):
            yield ids[start : start + batch_size]

    def take(self, split: str, count: int, *, seed: int | None = None) -> np.ndarray:
        self._require_labels()
        return self.ids(split)[self.sample_indices(split, count, seed)]

    def dataset(self, split: str, batch_size: int, *, shuffle_seed: int | None = None, augment: bool = False):
        import tensorflow as tf

        self._require_labels()
        ids, labels = self.ids(split), self.labels(split)
        ds = tf.data.Dataset.from_tensor_slices((ids, labels))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(ids), seed=shuffle_seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def _require_labels(self) -> None:
        if self.stream or not self.info.class_names:
            raise KerasdlError(
                f"data set {self.info.name!r} is unlabelled text: train a language model (char-lstm) or "
                "word2vec on it, or give a classifier labelled text"
            )


# --- sources -----------------------------------------------------------------------------------------------

POLARITY = ("negative", "positive")


@register_dataset(
    "sst2",
    description="SST-2 sentences, Kim (2014) train/dev/test split: 6,920/872/1,821 (local), else tfds glue/sst2",
    class_names=POLARITY,
    max_value=0.0,
)
def load_sst2(data_dir: Path) -> TextCorpus:
    folder = data_dir / "sst2"
    if not folder.is_dir():
        return _download_glue_sst2(folder)
    splits = {split: _read_labelled_lines(folder / f"stsa.binary.{split}") for split in ("train", "dev", "test")}
    return TextCorpus(splits["train"], splits["test"], POLARITY, validation=splits["dev"])


def _read_labelled_lines(path: Path) -> Split:
    """Kim's `<label> <sentence>` lines."""
    texts, labels = [], []
    for number, line in enumerate(read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        label, _, text = line.partition(" ")
        if label not in ("0", "1") or not text.strip():
            raise DataError(f"{path}:{number}: expected '<0 or 1> <sentence>', got {line[:60]!r}")
        texts.append(text.strip())
        labels.append(int(label))
    return texts, np.asarray(labels, np.int32)


def _download_glue_sst2(folder: Path) -> TextCorpus:
    """tfds `glue/sst2`: its 67,349 training phrases and sentences train, its 872 dev sentences test (GLUE's
    test labels are hidden). Not Kim's split: the numbers are not comparable with the local files'."""
    splits = _tfds(folder, "glue/sst2", ("train", "validation"), "sentence", "label", "stsa.binary.{train,dev,test}")
    return TextCorpus(splits[0], splits[1], POLARITY)


def _tfds(folder: Path, name: str, splits: tuple[str, ...], text_key: str, label_key: str, files: str) -> list[Split]:
    try:
        import tensorflow_datasets as tfds

        loaded = tfds.load(name, split=list(splits))
        return [
            ([row[text_key].decode("utf-8") for row in ds.as_numpy_iterator()],
             np.asarray([row[label_key] for row in ds.as_numpy_iterator()], np.int32))
            for ds in loaded
        ]
    except Exception as err:  # any network or cache failure means the same thing to the user
        raise DataError(
            f"{folder.name} is not in {folder} and could not be downloaded with tfds {name!r} "
            f"({type(err).__name__}); put {files} there (or set KERASDL_DATA to their parent folder)"
        ) from err


@register_dataset(
    "mr",
    description="Movie-review sentence polarity (Pang & Lee 2005), 10,662 sentences, fixed seed-0 80/10/10 split",
    class_names=POLARITY,
    max_value=0.0,
)
def load_mr(data_dir: Path) -> TextCorpus:
    folder = data_dir / "mr"
    texts, labels = [], []
    for label, name in enumerate(("rt-polarity.neg", "rt-polarity.pos")):
        lines = [line.strip() for line in read_utf8(folder / name).splitlines() if line.strip()]
        texts += lines
        labels += [label] * len(lines)
    return fixed_split(texts, np.asarray(labels, np.int32), POLARITY)


def fixed_split(texts: list[str], labels: np.ndarray, class_names: tuple[str, ...]) -> TextCorpus:
    """Stratified 80/10/10 train/validation/test, fixed by FIXED_SPLIT_SEED (not the run's seed)."""
    from kerasdl.data.splits import stratified_split

    rest, test, rest_labels, test_labels = stratified_split(texts, labels, 0.1, FIXED_SPLIT_SEED, "text (test split)")
    train, validation = _stratified(list(rest), np.asarray(rest_labels), 1 / 9, FIXED_SPLIT_SEED)
    return TextCorpus(train, (list(test), np.asarray(test_labels, np.int32)), class_names, validation=validation)


@register_dataset(
    "imdb",
    description="IMDB reviews (Maas et al. 2011), 25,000/25,000: local aclImdb/{train,test}/{pos,neg}, else tfds",
    class_names=POLARITY,
    max_value=0.0,
)
def load_imdb(data_dir: Path) -> TextCorpus:
    folder = data_dir / "imdb"
    root = folder / "aclImdb" if (folder / "aclImdb").is_dir() else folder
    if not root.is_dir():
        train, test = _tfds(folder, "imdb_reviews", ("train", "test"), "text", "label", "aclImdb/{train,test}/{pos,neg}/*.txt")
        return TextCorpus(train, test, POLARITY)
    splits = []
    for split in ("train", "test"):
        texts, labels = [], []
        for label, name in enumerate(("neg", "pos")):
            files = sorted((root / split / name).glob("*.txt"))
            if not files:
                raise DataError(f"{root / split / name} holds no reviews (*.txt); expected the aclImdb layout")
            texts += [read_utf8(path).replace("<br />", " ").strip() for path in files]
            labels += [label] * len(files)
        splits.append((texts, np.asarray(labels, np.int32)))
    return TextCorpus(splits[0], splits[1], POLARITY)


@register_dataset(
    "shakespeare",
    description="Tiny Shakespeare, 1,115,394 characters as one stream: first 90% train, last 10% test",
    class_names=(),
    max_value=0.0,
)
def load_shakespeare(data_dir: Path) -> TextCorpus:
    text = read_utf8(data_dir / "shakespeare" / "input.txt")
    cut = int(len(text) * 0.9)
    return TextCorpus(([text[:cut]], np.zeros(0, np.int32)), ([text[cut:]], np.zeros(0, np.int32)), stream=True)


@register_dataset(
    "english-text",
    description="English sentences for word embeddings: Shakespeare lines, SST-2 GLUE train, MR, Multi30k English",
    class_names=(),
    max_value=0.0,
)
@register_dataset(
    "english-corpus",
    description="The english-text sentences as a corpus for BERT's masked-language-model pretraining",
    class_names=(),
    max_value=0.0,
)
def load_english_text(data_dir: Path) -> TextCorpus:
    """Every local English sentence, unlabelled; every 50th is held out for the test split."""
    sentences = [line for line in read_utf8(data_dir / "shakespeare" / "input.txt").splitlines() if line.strip()]
    glue = read_utf8(data_dir / "sst2" / "glue_sst2_train.tsv").splitlines()[1:]
    sentences += [line.partition("\t")[2] for line in glue if line.strip()]
    for name in ("rt-polarity.neg", "rt-polarity.pos"):
        sentences += [line for line in read_utf8(data_dir / "mr" / name).splitlines() if line.strip()]
    sentences += [line for line in _read_gzip(data_dir / "multi30k" / "train.en.gz").splitlines() if line.strip()]
    test = sentences[::50]
    train = [s for i, s in enumerate(sentences) if i % 50]
    empty = np.zeros(0, np.int32)
    return TextCorpus((train, empty), (test, empty))


def _read_gzip(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path} is missing (set KERASDL_DATA to the folder that holds the data sets)")
    try:
        return gzip.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as err:
        raise DataError(f"{path} is corrupt ({type(err).__name__}: {err})") from err


def read_utf8(path: Path) -> str:
    """A text file's contents; a clear error when it is missing or not UTF-8 (a BOM is dropped)."""
    if not path.is_file():
        raise DataError(f"{path} is missing (set KERASDL_DATA to the folder that holds the data sets)")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path} is not UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start}); save it as UTF-8"
        ) from None


def csv_rows(path: Path, delimiter: str = ",") -> list[list[str]]:
    """The rows of a UTF-8 CSV (or TSV) file; a DataError naming the file and line for a malformed one (a
    field past csv's size limit, which is what an unclosed quote gives)."""
    reader = csv.reader(io.StringIO(read_utf8(path), newline=""), delimiter=delimiter)
    try:
        return list(reader)
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: not valid CSV ({err})") from None


# --- a user's own file: text and label, comma- or tab-separated -----------------------------------------------

TEXT_HEADERS = {"text", "sentence", "review", "content", "document"}
LABEL_HEADERS = {"label", "labels", "sentiment", "class", "polarity", "target", "category"}


def read_text_file(path: Path) -> TextCorpus:
    """A CSV (.csv) or TSV (.tsv, .txt) of text and label, in either column order, with or without a header
    (`text`/`label`-like names); quoted fields, empty lines and a BOM are fine. Class names are the sorted
    label values; a fixed 80/10/10 split (seed 0) holds out validation and test texts."""
    rows = _rows(path)
    header = [cell.strip().lower() for cell in rows[0]]
    if TEXT_HEADERS & set(header) and LABEL_HEADERS & set(header):
        text_column = next(i for i, cell in enumerate(header) if cell in TEXT_HEADERS)
        label_column = next(i for i, cell in enumerate(header) if cell in LABEL_HEADERS)
        rows = rows[1:]
    elif all(len(row) == 2 for row in rows):  # the label is the column with the shorter cells
        lengths = np.mean([[len(cell) for cell in row] for row in rows], axis=0)
        text_column, label_column = (0, 1) if lengths[0] >= lengths[1] else (1, 0)
    else:
        raise DataError(
            f"{path}: expected two columns (text and label), or a header naming them "
            f"({'/'.join(sorted(TEXT_HEADERS))} and {'/'.join(sorted(LABEL_HEADERS))}); for a table of features, "
            "pass --target COLUMN"
        )
    for number, row in enumerate(rows, 1):
        if len(row) <= max(text_column, label_column) or not row[text_column].strip() or not row[label_column].strip():
            raise DataError(f"{path}: row {number} lacks a text or a label: {row!r}")
    values = [row[label_column].strip() for row in rows]
    class_names = tuple(sorted(set(values)))
    if len(class_names) < 2:
        raise DataError(f"{path}: every label is {class_names[0]!r}; a classifier needs at least two classes")
    labels = np.asarray([class_names.index(value) for value in values], np.int32)
    return fixed_split([row[text_column].strip() for row in rows], labels, class_names)


def _rows(path: Path) -> list[list[str]]:
    rows = [row for row in csv_rows(path, "," if path.suffix.lower() == ".csv" else "\t")
            if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"{path} holds no rows of text and label")
    return rows

