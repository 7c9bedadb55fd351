"""A vocabulary that travels with a run: words or characters (Keras `TextVectorization`) or subwords (a
WordPiece vocabulary learned by keras-hub), configured from a JSON-able record.

Training adapts it on the training split once; the run saves the record (`data_state.json`), so `evaluate`,
`generate` and `export` turn raw strings into the same token ids after a reload, and the TF-free runner
(`kerasdl.edge.runner.TextEncoder`) reproduces them from the record with the standard library and NumPy.

Subwords for a language model must give the text back exactly, but WordPiece splits on whitespace and drops
it. So before WordPiece sees a text, each space becomes SPACE_MARK glued to the next word (SentencePiece's
trick: the vocabulary learns "▁the" as a word) and each newline NEWLINE_MARK, which WordPiece splits off as
punctuation; decoding joins the pieces and turns the marks back. Other whitespace (tabs) is lost.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any, Sequence

import numpy as np

from kerasdl.errors import DataError

PAD, OOV = "", "[UNK]"  # ids 0 and 1, as TextVectorization numbers them
LEVELS = {"word": "whitespace", "character": "character"}  # our level -> TextVectorization's `split`
SUBWORD = "subword"  # WordPiece (keras-hub), the third level
ENCODE_BATCH = 4096
STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")  # TextVectorization's, besides None
MAX_SEQUENCE_LENGTH = 1 << 20  # ids per text: a saved record asking for more is corrupt, not a model
SPACE_MARK, NEWLINE_MARK = "\u2581", "\u00b6"  # a letter-like symbol and a punctuation mark to WordPiece
WORDPIECE_PAD = "[PAD]"  # keras-hub's name for id 0 (ours is "", which its vocabulary cannot hold)
SUFFIX = "##"  # WordPiece's mark of a piece that continues a word
# The WordPiece learner is pure Python and slow: keras-hub's settings (4 passes over Tiny Shakespeare's 1 M
# characters) took 150 s on 2 busy cores. One pass over the words of the first 250,000 characters takes 19 s
# and gives the same kind of vocabulary (whole common words, then stems and endings).
VOCABULARY_SAMPLE_CHARACTERS = 250_000
LEARNER_ITERATIONS = 1
DEFAULT_SUBWORD_VOCABULARY = 1000


def mark_whitespace(text: str) -> str:
    """Spaces and newlines as visible marks WordPiece keeps (the runner does the same)."""
    return text.replace(" ", " " + SPACE_MARK).replace("\n", NEWLINE_MARK)


def join_pieces(pieces: Sequence[str]) -> str:
    """WordPiece pieces back to text: continuations joined to their word, the marks back to whitespace."""
    text = "".join(piece[len(SUFFIX):] if piece.startswith(SUFFIX) and len(piece) > len(SUFFIX) else piece
                   for piece in pieces)
    return text.replace(SPACE_MARK, " ").replace(NEWLINE_MARK, "\n")


@dataclass(frozen=True)
class Tokenizer:
    """Token ids for strings: word level (standardized, split on whitespace), character level, or subword
    level (WordPiece pieces of the raw text, whitespace marked; `standardize` is None).

    `vocabulary[i]` is the token of id i: 0 pads, 1 stands for any token not in the vocabulary.
    `sequence_length` pads (with 0) or truncates (keeping the first tokens) every text to that many ids;
    None keeps each text's own length (a character stream).
    """

    vocabulary: tuple[str, ...]
    level: str = "word"
    sequence_length: int | None = None
    standardize: str | None = "lower_and_strip_punctuation"

    def __post_init__(self) -> None:
        if self.level not in (*LEVELS, SUBWORD):
            raise DataError(f"unknown tokenizer level {self.level!r}; known: {', '.join((*LEVELS, SUBWORD))}")
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
        """The `max_tokens` most frequent tokens of `texts` (None: all), padding and OOV included; subwords: a
        WordPiece vocabulary of about `max_tokens` pieces (default 1000) learned on the texts."""
        import keras

        if level == SUBWORD:
            pieces = learn_word_pieces(texts, max_tokens or DEFAULT_SUBWORD_VOCABULARY)
            return cls(pieces, SUBWORD, sequence_length, None)
        if level not in LEVELS:
            raise DataError(f"unknown tokenizer level {level!r}; known: {', '.join((*LEVELS, SUBWORD))}")
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
        if self.level == SUBWORD:
            pieces = self.word_pieces([mark_whitespace(text) for text in texts])
            return np.asarray(pieces.to_tensor(shape=(len(texts), self.sequence_length)), np.int32)
        layer = self.layer()
        chunks = [np.asarray(layer(np.asarray(texts[i : i + ENCODE_BATCH], dtype=object)), np.int32)
                  for i in range(0, len(texts), ENCODE_BATCH)]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.sequence_length), np.int32)

    def encode_stream(self, text: str) -> np.ndarray:
        """One long text (a character stream) as a 1-D int32 array of ids."""
        if self.level == SUBWORD:
            return np.asarray(self.word_pieces(mark_whitespace(text)), np.int32)
        return np.asarray(self.layer(None)([text])[0], np.int32)

    @cached_property
    def word_pieces(self):
        """keras-hub's WordPiece tokenizer over this vocabulary (subword level)."""
        import keras_hub

        vocabulary = [WORDPIECE_PAD, *self.vocabulary[1:]]
        return keras_hub.tokenizers.WordPieceTokenizer(vocabulary, lowercase=False, strip_accents=False, oov_token=OOV)

    def decode(self, ids: Sequence[int]) -> str:
        """Tokens of `ids`, padding dropped; characters joined as they are, words with spaces, subwords as
        the text they came from."""
        tokens = [self.vocabulary[int(i)] for i in ids if int(i) != 0]
        if self.level == SUBWORD:
            return join_pieces(tokens)
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
    def from_json(cls, values: Any) -> "Tokenizer":
        """The tokenizer of a saved record (`to_json`); a DataError for a record that lacks or mangles a field."""
        if not isinstance(values, dict):
            raise DataError(f"a saved tokenizer is a JSON object, not {type(values).__name__}")
        vocabulary, level = values.get("vocabulary"), values.get("level")
        length, standardize = values.get("sequence_length"), values.get("standardize")
        if not isinstance(vocabulary, list) or not all(isinstance(token, str) for token in vocabulary):
            raise DataError("a saved tokenizer's vocabulary is not a list of strings")
        if len(set(vocabulary)) != len(vocabulary):
            raise DataError("a saved tokenizer's vocabulary repeats a token")
        if not isinstance(level, str):
            raise DataError(f"a saved tokenizer's level is not a string: {str(level)[:60]!r}")
        if length is not None and (type(length) is not int or not 0 < length <= MAX_SEQUENCE_LENGTH):
            raise DataError(f"a saved tokenizer's sequence_length is not an integer in 1..{MAX_SEQUENCE_LENGTH}: "
                            f"{str(length)[:60]!r}")
        if not (standardize is None or isinstance(standardize, str) and standardize in STANDARDIZE):
            raise DataError(f"a saved tokenizer's standardize is not one of {STANDARDIZE}: {str(standardize)[:60]!r}")
        return cls(tuple(vocabulary), level, length, standardize)


def learn_word_pieces(texts: Sequence[str], size: int) -> tuple[str, ...]:
    """A WordPiece vocabulary of about `size` pieces learned by tensorflow-text's WordPiece learner (the one
    keras-hub's compute_word_piece_vocabulary runs) on the words of (the start of) `texts`, whitespace marked,
    case kept, every character of `texts` included; ids 0 and 1 are padding and OOV, id 2 the newline mark."""
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    from kerasdl.edge.runner import word_piece_words

    marked = mark_whitespace("\n".join(texts))
    counts = Counter(word_piece_words(marked[:VOCABULARY_SAMPLE_CHARACTERS]))
    counts.update(set(word_piece_words(" ".join(set(marked)))) - set(counts))  # rare characters get a piece too
    pieces = learner.learn(counts.items(), size, [WORDPIECE_PAD, OOV, NEWLINE_MARK], num_iterations=LEARNER_ITERATIONS,
                           joiner=SUFFIX)
    return (PAD, *pieces[1:])
