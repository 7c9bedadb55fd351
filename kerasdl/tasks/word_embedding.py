"""Word embeddings: word2vec learns a vector per word from skip-gram pairs; judged by which words end up close.

Task params (`TrainConfig.task_params`, see kerasdl.data.skipgrams): `window_size` (context words on each
side, default 4), `negative_samples` (per pair, default 4), `subsample` (word2vec's t, default 1e-3),
`min_count` (default 5) and `max_vocabulary` (default 20,000 ids).

The loss is the sigmoid cross-entropy of each (target, context) logit against its label (1 for the true
context, 0 for a negative), averaged over the pair's 1 + negatives columns. The loss alone says little about
the vectors, so evaluation also reports how close well-known pairs of words are (king/queen, good/great...)
against the same words paired at random, the nearest neighbours of a few probe words, a 2-D PCA map of words,
and writes the TensorBoard projector's files (`vectors.tsv`, `metadata.tsv`) into the run directory. What
ships is the target Embedding: one word id in, its vector out; the runner ranks neighbours by cosine.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import keras
import numpy as np

from kerasdl import files
from kerasdl.data import DataBundle, DatasetInfo
from kerasdl.data.skipgrams import FIRST_WORD_ID, SkipGramBundle, SkipGramSettings, texts_of, word_tokenizer
from kerasdl.edge.runner import TextEncoder, nearest_words
from kerasdl.errors import KerasdlError
from kerasdl.tasks.base import Bound, ParityTargets, Task, register_task

PARAMS = ("window_size", "negative_samples", "subsample", "min_count", "max_vocabulary")
EVALUATION_BATCH = 4096
# Pairs most English speakers call related; evaluation uses those in the vocabulary.
WELL_KNOWN_PAIRS = (
    ("king", "queen"), ("man", "woman"), ("good", "great"), ("father", "mother"), ("brother", "sister"),
    ("son", "daughter"), ("husband", "wife"), ("lord", "lady"), ("boy", "girl"), ("day", "night"),
    ("he", "she"), ("his", "her"), ("bad", "awful"), ("funny", "hilarious"), ("movie", "film"),
)
PROBE_WORDS = ("king", "good", "love", "man", "film", "water")
NEIGHBOURS = 8  # per probe word in metrics.json
PROJECTOR_WORDS = 10_000  # the most frequent words written for the embedding projector
PARITY_WORDS = 1000  # the most frequent words whose neighbours an export must reproduce
FLOAT_TARGETS = ParityTargets((Bound("max_abs_diff", 1e-5), Bound("neighbour_agreement", 0.99, upper=False)))
# Quantized tables move every vector a little, so the bound is on neighbours. Measured top-10 agreement: the
# 128-d english-text run, int8 0.963; a 2,000-sentence MR run, fp16 0.9996, dynamic range 0.981, int8 0.980.
QUANTIZED_TARGETS = ParityTargets((Bound("neighbour_agreement", 0.9, upper=False),))


@dataclass(frozen=True, eq=False)
class WordVectors:
    """A vocabulary and its vectors, with neighbour and analogy queries (cosine, as the edge runner ranks)."""

    vocabulary: tuple[str, ...]
    vectors: np.ndarray  # (len(vocabulary), D)
    standardize: str | None = "lower_and_strip_punctuation"

    @classmethod
    def from_run(cls, run_dir: str | Path) -> WordVectors:
        from kerasdl.models.embeddings import load_word_vectors

        return cls(*load_word_vectors(run_dir))

    def id(self, word: str) -> int:
        """The id of one vocabulary word, standardized as in training; a clear error otherwise."""
        ids = self._encoder.encode_stream(word)
        if len(ids) != 1 or ids[0] < FIRST_WORD_ID:
            raise KerasdlError(f"{word!r} is not a word of this vocabulary ({len(self.vocabulary) - 2} words)")
        return int(ids[0])

    @cached_property
    def unit(self) -> np.ndarray:
        """The vectors scaled to length 1: cosines are dot products."""
        return unit_vectors(self.vectors)

    @cached_property
    def _encoder(self) -> TextEncoder:
        return TextEncoder({"vocabulary": list(self.vocabulary), "level": "word", "standardize": self.standardize})

    def cosine(self, a: str, b: str) -> float:
        unit = self.unit
        return float(unit[self.id(a)] @ unit[self.id(b)])

    def neighbours(self, word: str, k: int = 10) -> list[dict[str, Any]]:
        """The k words nearest `word` by cosine: [{"word", "cosine"}], nearest first."""
        index = self.id(word)
        return nearest_words(self.unit, list(self.vocabulary), self.unit[index], k, {index})

    def analogy(self, a: str, b: str, c: str, k: int = 10) -> list[dict[str, Any]]:
        """a is to b as c is to ...: the k words nearest unit(b) - unit(a) + unit(c), the three left out."""
        unit, ids = self.unit, [self.id(word) for word in (a, b, c)]
        return nearest_words(unit, list(self.vocabulary), unit[ids[1]] - unit[ids[0]] + unit[ids[2]], k, set(ids))


class WordEmbedding(Task):
    name = "word-embedding"
    main_metric = "test_loss"
    float_targets = FLOAT_TARGETS
    quantized_targets = QUANTIZED_TARGETS

    # --- data --------------------------------------------------------------------------------------------
    def adapt_data(self, data: DataBundle, params: dict[str, Any]) -> SkipGramBundle:
        """Skip-gram pairs of the data set's texts under a word vocabulary of its training texts."""
        settings = skipgram_settings(params)
        texts = texts_of(data)
        return SkipGramBundle.of(data.info.name, texts, word_tokenizer(data, texts["train"], settings), settings)

    # --- training ----------------------------------------------------------------------------------------
    def loss(self) -> keras.losses.Loss:
        return keras.losses.BinaryCrossentropy(from_logits=True)

    # --- evaluation --------------------------------------------------------------------------------------
    def check_data(self, model: keras.Model, data: DataBundle) -> None:
        from kerasdl.models.embeddings import TARGET_EMBEDDING

        size = model.get_layer(TARGET_EMBEDDING).input_dim
        if size != data.info.vocabulary_size:
            raise KerasdlError(
                f"the model has vectors for {size} word ids but data set {data.info.name!r} has "
                f"{data.info.vocabulary_size}"
            )

    def evaluate(
        self, model: keras.Model, data: DataBundle, params: dict[str, Any], plots_dir: Path | None, suffix: str = ""
    ) -> dict[str, Any]:
        """Test loss on the test texts' pairs; cosine of well-known pairs against the same words paired at
        random; the neighbours of probe words. With `plots_dir`: the PCA map there, the projector's TSV files
        beside it."""
        from kerasdl.models.embeddings import TARGET_EMBEDDING

        words = WordVectors(data.info.vocabulary, np.asarray(model.get_layer(TARGET_EMBEDDING).embeddings))
        metrics = {**pair_loss(model, data), **similarity_metrics(words)}
        metrics["neighbours"] = {
            word: [n["word"] for n in words.neighbours(word, NEIGHBOURS)] for word in known(words, PROBE_WORDS)
        }
        if plots_dir is not None:
            write_projector_files(words, plots_dir.parent, suffix)
            anchors = [*metrics["neighbours"], *metrics["pair_cosines"]]
            plot_word_map(words, anchors, plots_dir / f"word_pca{suffix}.png")
        return metrics

    def headline(self, metrics: dict[str, Any]) -> str:
        if metrics["test_pair_cosine"] is None:
            return f"loss {metrics['test_loss']:.4f} (too few well-known word pairs in the vocabulary to compare)"
        return (
            f"loss {metrics['test_loss']:.4f}, well-known pairs cosine {metrics['test_pair_cosine']:.3f} "
            f"vs the same words paired at random {metrics['test_random_cosine']:.3f}"
        )

    def report(self, metrics: dict[str, Any]) -> str:
        sizes = f"{metrics['test_samples']} pairs, {metrics['vocabulary_size']} words"
        lines = [f"test {self.headline(metrics)} ({sizes})"]
        lines += [f"  {pair}: {cosine:.3f}" for pair, cosine in metrics["pair_cosines"].items()]
        lines += [f"nearest to {word}: {', '.join(found)}" for word, found in metrics["neighbours"].items()]
        return "\n".join(lines)

    # --- export ------------------------------------------------------------------------------------------
    def edge_part(self, model: keras.Model) -> keras.Model:
        from kerasdl.models.embeddings import word_vector_model

        return word_vector_model(model)

    def signature_shape(self, edge: keras.Model, info: DatasetInfo) -> tuple[int, ...]:
        return (1,)

    def export_batches(self, edge: keras.Model, data: DataBundle, batch_size: int) -> Iterator[np.ndarray]:
        """Every word id, in order, as one batch (a table of ids is small): parity covers the whole table."""
        return iter([np.arange(data.info.vocabulary_size, dtype=np.int32)[:, None]])

    def sample_inputs(self, edge: keras.Model, data: DataBundle, split: str, count: int, seed: int) -> np.ndarray:
        """Word ids drawn as the training texts use them (int8 calibration, latency)."""
        shares = data.counts / data.counts.sum()
        return np.random.default_rng(seed).choice(len(shares), size=(count, 1), p=shares).astype(np.int32)

    def parity(self, reference: np.ndarray, outputs: np.ndarray, data: DataBundle) -> dict[str, Any]:
        """Max abs difference of the vectors, and the share of the top-10 neighbours of the most frequent
        words that the artifact's vectors give as Keras's do."""
        if reference.shape != outputs.shape:
            raise ValueError(f"artifact gives vectors of shape {outputs.shape}, Keras {reference.shape}")
        probes = np.argsort(-data.counts, kind="stable")[: min(PARITY_WORDS, np.count_nonzero(data.counts))]
        expected, found = (nearest_ids(vectors, probes, 10) for vectors in (reference, outputs))
        agreement = [len(set(a) & set(b)) / 10 for a, b in zip(expected, found)]
        return {
            "split": "every word id",
            "samples": int(len(reference)),
            "max_abs_diff": float(np.max(np.abs(reference - outputs))),
            "neighbour_agreement": float(np.mean(agreement)),
        }

    def preprocessing(
        self, data: DataBundle, input_name: str, input_dtype: str, shape: tuple[int, ...]
    ) -> dict[str, Any]:
        """A word's id in (the runner tokenizes with the saved vocabulary), its vector out."""
        spec = super().preprocessing(data, input_name, input_dtype, shape)
        del spec["class_names"]
        spec["output"] = "word vector"
        return spec

    def parity_summary(self, measured: dict[str, Any]) -> str:
        return (
            f"max |vector diff| {measured['max_abs_diff']:.3g} over {measured['samples']} words, "
            f"top-10 neighbour agreement {measured['neighbour_agreement']:.3f}"
        )


