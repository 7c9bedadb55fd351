"""Translation pairs: English sentences and their French (fra-eng, multi30k) or Mandarin (en-cmn) translations.

A `TranslationCorpus` holds raw pairs per split; its bundle, `TranslationPairs`, keeps the pairs up to a
maximum length and turns them into ids: the English source through a word `Tokenizer` (TextVectorization,
so the edge runner's `TextEncoder` reads raw English exactly as training did), the target through a
vocabulary of its own tokens (French words and punctuation, or Mandarin characters) with "[start]" and
"[end]" at ids 2 and 3. A batch is ({"source": (B, S), "target": [start] + target (B, T)}, target + [end]),
0-padded. Sets without an official split hold out a fixed 10% of their distinct English sentences as test
(seed 0, whatever the run's seed), so no test sentence is ever trained on, even with another translation.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import math
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from kerasdl.data.base import DatasetInfo, register_dataset
from kerasdl.data.bundle import SPLITS, DataBundle
from kerasdl.data.text import read_utf8
from kerasdl.data.tokenizer import OOV, PAD, Tokenizer
from kerasdl.edge.runner import detokenize
from kerasdl.errors import DataError, KerasdlError

START, END = "[start]", "[end]"
START_ID, END_ID = 2, 3  # fixed: every target vocabulary is (PAD, OOV, START, END, its tokens...)
MAX_LENGTH = 20  # default longest sentence kept, in words (source) and tokens (target)
MAX_TOKENS = 15_000  # default vocabulary per language, padding and OOV (and start/end) included
FIXED_SPLIT_SEED = 0
TEST_FRACTION = 0.1
SOURCE_STANDARDIZE = "lower_and_strip_punctuation"
FRA_ENG_URL = "http://storage.googleapis.com/download.tensorflow.org/data/fra-eng.zip"  # the keras-io examples'
MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"
CMN_ENG_PAGE = "https://www.manythings.org/anki/ (cmn-eng.zip)"
TYPOGRAPHIC = {"\u202f": " ", "\u2009": " ", "\u00a0": " ", "\u2019": "'"}  # narrow and thin spaces, curly apostrophe
WORD_TOKENS = re.compile(r"\w+'|\w+|[^\w\s]")  # an elided word keeps its apostrophe: l' heure, aujourd' hui
Pairs = tuple[list[str], list[str]]  # source sentences and their translations, line by line


@functools.lru_cache(maxsize=1 << 18)  # filtering, the vocabulary and the ids all read each sentence's tokens
def target_tokens(text: str, level: str) -> tuple[str, ...]:
    """A translation as the decoder's tokens: lowercased, typographic spaces and apostrophes unified, then
    words with each punctuation mark a token of its own (word level) or every non-space character."""
    for typographic, plain in TYPOGRAPHIC.items():
        text = text.replace(typographic, plain)
    text = text.lower()
    if level == "character":
        return tuple(char for char in text if not char.isspace())
    return tuple(WORD_TOKENS.findall(text))


def reference(text: str, level: str) -> str:
    """A translation as BLEU compares it with ours: tokenized and joined back as decoding joins its tokens."""
    return detokenize(list(target_tokens(text, level)), level)


@dataclass(frozen=True)
class TranslationCorpus:
    """What a translation source returns: raw pairs per split; splits and tokenizes itself into a bundle.

    `validation` is the set's own held-out split (Multi30k's); otherwise the bundle holds out
    `validation_fraction` of the training sentences, grouped by source sentence and fixed by the run's seed.
    """

    train: Pairs
    test: Pairs
    target_level: str = "word"
    validation: Pairs | None = None

    def bundle(self, name: str, *, validation_fraction: float, seed: int, image_size: int | None) -> TranslationPairs:
        if image_size is not None:
            raise KerasdlError(f"data set {name!r} is text; drop --image-size")
        if self.validation is not None:
            train, validation = self.train, self.validation
        else:
            train, validation = grouped_split(self.train, validation_fraction, seed)
        return TranslationPairs.of(name, {"train": train, "validation": validation, "test": self.test},
                                   self.target_level)


def grouped_split(pairs: Pairs, fraction: float, seed: int) -> tuple[Pairs, Pairs]:
    """(kept, held out): `fraction` of the distinct source sentences, with all their translations, held out;
    both in a seeded random order of their sentences (the files are sorted by length)."""
    groups: dict[str, list[int]] = {}
    for i, source in enumerate(pairs[0]):
        groups.setdefault(source, []).append(i)
    grouped = list(groups.values())
    order = [grouped[i] for i in np.random.default_rng(seed).permutation(len(grouped))]
    held = max(1, math.ceil(fraction * len(order)))
    if held >= len(order):
        raise DataError(f"{len(order)} distinct sentences are too few to hold out {held} and train on the rest")

    def pick(chosen: list[list[int]]) -> Pairs:
        rows = [i for group in chosen for i in group]
        return [pairs[0][i] for i in rows], [pairs[1][i] for i in rows]

    return pick(order[held:]), pick(order[:held])


@dataclass(frozen=True)
class TranslationPairs(DataBundle):
    """Raw pairs per split (those within the length limit) and the two tokenizers that make them ids.

    `info.input_shape` is (S,), the source ids per pair; `info.target_length` is T; `info.num_classes`
    the target vocabulary's size and `info.vocabulary` the source's.
    """

    info: DatasetInfo
    texts: dict[str, Pairs]
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer
    all_pairs: dict[str, Pairs] = field(default_factory=dict, compare=False, repr=False)  # before the limits
    _arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict, compare=False,
                                                                          repr=False)

    @classmethod
    def of(cls, name: str, splits: dict[str, Pairs], target_level: str = "word", *, max_length: int = MAX_LENGTH,
           vocabulary_size: int = MAX_TOKENS, train_pairs: int | None = None) -> TranslationPairs:
        """Pairs with at most `max_length` source words and target tokens, the first `train_pairs` training
        pairs (None: all), and tokenizers of at most `vocabulary_size` ids adapted on those training pairs."""
        if max_length < 1 or vocabulary_size < 5 or (train_pairs is not None and train_pairs < 1):
            raise KerasdlError(
                f"translation needs sequence_length >= 1, vocabulary_size >= 5 and train_samples >= 1; got "
                f"{max_length}, {vocabulary_size}, {train_pairs}"
            )
        texts = {split: _within(splits[split], target_level, max_length) for split in SPLITS}
        texts["train"] = (texts["train"][0][:train_pairs], texts["train"][1][:train_pairs])
        empty = [split for split in SPLITS if not texts[split][0]]
        if empty:
            raise DataError(f"{name!r}: no {' or '.join(empty)} pair has at most {max_length} words on each side; "
                            "raise --sequence-length")
        kept = [text for split in SPLITS for text in texts[split][0]]
        source = Tokenizer.adapt(
            texts["train"][0], max_tokens=vocabulary_size, standardize=SOURCE_STANDARDIZE,
            sequence_length=max(len(text.split()) for text in kept),
        )
        tokens = [target_tokens(text, target_level) for text in texts["train"][1]]
        counts = Counter(token for sentence in tokens for token in sentence)
        ranked = sorted(counts, key=lambda token: (-counts[token], token))[: vocabulary_size - 4]
        longest = max(len(target_tokens(text, target_level)) for split in SPLITS for text in texts[split][1])
        target = Tokenizer((PAD, OOV, START, END, *ranked), target_level, longest + 1, standardize=None)
        return cls(_info(name, source, target, texts), texts, source, target, splits)

    # --- what the run keeps, and what the edge runner needs ----------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "source_tokenizer": self.source_tokenizer.to_json(),
            "target_tokenizer": self.target_tokenizer.to_json(),
            "start_id": START_ID,
            "end_id": END_ID,
        }

    def restored(self, state: dict[str, Any] | None) -> TranslationPairs:
        if not state:
            return self
        return dataclasses.replace(self.from_state(self.info.name, state, self.texts), all_pairs=self.all_pairs)

    @classmethod
    def from_state(cls, name: str, state: dict[str, Any], texts: dict[str, Pairs] | None = None) -> TranslationPairs:
        """Pairs (`texts`; None: none) under a run's saved tokenizers: without pairs, enough to translate."""
        if not isinstance(state, dict):
            raise DataError(f"a translation run's data_state.json is a JSON {type(state).__name__}, not an object")
        try:
            source, target = (Tokenizer.from_json(state[key]) for key in ("source_tokenizer", "target_tokenizer"))
        except KeyError as err:
            raise DataError(f"a translation run's data_state.json lacks {err}") from None
        if target.vocabulary[START_ID : END_ID + 1] != (START, END):
            raise DataError(f"a saved target vocabulary must have {START} and {END} at ids {START_ID} and {END_ID}")
        texts = texts or {split: ([], []) for split in SPLITS}
        return cls(_info(name, source, target, texts), texts, source, target)

    def runner_input(self) -> dict[str, Any]:
        return {"kind": "text", "tokenizer": self.source_tokenizer.to_json(),
                "target_tokenizer": self.target_tokenizer.to_json()}

    # --- model inputs -------------------------------------------------------------------------------------
    @property
    def target_level(self) -> str:
        return self.target_tokenizer.level

    @property
    def bleu_tokenize(self) -> str:
        """sacrebleu's tokenizer for the target language: "zh" for Mandarin characters, else "13a"."""
        return "zh" if self.target_level == "character" else "13a"

    def pairs_texts(self, split: str) -> Pairs:
        """The split's raw (source sentences, translations)."""
        return self.texts[self._checked(split)]

    def source_ids(self, sentences: list[str]) -> np.ndarray:
        """(len(sentences), S) int32 ids of raw English sentences, as the model reads them."""
        return self.source_tokenizer.encode(list(sentences))

    def target_text(self, ids: Any) -> str:
        """Target ids as text, up to the first [end]."""
        ids = [int(i) for i in ids]
        ids = ids[: ids.index(END_ID)] if END_ID in ids else ids
        return detokenize([self.target_tokenizer.vocabulary[i] for i in ids if i != 0], self.target_level)

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The split's source ids (N, S), decoder inputs [start] + target (N, T) and labels target + [end] (N, T)."""
        split = self._checked(split)
        if split not in self._arrays:
            sources, targets = self.texts[split]
            length = self.info.target_length
            decoder_inputs, labels = np.zeros((2, len(targets), length), np.int32)
            for row, text in enumerate(targets):
                ids = [self.target_tokenizer.index(token) for token in target_tokens(text, self.target_level)]
                ids = ids[: length - 1]
                decoder_inputs[row, : len(ids) + 1] = [START_ID, *ids]
                labels[row, : len(ids) + 1] = [*ids, END_ID]
            self._arrays[split] = (self.source_ids(sources), decoder_inputs, labels)
        return self._arrays[split]

    def labels(self, split: str) -> np.ndarray:
        return self.arrays(split)[2]

    def batches(self, split: str, batch_size: int = 256) -> Iterator[dict[str, np.ndarray]]:
        sources, decoder_inputs, _ = self.arrays(split)
        for start in range(0, len(sources), batch_size):
            yield {"source": sources[start : start + batch_size], "target": decoder_inputs[start : start + batch_size]}

    def take(self, split: str, count: int, *, seed: int | None = None) -> dict[str, np.ndarray]:
        rows = self.sample_indices(split, count, seed)
        sources, decoder_inputs, _ = self.arrays(split)
        return {"source": sources[rows], "target": decoder_inputs[rows]}

    def dataset(self, split: str, batch_size: int, *, shuffle_seed: int | None = None, augment: bool = False):
        import tensorflow as tf

        sources, decoder_inputs, labels = self.arrays(split)
        ds = tf.data.Dataset.from_tensor_slices(({"source": sources, "target": decoder_inputs}, labels))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(sources), seed=shuffle_seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def limited(self, *, max_length: int = MAX_LENGTH, vocabulary_size: int = MAX_TOKENS,
                train_pairs: int | None = None) -> TranslationPairs:
        """The same pairs under other limits (shorter sentences, fewer training pairs, a smaller vocabulary)."""
        return TranslationPairs.of(self.info.name, self.all_pairs or self.texts, self.target_level,
                                   max_length=max_length, vocabulary_size=vocabulary_size, train_pairs=train_pairs)


