"""Contextual embeddings: the same word gets a different vector in each sentence from a BERT encoder.

The lesson's example: "bass" the fish and "bass" the instrument, "apple" the fruit and Apple the company.
A static embedding (word2vec, or BERT's own token table) gives each word one vector whatever the sentence;
the encoder's output at the word's position depends on its neighbours. `sense_similarities` measures, per
word, the mean cosine between its vectors in sentences of the same sense and across the two senses: contextual
vectors separate the senses when the first is larger than the second.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import keras
import numpy as np

from kerasdl.edge.runner import OOV_ID, TextEncoder

# word -> sense -> sentences that use it in that sense (written for this lesson, not taken from the corpus).
SENSES: dict[str, dict[str, tuple[str, ...]]] = {
    "bass": {
        "fish": (
            "he caught a bass in the lake .",
            "the fisherman pulled a large bass from the river .",
            "we ate grilled bass and rice for dinner .",
        ),
        "instrument": (
            "a man is playing the bass guitar on stage .",
            "she plays bass in a rock band .",
            "the drummer and the bass player are playing music .",
        ),
    },
    "apple": {
        "fruit": (
            "the boy is eating a green apple .",
            "a woman holds an apple and a banana .",
            "she picked a red apple from the tree .",
        ),
        "company": (
            "a man is working on an apple laptop .",
            "she sits in front of her apple computer .",
            "he bought a new apple phone at the store .",
        ),
    },
}


def contextual_vectors(encoder: keras.Model, tokenizer_state: dict[str, Any], sentences: tuple[str, ...], word: str) -> np.ndarray:
    """(len(sentences), width): the encoder's output at the first occurrence of `word` in each sentence."""
    text = TextEncoder(tokenizer_state)
    target = text.ids.get(word, OOV_ID)
    ids = text.encode(list(sentences))
    positions = [int(np.flatnonzero(row == target)[0]) if (row == target).any() else -1 for row in ids]
    if min(positions) < 0:
        raise ValueError(f"{word!r} is not among the first {text.sequence_length} tokens of every sentence")
    outputs = np.asarray(encoder.predict(ids, verbose=0))
    return outputs[np.arange(len(ids)), positions]


def mean_cosine(a: np.ndarray, b: np.ndarray, same: bool) -> float:
    """Mean cosine over the pairs of rows of a and b (with `same`, the distinct pairs of a's rows)."""
    unit_a, unit_b = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (a, b))
    if same:
        return float(np.mean([unit_a[i] @ unit_a[j] for i, j in combinations(range(len(a)), 2)]))
    return float(np.mean(unit_a @ unit_b.T))


def sense_similarities(encoder: keras.Model, tokenizer_state: dict[str, Any],
                       senses: dict[str, dict[str, tuple[str, ...]]] = SENSES) -> list[dict[str, Any]]:
    """One row per word: whether the vocabulary knows it, its two senses, the mean cosine of its vectors within
    the first sense, within the second and across the two, and whether both within-sense means beat the across."""
    rows = []
    for word, by_sense in senses.items():
        (first, first_sentences), (second, second_sentences) = by_sense.items()
        a = contextual_vectors(encoder, tokenizer_state, first_sentences, word)
        b = contextual_vectors(encoder, tokenizer_state, second_sentences, word)
        within = (mean_cosine(a, a, True), mean_cosine(b, b, True))
        across = mean_cosine(a, b, False)
        rows.append({
            "word": word,
            "in_vocabulary": word in TextEncoder(tokenizer_state).ids,
            "senses": f"{first} | {second}",
            "within_first": round(within[0], 4),
            "within_second": round(within[1], 4),
            "across": round(across, 4),
            "senses_separate": min(within) > across,
        })
    return rows
