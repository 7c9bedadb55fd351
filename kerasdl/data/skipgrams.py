"""Skip-gram pairs for word2vec: each (target word, context word) seen within a window, with negative words.

Keras 3 dropped `keras.preprocessing.sequence.skipgrams` and `make_sampling_table`, and TF's candidate samplers
(`tf.random.fixed_unigram_candidate_sampler(distortion=0.75)`, `log_uniform_candidate_sampler`) draw one set
of candidates per batch, shared by all its pairs, that may hold a pair's true context. So the pairs are drawn
here with NumPy, as word2vec.c draws them (Mikolov et al. 2013): the vocabulary is Keras `TextVectorization`'s
(`Tokenizer`), words rarer than `min_count` are dropped, each occurrence of a frequent word is discarded with
probability 1 - (sqrt(t / f) + t / f) (f: its share of the corpus, t: `subsample`), each target takes the
words up to a random b <= `window_size` positions away in the same text as contexts (nearer words count more),
and each pair gets `negative_samples` words drawn from the unigram distribution raised to 0.75, never the
pair's true context. Everything random takes a seed.

A batch is ((target (B, 1), contexts (B, 1 + negatives)), labels (B, 1 + negatives)): column 0 holds the true
context (label 1), the others the negatives (label 0).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from kerasdl.data.base import DatasetInfo
from kerasdl.data.bundle import SPLITS, DataBundle
from kerasdl.data.tokenizer import ENCODE_BATCH, LEVELS, Tokenizer
from kerasdl.errors import DataError, KerasdlError

UNIGRAM_POWER = 0.75  # word2vec's distortion of the unigram distribution for negatives
FIRST_WORD_ID = 2  # ids 0 (padding) and 1 (out of vocabulary) are never targets, contexts or negatives
SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}  # the pairs are data: fixed, whatever the run's seed


@dataclass(frozen=True)
class SkipGramSettings:
    """How pairs are drawn (the task params `window_size`, `negative_samples`, `subsample`, `min_count`,
    `max_vocabulary`)."""

    window_size: int = 4
    negative_samples: int = 4
    subsample: float = 1e-3  # word2vec.c's default t; 0 keeps every occurrence
    min_count: int = 5
    max_vocabulary: int = 20_000

    def __post_init__(self) -> None:
        for name in ("window_size", "negative_samples", "min_count", "max_vocabulary"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise KerasdlError(f"{name} must be a whole number >= 1, got {value!r}")
        if not isinstance(self.subsample, (int, float)) or not 0 <= self.subsample < 1:
            raise KerasdlError(f"subsample must be a number in [0, 1) (0: keep every word), got {self.subsample!r}")


# --- the steps, each a function of arrays and a seed ------------------------------------------------------------
def encode_texts(tokenizer: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every word id of `texts` in order, out-of-vocabulary words dropped, and the index of the text each is
    from: Keras TextVectorization with the tokenizer's vocabulary, ragged (each text its own length)."""
    import keras

    layer = keras.layers.TextVectorization(
        standardize=tokenizer.standardize, split=LEVELS[tokenizer.level], vocabulary=list(tokenizer.vocabulary),
        ragged=True,
    )
    ids, lengths = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for start in range(0, len(texts), ENCODE_BATCH):
        ragged = layer(np.asarray(texts[start : start + ENCODE_BATCH], dtype=object))
        ids.append(ragged.flat_values.numpy())
        lengths.append(ragged.row_lengths().numpy())
    flat = np.concatenate(ids).astype(np.int32)
    text_index = np.repeat(np.arange(len(texts), dtype=np.int32), np.concatenate(lengths))
    known = flat >= FIRST_WORD_ID
    return flat[known], text_index[known]


def word_counts(ids: np.ndarray, vocabulary_size: int) -> np.ndarray:
    """How often each id occurs (0 for padding and out-of-vocabulary)."""
    counts = np.bincount(ids, minlength=vocabulary_size).astype(np.int64)
    counts[:FIRST_WORD_ID] = 0
    return counts


def keep_probabilities(counts: np.ndarray, subsample: float) -> np.ndarray:
    """word2vec.c's chance of keeping one occurrence of each word: sqrt(t / f) + t / f, at most 1."""
    if not subsample:
        return np.ones(len(counts))
    ratio = subsample / np.maximum(counts / max(counts.sum(), 1), 1e-12)
    return np.minimum(1.0, np.sqrt(ratio) + ratio)