def _within(pairs: Pairs, level: str, max_length: int) -> Pairs:
    kept = [(source, target) for source, target in zip(*pairs)
            if len(source.split()) <= max_length and len(target_tokens(target, level)) <= max_length]
    return [source for source, _ in kept], [target for _, target in kept]


def _info(name: str, source: Tokenizer, target: Tokenizer, texts: dict[str, Pairs]) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        input_shape=(source.sequence_length,),
        num_classes=target.size,
        class_names=(),
        split_sizes={split: len(texts[split][0]) for split in SPLITS},
        pixel_max=0.0,
        vocabulary=source.vocabulary,
        target_length=target.sequence_length,
    )


# --- sources -----------------------------------------------------------------------------------------------


def read_pairs(path: Path, columns: int) -> Pairs:
    """Tab-separated `English<TAB>translation[<TAB>more]` lines (at least `columns` of them)."""
    sources, targets = [], []
    for number, line in enumerate(read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) < columns or not cells[0].strip() or not cells[1].strip():
            raise DataError(f"{path}:{number}: expected 'English<TAB>translation', got {line[:60]!r}")
        sources.append(cells[0].strip())
        targets.append(cells[1].strip())
    if not sources:
        raise DataError(f"{path} holds no sentence pairs")
    return sources, targets


