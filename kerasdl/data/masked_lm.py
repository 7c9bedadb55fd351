"""Sentences masked as BERT's pretraining masks them (Devlin et al. 2019): (corrupted ids, targets) pairs.

The sentences of each split are packed end to end into rows of `sequence_length` ids, as BERT packs its
training text: no position is spent on padding. Of each row's word tokens, 15% are chosen; a chosen token
becomes [MASK] 80% of the time, a random word 10% of the time, and stays itself 10% of the time. The target is the original id at chosen positions and 0
elsewhere, so the loss counts chosen positions only. Padding and the out-of-vocabulary id are never chosen
([UNK] is no word to predict). [MASK] is the vocabulary's last token: the tokenizer saved with the run holds
it, so fine-tuning, `fill_mask` and the edge runner know its id. Training draws a fresh masking every epoch
(seeded); validation and test are masked once, by a seed of their own, so every epoch and every run is
scored on the same masked tokens.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kerasdl.data.base import DatasetInfo
from kerasdl.data.bundle import SPLITS, DataBundle
from kerasdl.data.text import TextBundle
from kerasdl.data.tokenizer import Tokenizer
from kerasdl.errors import KerasdlError

MASK = "[MASK]"
FIRST_WORD_ID = 2  # ids 0 (padding) and 1 (out of vocabulary) are never chosen
CHOOSE_RATE, MASK_SHARE, RANDOM_SHARE = 0.15, 0.8, 0.1  # the rest of the chosen tokens stay unchanged
DEFAULT_SEQUENCE_LENGTH = 32  # word ids per row: a few sentences (english-corpus: 9 words on average)
DEFAULT_VOCABULARY_SIZE = 8192  # the most frequent words, padding, OOV and [MASK] included
MAX_HELD_OUT = 1000  # validation and test rows scored
HELD_OUT_SEEDS = {"validation": 1, "test": 2}  # fixed maskings, whatever the run's seed
PREDICTION_SHARE = 0.3  # training scores at most this share of a row's positions (15% are chosen on average)


def mask_tokens(ids: Any, seed: Any, mask_id: int) -> tuple[Any, Any]:
    """(inputs, targets) for int32 ids (batch, length) under a stateless seed (2 ints): BERT's 80/10/10 rule
    over 15% of the word tokens; random replacements are words (ids 2 .. mask_id - 1)."""
    import tensorflow as tf

    ids = tf.convert_to_tensor(ids)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    shape = tf.shape(ids)
    chosen = (tf.random.stateless_uniform(shape, seeds[0]) < CHOOSE_RATE) & (ids >= FIRST_WORD_ID)
    action = tf.random.stateless_uniform(shape, seeds[1])
    random_words = tf.random.stateless_uniform(shape, seeds[2], FIRST_WORD_ID, mask_id, dtype=tf.int32)
    corrupted = tf.where(action < MASK_SHARE, tf.fill(shape, tf.cast(mask_id, ids.dtype)),
                         tf.where(action < MASK_SHARE + RANDOM_SHARE, tf.cast(random_words, ids.dtype), ids))
    return tf.where(chosen, corrupted, ids), tf.where(chosen, ids, tf.zeros_like(ids))


def prediction_positions(targets: Any, count: int) -> tuple[Any, Any]:
    """The first `count` chosen positions of each row (then unchosen ones, whose target 0 scores nothing) and
    their targets: a fixed number per row, so the masked-LM head runs on `count` vectors, not every position
    (BERT's max_predictions_per_seq). Rows with more chosen tokens lose the rest (rare by PREDICTION_SHARE)."""
    import tensorflow as tf

    targets = tf.convert_to_tensor(targets)
    positions = tf.math.top_k(tf.cast(targets > 0, tf.float32), k=count).indices  # ties: lower index first
    return positions, tf.gather(targets, positions, batch_dims=1)


def max_predictions(sequence_length: int) -> int:
    return max(1, round(PREDICTION_SHARE * sequence_length))


def masked_tokenizer(tokenizer: Tokenizer, vocabulary_size: int, sequence_length: int) -> Tokenizer:
    """The `vocabulary_size - 1` most frequent tokens of `tokenizer` and [MASK] (id vocabulary_size - 1)."""
    words = tuple(token for token in tokenizer.vocabulary if token != MASK)[: vocabulary_size - 1]
    return dataclasses.replace(tokenizer, vocabulary=(*words, MASK), sequence_length=sequence_length)


@dataclass(frozen=True)
class MaskedSentences(DataBundle):
    """A text bundle's sentences as packed rows of token ids under a tokenizer with [MASK]; batches of
    (inputs, targets).

    `train_samples` rows make an epoch (a seeded random choice, afresh each epoch; default: all).
    `labels(split)` and `batches(split)` are the fixed masking of validation or test (their first
    MAX_HELD_OUT rows); the training split's are one masking drawn with the split seed 0.
    """

    info: DatasetInfo
    text: TextBundle
    train_samples: int | None = None
    _packed: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    _fixed: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, text: DataBundle, sequence_length: int = DEFAULT_SEQUENCE_LENGTH,
           vocabulary_size: int = DEFAULT_VOCABULARY_SIZE, train_samples: int | None = None) -> MaskedSentences:
        if not isinstance(text, TextBundle) or text.stream or text.tokenizer.level != "word":
            raise KerasdlError(
                f"masked-language modelling reads sentences of words; {text.info.name!r} is not "
                "(use english-corpus, sst2, mr or a CSV/TSV of texts)"
            )
        for name, value, least in (("sequence_length", sequence_length, 2), ("vocabulary_size", vocabulary_size, 4),
                                   ("train_samples", train_samples or 1, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise KerasdlError(f"{name} must be a whole number >= {least}, got {value!r}")
        return cls._of(text.with_tokenizer(masked_tokenizer(text.tokenizer, vocabulary_size, sequence_length)),
                       train_samples)

    @classmethod
    def _of(cls, text: TextBundle, train_samples: int | None) -> MaskedSentences:
        bundle = cls(dataclasses.replace(text.info, num_classes=0, class_names=()), text, train_samples)
        sizes = {split: len(bundle.ids(split)) for split in SPLITS}
        sizes["train"] = min(train_samples or sizes["train"], sizes["train"])
        return dataclasses.replace(bundle, info=dataclasses.replace(bundle.info, split_sizes=sizes))

    @property
    def tokenizer(self) -> Tokenizer:
        return self.text.tokenizer

    @property
    def mask_id(self) -> int:
        return self.tokenizer.vocabulary.index(MASK)

    # --- what the run keeps: the tokenizer with [MASK] ----------------------------------------------------
    def state(self) -> dict[str, Any]:
        return self.text.state()

    def restored(self, state: dict[str, Any] | None) -> MaskedSentences:
        return self._of(self.text.restored(state), self.train_samples) if state else self

    def runner_input(self) -> dict[str, Any]:
        return {**self.text.runner_input(), "mask_token": MASK}

    # --- model inputs -------------------------------------------------------------------------------------
    def ids(self, split: str) -> np.ndarray:
        """The split's sentences packed into rows (rows, sequence_length); held-out splits capped at MAX_HELD_OUT."""
        split = self._checked(split)
        if split not in self._packed:
            self._packed[split] = pack(self.text.ids(split), MAX_HELD_OUT if split != "train" else None)
        return self._packed[split]

    def masked(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The split's fixed masking: (inputs, targets) arrays."""
        split = self._checked(split)
        if split not in self._fixed:
            inputs, targets = mask_tokens(self.ids(split), (HELD_OUT_SEEDS.get(split, 0), 0), self.mask_id)
            self._fixed[split] = (np.asarray(inputs, np.int32), np.asarray(targets, np.int32))
        return self._fixed[split]

    def labels(self, split: str) -> np.ndarray:
        return self.masked(split)[1]

    def batches(self, split: str, batch_size: int = 256):
        inputs = self.masked(split)[0]
        for start in range(0, len(inputs), batch_size):
            yield inputs[start : start + batch_size]

    def take(self, split: str, count: int, *, seed: int | None = None) -> np.ndarray:
        return self.masked(split)[0][self.sample_indices(split, count, seed)]

    def dataset(self, split: str, batch_size: int, *, shuffle_seed: int | None = None, augment: bool = False):
        """Batches of (inputs, targets): with `shuffle_seed`, shuffled and masked afresh each epoch (training);
        without, the split's fixed masking in order."""
        import tensorflow as tf

        if shuffle_seed is None:
            return tf.data.Dataset.from_tensor_slices(self.masked(split)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
        ids = self.ids(self._checked(split))
        ds = tf.data.Dataset.from_tensor_slices(ids).shuffle(len(ids), seed=shuffle_seed, reshuffle_each_iteration=True)
        ds = ds.take(self.info.split_sizes[split]).batch(batch_size)
        seeds = tf.data.Dataset.random(seed=shuffle_seed, rerandomize_each_iteration=True).batch(2)
        mask_id = self.mask_id
        ds = tf.data.Dataset.zip(ds, seeds).map(lambda x, seed: mask_tokens(x, seed, mask_id))
        return ds.prefetch(tf.data.AUTOTUNE)

    @property
    def max_predictions(self) -> int:
        return max_predictions(self.info.input_shape[0])

    def unigram_log_probabilities(self) -> np.ndarray:
        """log p(word) of each id over the training sentences' word tokens (add-one smoothed): the baseline
        a masked-token prediction that ignores the context can reach at best."""
        ids = self.ids("train")
        counts = np.bincount(ids[ids >= FIRST_WORD_ID], minlength=self.info.vocabulary_size).astype(np.float64) + 1
        counts[:FIRST_WORD_ID] = 0
        counts[self.mask_id] = 0
        return np.log(np.maximum(counts / counts.sum(), 1e-300))


def pack(ids: np.ndarray, max_rows: int | None) -> np.ndarray:
    """Padded sentences (sentences, length) -> their tokens end to end in full rows of that length (the last,
    partial row dropped; at least one row, padded, for a tiny split)."""
    length = ids.shape[1]
    tokens = ids[ids > 0]
    rows = max(1, len(tokens) // length)
    packed = np.zeros(rows * length, np.int32)
    packed[: min(len(tokens), rows * length)] = tokens[: rows * length]
    return packed.reshape(rows, length)[:max_rows]