def subsampled(ids: np.ndarray, text_index: np.ndarray, keep: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The occurrences that survive subsampling (a seeded draw per occurrence)."""
    kept = np.random.default_rng(seed).random(len(ids)) < keep[ids]
    return ids[kept], text_index[kept]


def skipgram_pairs(
    ids: np.ndarray, text_index: np.ndarray, window_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(targets, contexts): for each position i, the words at i +- d for d <= b_i, b_i uniform in
    [1, window_size] (seeded), within the same text."""
    reach = np.random.default_rng(seed).integers(1, window_size + 1, size=len(ids))
    targets, contexts = [], []
    for distance in range(1, window_size + 1):
        left, right = np.arange(len(ids) - distance), np.arange(distance, len(ids))
        same_text = text_index[left] == text_index[right]
        for target, context in ((left, right), (right, left)):
            chosen = same_text & (reach[target] >= distance)
            targets.append(ids[target[chosen]])
            contexts.append(ids[context[chosen]])
    return np.concatenate(targets).astype(np.int32), np.concatenate(contexts).astype(np.int32)


def negative_distribution(counts: np.ndarray) -> np.ndarray:
    """P(word) proportional to count ** 0.75: frequent words are drawn less than their share, rare ones more."""
    weights = counts.astype(np.float64) ** UNIGRAM_POWER
    return weights / weights.sum()


def draw_negatives(
    contexts: np.ndarray, probabilities: np.ndarray, count: int, seed: int | tuple[int, ...]
) -> np.ndarray:
    """(len(contexts), count) word ids drawn from `probabilities` (inverse CDF: ids of probability 0 are never
    drawn); a draw equal to its pair's true context is drawn again, so no negative is the true context."""
    if np.count_nonzero(probabilities) < 2:
        raise DataError("negative sampling needs at least two words in the vocabulary")
    rng, cdf = np.random.default_rng(seed), np.cumsum(probabilities)
    cdf /= cdf[-1]

    def draw(shape: int | tuple[int, int]) -> np.ndarray:
        return np.searchsorted(cdf, rng.random(shape), side="right").astype(np.int32)

    negatives = draw((len(contexts), count))
    clash = negatives == contexts[:, None]
    while clash.any():
        negatives[clash] = draw(int(clash.sum()))
        clash = negatives == contexts[:, None]
    return negatives


# --- the bundle ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SkipGramBundle(DataBundle):
    """Skip-gram pairs of each split's texts under one word vocabulary (learned from the training texts).

    The (target, context) pairs of a split are fixed. Validation and test pairs have fixed negatives too (their
    losses compare across epochs and runs); training draws new negatives on every pass, seeded by the shuffle
    seed and the pass number, so the model cannot learn a fixed set of wrong answers by heart.
    """

    info: DatasetInfo
    texts: dict[str, list[str]]
    tokenizer: Tokenizer  # sequence length 1: the edge model maps one word id to its vector
    settings: SkipGramSettings
    counts: np.ndarray = field(repr=False)  # occurrences of each id in the training texts
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)  # split -> (targets, true contexts)
    _contexts: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(
        cls, name: str, texts: dict[str, list[str]], tokenizer: Tokenizer, settings: SkipGramSettings
    ) -> SkipGramBundle:
        """Pairs for every split, subsampled with the training texts' word counts."""
        encoded = {split: encode_texts(tokenizer, texts[split]) for split in SPLITS}
        counts = word_counts(encoded["train"][0], tokenizer.size)
        if np.count_nonzero(counts) < 2:
            raise DataError(f"data set {name!r} has fewer than two vocabulary words in its training texts")
        keep, pairs = keep_probabilities(counts, settings.subsample), {}
        for split, (ids, text_index) in encoded.items():
            seed = SPLIT_SEEDS[split]
            pairs[split] = skipgram_pairs(*subsampled(ids, text_index, keep, seed), settings.window_size, seed)
        info = DatasetInfo(
            name=name,
            input_shape=(1,),
            num_classes=0,
            class_names=(),
            split_sizes={split: len(pairs[split][0]) for split in SPLITS},
            pixel_max=0.0,
            vocabulary=tokenizer.vocabulary,
        )
        return cls(info, texts, tokenizer, settings, counts, pairs)

    @property
    def negative_probabilities(self) -> np.ndarray:
        return negative_distribution(self.counts)

    def contexts(self, split: str) -> np.ndarray:
        """(pairs, 1 + negatives): each pair's true context, then its fixed negatives (seeded per split)."""
        split = self._checked(split)
        if split not in self._contexts:
            true = self.pairs[split][1]
            count, seed = self.settings.negative_samples, SPLIT_SEEDS[split]
            drawn = draw_negatives(true, self.negative_probabilities, count, seed)
            self._contexts[split] = np.concatenate([true[:, None], drawn], axis=1)
        return self._contexts[split]

    # --- what the run keeps, and what the edge runner needs ------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.to_json()}

    def restored(self, state: dict[str, Any] | None) -> SkipGramBundle:
        if not state:
            return self
        tokenizer = Tokenizer.from_json(state["tokenizer"])
        return self if tokenizer == self.tokenizer else self.of(self.info.name, self.texts, tokenizer, self.settings)

    def runner_input(self) -> dict[str, Any]:
        return {"kind": "text", "tokenizer": self.tokenizer.to_json()}

    # --- model inputs -------------------------------------------------------------------------------------
    def labels(self, split: str) -> np.ndarray:
        """(pairs, 1 + negatives) float32: 1 for the true context (column 0), 0 for each negative."""
        pairs = len(self.pairs[self._checked(split)][0])
        labels = np.zeros((pairs, 1 + self.settings.negative_samples), np.float32)
        labels[:, 0] = 1.0
        return labels

    def dataset(self, split: str, batch_size: int, *, shuffle_seed: int | None = None, augment: bool = False):
        """((target, contexts), labels) batches; with `shuffle_seed`, each pass over the split is shuffled and
        gets new negatives, both seeded by (shuffle_seed, pass number)."""
        import tensorflow as tf

        width, passes = 1 + self.settings.negative_samples, itertools.count()

        def batches() -> Iterator[tuple[tuple[np.ndarray, np.ndarray], np.ndarray]]:
            if shuffle_seed is None:
                targets, contexts = self.pairs[split][0], self.contexts(split)
            else:
                targets, contexts = self.shuffled(split, (shuffle_seed, next(passes)))
            labels = self.labels(split)
            for start in range(0, len(targets), batch_size):
                batch = slice(start, start + batch_size)
                yield (targets[batch, None], contexts[batch]), labels[batch]

        signature = (
            (tf.TensorSpec((None, 1), tf.int32), tf.TensorSpec((None, width), tf.int32)),
            tf.TensorSpec((None, width), tf.float32),
        )
        ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
        steps = -(-len(self.pairs[self._checked(split)][0]) // batch_size)
        return ds.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(tf.data.AUTOTUNE)

    def shuffled(self, split: str, seed: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The split's pairs in a seeded order, with new negatives: (targets, contexts (pairs, 1 + negatives))."""
        targets, true = self.pairs[self._checked(split)]
        order = np.random.default_rng(seed).permutation(len(targets))
        drawn = draw_negatives(true[order], self.negative_probabilities, self.settings.negative_samples, seed)
        return targets[order], np.concatenate([true[order, None], drawn], axis=1)


def texts_of(data: DataBundle) -> dict[str, list[str]]:
    """Each split's texts; a running text (Shakespeare) split into its non-empty lines."""
    texts = getattr(data, "texts", None)
    if not isinstance(texts, dict):
        raise KerasdlError(f"word2vec learns from text; data set {data.info.name!r} is not text")
    if getattr(data, "stream", False):
        return {split: [line for text in texts[split] for line in text.splitlines() if line.strip()]
                for split in SPLITS}
    return {split: list(texts[split]) for split in SPLITS}


def word_tokenizer(data: DataBundle, train_texts: list[str], settings: SkipGramSettings) -> Tokenizer:
    """The training texts' words seen at least `min_count` times, at most `max_vocabulary` ids (padding and
    OOV included), most frequent first; reuses a word-level vocabulary the data set already adapted on them."""
    adapted = getattr(data, "tokenizer", None)
    if not (isinstance(adapted, Tokenizer) and adapted.level == "word" and adapted.size >= settings.max_vocabulary):
        adapted = Tokenizer.adapt(train_texts, level="word", max_tokens=settings.max_vocabulary)
    adapted = dataclasses.replace(adapted, vocabulary=adapted.vocabulary[: settings.max_vocabulary], sequence_length=1)
    counts = word_counts(encode_texts(adapted, train_texts)[0], adapted.size)
    frequent = np.flatnonzero(counts >= settings.min_count)  # in the vocabulary's order: most frequent first
    if len(frequent) < 2:
        raise DataError(f"data set {data.info.name!r} has fewer than two words seen {settings.min_count} times")
    kept = adapted.vocabulary[:FIRST_WORD_ID] + tuple(adapted.vocabulary[i] for i in frequent)
    return dataclasses.replace(adapted, vocabulary=kept)