def fixed_test_split(pairs: Pairs, target_level: str = "word") -> TranslationCorpus:
    """Train and test by distinct English sentence: 10% of them, fixed by FIXED_SPLIT_SEED, are test."""
    train, test = grouped_split(pairs, TEST_FRACTION, FIXED_SPLIT_SEED)
    return TranslationCorpus(train, test, target_level)


@register_dataset(
    "fra-eng",
    description="English -> French sentence pairs (Tatoeba/Anki fra.txt, 76,037 pairs); fixed 10% test by sentence",
    class_names=(),
    max_value=0.0,
)
def load_fra_eng(data_dir: Path) -> TranslationCorpus:
    folder = data_dir / "fra-eng"
    path = folder / "fra.txt"
    if not path.is_file():
        path = _download_fra_eng(folder)
    return fixed_test_split(read_pairs(path, 2))


def _download_fra_eng(folder: Path) -> Path:
    """keras-io's fra-eng.zip, unpacked into `folder`: the path of its fra.txt."""
    try:
        import keras

        unpacked = Path(keras.utils.get_file("fra-eng.zip", FRA_ENG_URL, cache_dir=str(folder.parent),
                                             cache_subdir=folder.name, extract=True))
        return next(p for p in [unpacked, *unpacked.parent.rglob("*")] if p.name == "fra.txt" and p.is_file())
    except Exception as err:  # any network, archive or cache failure means the same thing to the user
        raise DataError(
            f"fra-eng is not in {folder} and could not be downloaded from {FRA_ENG_URL} ({type(err).__name__}); "
            "put fra.txt there (or set KERASDL_DATA to its parent folder)"
        ) from err


