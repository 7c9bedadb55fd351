"""A token stream cut into training windows: `sequence_length` ids in, the same ids shifted by one out.

The tokens are characters or WordPiece subwords (`level`, kerasdl.data.tokenizer). A language model learns
p(next token | the ones before) at every position of a window, so a window of L + 1 tokens gives L inputs
and L targets. Training draws its windows at seeded random offsets,
afresh each epoch (nanoGPT's sampling: every alignment of the text is seen, none is favoured); validation
and test cut their split into consecutive windows, each token predicted once, in order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterator

import numpy as np

from kerasdl.data.base import DatasetInfo
from kerasdl.data.bundle import SPLITS, DataBundle
from kerasdl.data.text import TextBundle
from kerasdl.data.tokenizer import SUBWORD, Tokenizer
from kerasdl.errors import DataError, KerasdlError

DEFAULT_SEQUENCE_LENGTH = 100  # tokens per training window (Karpathy's char-rnn uses 50-100 characters)
STREAM_LEVELS = ("character", SUBWORD)
TEXT_SEPARATOR = "\n"  # joins the texts of a data set of sentences into one stream


def as_stream(text: TextBundle) -> TextBundle:
    """The bundle as one character stream per split: a stream as it is; sentences (SST-2, english-text, a
    user's file) joined by newlines, with a character vocabulary adapted on the joined training text."""
    if text.stream:
        return text
    splits = {split: ([TEXT_SEPARATOR.join(text.texts[split])], np.zeros(0, np.int32)) for split in SPLITS}
    tokenizer = Tokenizer.adapt(splits["train"][0], level="character", standardize=None)
    return TextBundle.of(text.info.name, splits, (), tokenizer, stream=True)


def _check_long_enough(name: str, tokens: dict[str, int], length: int) -> dict[str, int]:
    """Consecutive windows of `length` + 1 tokens per split, given each split's token count; one at least."""
    sizes = {split: (tokens[split] - 1) // length for split in SPLITS}
    short = [split for split, count in sizes.items() if count < 1]
    if short:
        raise DataError(
            f"{name!r}: the {' and '.join(short)} text is shorter than one window of {length + 1} tokens; "
            "use a shorter --sequence-length"
        )
    return sizes


@dataclass(frozen=True)
class TokenWindows(DataBundle):
    """Windows of `sequence_length` token ids over each split of a text stream, as (inputs, targets).

    `source` is the stream with its character vocabulary; `level` says which tokens the windows hold, and a
    subword vocabulary (of about `vocabulary_size` pieces) is learned on the training text when first needed,
    unless `saved` (a run's) is given. `train_windows` is how many windows make an epoch (default: as many as
    the training text holds end to end); `labels(split)` are the targets of the split's consecutive windows.
    """

    source: TextBundle
    sequence_length: int
    train_windows: int | None = None
    level: str = "character"
    vocabulary_size: int | None = None
    saved: Tokenizer | None = None
    _windows: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, text: TextBundle, sequence_length: int = DEFAULT_SEQUENCE_LENGTH, train_windows: int | None = None,
           level: str = "character", vocabulary_size: int | None = None) -> TokenWindows:
        if not isinstance(text, TextBundle):
            raise KerasdlError(f"a language model reads text, and {text.info.name!r} is not text")
        if not isinstance(sequence_length, int) or isinstance(sequence_length, bool) or sequence_length < 1:
            raise KerasdlError(f"sequence_length must be a whole number >= 1, got {sequence_length!r}")
        if train_windows is not None and (not isinstance(train_windows, int) or train_windows < 1):
            raise KerasdlError(f"train_samples (windows per epoch) must be a whole number >= 1, got {train_windows!r}")
        if level not in STREAM_LEVELS:
            raise KerasdlError(f"a language model's tokenizer is {' or '.join(STREAM_LEVELS)}, not {level!r}")
        if vocabulary_size is not None and level != SUBWORD:
            raise KerasdlError("vocabulary_size sets the size of a subword vocabulary; add --tokenizer subword")
        stream = as_stream(text)
        _check_long_enough(stream.info.name, stream.info.split_sizes, sequence_length)  # tokens <= characters
        return cls(stream, sequence_length, train_windows, level, vocabulary_size)

    @cached_property
    def tokenizer(self) -> Tokenizer:
        if self.saved is not None:
            return self.saved
        if self.level == "character":
            return self.source.tokenizer
        return Tokenizer.adapt(self.source.texts["train"], level=SUBWORD, max_tokens=self.vocabulary_size)

    @cached_property
    def text(self) -> TextBundle:
        """The stream under this tokenizer."""
        return self.source.with_tokenizer(self.tokenizer)

    @cached_property
    def info(self) -> DatasetInfo:
        tokens = {split: len(self.stream_ids(split)) for split in SPLITS}
        sizes = _check_long_enough(self.source.info.name, tokens, self.sequence_length)
        sizes["train"] = self.train_windows or sizes["train"]
        return dataclasses.replace(self.text.info, input_shape=(self.sequence_length,), split_sizes=sizes)

    # --- what the run keeps, and what the edge runner needs: the text's vocabulary -----------------------
    def state(self) -> dict[str, Any]:
        return self.text.state()

    def restored(self, state: dict[str, Any] | None) -> TokenWindows:
        if not state:
            return self
        return dataclasses.replace(self, saved=Tokenizer.from_json(state["tokenizer"]), _windows={})

    def runner_input(self) -> dict[str, Any]:
        return self.text.runner_input()

    # --- windows ------------------------------------------------------------------------------------------
    def stream_ids(self, split: str) -> np.ndarray:
        """The split's whole text as 1-D token ids."""
        return self.text.ids(split)

    def windows(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The split's consecutive windows: inputs and targets, each (windows, sequence_length) int32."""
        split = self._checked(split)
        if split not in self._windows:
            length, ids = self.sequence_length, self.stream_ids(split)
            count = (len(ids) - 1) // length
            chunks = ids[: count * length + 1]
            self._windows[split] = (chunks[:-1].reshape(count, length), chunks[1:].reshape(count, length))
        return self._windows[split]

    def labels(self, split: str) -> np.ndarray:
        return self.windows(split)[1]

    def batches(self, split: str, batch_size: int = 256) -> Iterator[np.ndarray]:
        inputs = self.windows(split)[0]
        for start in range(0, len(inputs), batch_size):
            yield inputs[start : start + batch_size]

    def take(self, split: str, count: int, *, seed: int | None = None) -> np.ndarray:
        return self.windows(split)[0][self.sample_indices(split, count, seed)]

    def dataset(self, split: str, batch_size: int, *, shuffle_seed: int | None = None, augment: bool = False):
        """(inputs, targets) batches: with `shuffle_seed`, `info.split_sizes[split]` windows at random offsets,
        new ones each epoch; without, the split's consecutive windows in order."""
        import tensorflow as tf

        if shuffle_seed is None:
            ds = tf.data.Dataset.from_tensor_slices(self.windows(split))
            return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        ids = tf.constant(self.stream_ids(split))
        offsets = len(self.stream_ids(split)) - self.sequence_length  # a window needs sequence_length + 1 ids
        positions = tf.range(self.sequence_length + 1, dtype=tf.int64)

        def window(starts):
            chunk = tf.gather(ids, starts[:, tf.newaxis] % offsets + positions)
            return chunk[:, :-1], chunk[:, 1:]

        ds = tf.data.Dataset.random(seed=shuffle_seed, rerandomize_each_iteration=True)
        ds = ds.take(self.info.split_sizes[split]).batch(batch_size).map(window)
        return ds.prefetch(tf.data.AUTOTUNE)
