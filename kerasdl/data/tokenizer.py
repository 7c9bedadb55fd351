"""A vocabulary that travels with a run: Keras `TextVectorization` configured from a JSON-able record.

Training adapts it on the training split once; the run saves the record (`data_state.json`), so `evaluate`,
`generate` and `export` turn raw strings into the same token ids after a reload, and the TF-free runner
(`kerasdl.edge.runner.TextEncoder`) reproduces them from the record with the standard library and NumPy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any, Sequence

import numpy as np

from kerasdl.errors import DataError

PAD, OOV = "", "[UNK]"  # ids 0 and 1, as TextVectorization numbers them
LEVELS = {"word": "whitespace", "character": "character"}  # our level -> TextVectorization's `split`
ENCODE_BATCH = 4096


@dataclass(frozen=True)
class Tokenizer:
    """Token ids for strings: word level (standardized, split on whitespace) or character level.

    `vocabulary[i]` is the token of id i: 0 pads, 1 stands for any token not in the vocabulary.
    `sequence_length` pads (with 0) or truncates (keeping the first tokens) every text to that many ids;
    None keeps each text's own length (a character stream).
    """

    vocabulary: tuple[str, ...]
    level: str = "word"
    sequence_length: int | None = None
    standardize: str | None = "lower_and_strip_punctuation"

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise DataError(f"unknown tokenizer level {self.level!r}; known: {', '.join(LEVELS)}")
        if self.vocabulary[:2] != (PAD, OOV):
            raise DataError(f"a vocabulary starts with the padding and OOV tokens {[PAD, OOV]}")

    @classmethod
    def adapt(
        cls,
        texts: Sequence[str],
        *,
        level: str = "word",
        max_tokens: int | None = None,
        sequence_length: int | None = None,
        standardize: str | None = "lower_and_strip_punctuation",
    ) -> "Tokenizer":
        """The `max_tokens` most frequent tokens of `texts` (None: all), padding and OOV included."""
        import keras

        if level not in LEVELS:
            raise DataError(f"unknown tokenizer level {level!r}; known: {', '.join(LEVELS)}")
        layer = keras.layers.TextVectorization(max_tokens=max_tokens, standardize=standardize, split=LEVELS[level])
        layer.adapt(np.asarray(texts, dtype=object), batch_size=ENCODE_BATCH)
        vocabulary = tuple(str(token) for token in layer.get_vocabulary())
        return cls(vocabulary, level, sequence_length, standardize)

    @property
    def size(self) -> int:
        """Number of ids, padding and OOV included: an Embedding's input_dim."""
        return len(self.vocabulary)

    def layer(self, sequence_length: int | None = None):
        """A TextVectorization layer with this vocabulary (int ids, padded/truncated to the sequence length)."""
        import keras

        return keras.layers.TextVectorization(
            standardize=self.standardize,
            split=LEVELS[self.level],
            vocabulary=list(self.vocabulary),
            output_sequence_length=sequence_length or self.sequence_length,
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """int32 ids (len(texts), sequence_length); a tokenizer without a sequence length encodes streams."""
        if self.sequence_length is None:
            raise ValueError("a tokenizer without a sequence length encodes one stream at a time (encode_stream)")
        layer = self.layer()
        chunks = [np.asarray(layer(np.asarray(texts[i : i + ENCODE_BATCH], dtype=object)), np.int32)
                  for i in range(0, len(texts), ENCODE_BATCH)]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.sequence_length), np.int32)

    def encode_stream(self, text: str) -> np.ndarray:
        """One long text (a character stream) as a 1-D int32 array of ids."""
        return np.asarray(self.layer(None)([text])[0], np.int32)

    def decode(self, ids: Sequence[int]) -> str:
        """Tokens of `ids`, padding dropped; characters joined as they are, words with spaces."""
        tokens = [self.vocabulary[int(i)] for i in ids if int(i) != 0]
        return ("" if self.level == "character" else " ").join(tokens)

    def index(self, token: str) -> int:
        """The id of one token (1, the OOV id, for a token outside the vocabulary)."""
        return self._ids.get(token, 1)

    @cached_property
    def _ids(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.vocabulary)}

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "vocabulary": list(self.vocabulary)}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "Tokenizer":
        try:
            return cls(
                tuple(values["vocabulary"]), values["level"], values.get("sequence_length"), values.get("standardize")
            )
        except (KeyError, TypeError) as err:
            raise DataError(f"a saved tokenizer lacks or mangles {err}") from None