@register_dataset(
    "en-cmn",
    description="English -> Mandarin sentence pairs (Tatoeba/Anki cmn.txt, 26,388), character-level target",
    class_names=(),
    max_value=0.0,
)
def load_en_cmn(data_dir: Path) -> TranslationCorpus:
    path = data_dir / "en-cmn" / "cmn.txt"
    if not path.is_file():  # manythings.org serves it to browsers only: no download path a loader can use
        raise DataError(f"{path} is missing: get cmn.txt from {CMN_ENG_PAGE} (or set KERASDL_DATA)")
    return fixed_test_split(read_pairs(path, 2), "character")


MULTI30K_SPLITS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}


@register_dataset(
    "multi30k",
    description="Multi30k image captions English -> French: train 29,000, val 1,014, test2016 1,000",
    class_names=(),
    max_value=0.0,
)
def load_multi30k(data_dir: Path) -> TranslationCorpus:
    folder = data_dir / "multi30k"
    splits = {}
    for split, stem in MULTI30K_SPLITS.items():
        english, french = (_read_lines(folder, f"{stem}.{language}.gz") for language in ("en", "fr"))
        if len(english) != len(french):
            raise DataError(f"{folder}: {stem}.en.gz has {len(english)} lines but {stem}.fr.gz {len(french)}")
        splits[split] = (english, french)
    return TranslationCorpus(splits["train"], splits["test"], validation=splits["validation"])


def _read_lines(folder: Path, name: str) -> list[str]:
    path = folder / name
    if not path.is_file():
        path = _download_multi30k(folder, name)
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as err:
        raise DataError(f"{path} is corrupt ({type(err).__name__}: {err})") from err
    return [line.strip() for line in text.splitlines()]


def _download_multi30k(folder: Path, name: str) -> Path:
    try:
        import keras

        return Path(keras.utils.get_file(name, MULTI30K_URL + name, cache_dir=str(folder.parent),
                                         cache_subdir=folder.name))
    except Exception as err:  # any network or cache failure means the same thing to the user
        raise DataError(
            f"{name} is not in {folder} and could not be downloaded from {MULTI30K_URL} ({type(err).__name__}); "
            "put the Multi30k task-1 raw files there (or set KERASDL_DATA to their parent folder)"
        ) from err