def skipgram_settings(params: dict[str, Any]) -> SkipGramSettings:
    """The task params as settings; unknown names fail in one line."""
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise KerasdlError(f"unknown word-embedding task param(s) {', '.join(unknown)}; known: {', '.join(PARAMS)}")
    return SkipGramSettings(**params)


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero), as the edge runner scales them."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def nearest_ids(vectors: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """(len(ids), k): for each id, the ids of its k nearest words by cosine (in no order), itself, padding
    and OOV left out; all at once, as `nearest_words` ranks them one query at a time."""
    unit = unit_vectors(vectors)
    scores = unit[ids] @ unit.T
    scores[:, :FIRST_WORD_ID] = -np.inf
    scores[np.arange(len(ids)), ids] = -np.inf
    return np.argpartition(-scores, k, axis=1)[:, :k]


def known(words: WordVectors, candidates: tuple[str, ...]) -> list[str]:
    """The candidates that are words of the vocabulary."""
    index = set(words.vocabulary[FIRST_WORD_ID:])
    return [word for word in candidates if word in index]


def pair_loss(model: keras.Model, data: DataBundle) -> dict[str, Any]:
    """Mean sigmoid cross-entropy over the test split's pairs (each over its 1 + negatives columns)."""
    loss_fn, total, count = keras.losses.BinaryCrossentropy(from_logits=True), 0.0, 0
    for inputs, labels in data.dataset("test", EVALUATION_BATCH):
        total += float(loss_fn(labels, model(inputs, training=False))) * len(labels)
        count += len(labels)
    if not count:
        raise KerasdlError(f"data set {data.info.name!r} gives no skip-gram pairs in its test split")
    return {"test_loss": total / count, "test_samples": count, "vocabulary_size": data.info.vocabulary_size}


def similarity_metrics(words: WordVectors) -> dict[str, Any]:
    """Cosine of each well-known pair in the vocabulary and their mean, against the mean over the same words
    paired at random (a from one pair, b from another): the same words, so word frequency plays no part."""
    pairs = [(a, b) for a, b in WELL_KNOWN_PAIRS if len(known(words, (a, b))) == 2]
    if len(pairs) < 2:  # not English, or a small vocabulary: nothing to compare
        return {"test_pair_cosine": None, "test_random_cosine": None, "pair_cosines": {}}
    unit = words.unit
    firsts, seconds = (unit[[words.id(pair[side]) for pair in pairs]] for side in (0, 1))
    cosines = firsts @ seconds.T  # [i, j]: first word of pair i, second word of pair j
    mismatched = ~np.eye(len(pairs), dtype=bool)
    return {
        "test_pair_cosine": float(np.mean(np.diag(cosines))),
        "test_random_cosine": float(np.mean(cosines[mismatched])),
        "pair_cosines": {f"{a}/{b}": round(float(cosine), 4) for (a, b), cosine in zip(pairs, np.diag(cosines))},
    }


def write_projector_files(words: WordVectors, folder: Path, suffix: str = "") -> tuple[Path, Path]:
    """vectors.tsv (one tab-separated vector a line) and metadata.tsv (its word) of the most frequent words,
    for TensorBoard's embedding projector (projector.tensorflow.org: Load, then both files)."""
    chosen = slice(FIRST_WORD_ID, FIRST_WORD_ID + PROJECTOR_WORDS)
    vectors, metadata = folder / f"vectors{suffix}.tsv", folder / f"metadata{suffix}.tsv"
    with files.replacing(vectors) as temporary:
        np.savetxt(temporary, words.vectors[chosen], fmt="%.5f", delimiter="\t")
    files.write_text(metadata, "".join(f"{word}\n" for word in words.vocabulary[chosen]))
    return vectors, metadata


def plot_word_map(words: WordVectors, anchors: list[str], path: Path) -> Path | None:
    """The anchor words (probe words, well-known pairs' words), the nearest neighbours of the first few, on the
    first two principal components of their vectors; None when there are no anchors to show."""
    from kerasdl.evaluation.plots import plt, save_figure

    names = list(dict.fromkeys(word for anchor in anchors for word in anchor.split("/")))
    names = list(dict.fromkeys([*names, *(n["word"] for word in names[:6] for n in words.neighbours(word, 4))]))
    if len(names) < 3:
        return None
    vectors = words.unit[[words.id(word) for word in names]]
    centred = vectors - vectors.mean(axis=0)
    points = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    fig, ax = plt.subplots(figsize=(9, 7))
    ax.scatter(points[:, 0], points[:, 1], s=12, color="tab:blue")
    for (x, y), word in zip(points, names):
        ax.annotate(word, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set(title="word vectors: first two principal components", xlabel="PC 1", ylabel="PC 2")
    return save_figure(fig, path, dpi=110, bbox_inches="tight")


WORD_EMBEDDING = register_task(WordEmbedding())
