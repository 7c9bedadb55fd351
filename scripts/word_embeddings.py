"""Word embeddings: word2vec (skip-gram, negative sampling) on English text, then neighbours and analogies.

    python scripts/word_embeddings.py --data english-text --epochs 3 --out runs/word2vec

Trains `word2vec` (a target and a context Embedding, one dot-product logit per context word) with SGD, as
word2vec.c does, on skip-gram pairs of the local English sentences (Shakespeare lines, SST-2, MR, Multi30k), prints how close well-known
pairs of words are against random words, the nearest words of a few probes and a few analogies (B - A + C),
and where the TensorBoard projector files (vectors.tsv, metadata.tsv) and the PCA map are.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import positive_float, positive_int
from kerasdl.errors import KerasdlError

PROBES = ("king", "good", "film", "water", "happy")
ANALOGIES = (("man", "king", "woman"), ("good", "better", "bad"), ("he", "his", "she"), ("france", "paris", "england"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="english-text", help="any text data set, or a CSV/TSV of texts")
    parser.add_argument("--epochs", type=positive_int, default=3)
    parser.add_argument("--batch-size", type=positive_int, default=1024)
    parser.add_argument(
        "--learning-rate", type=positive_float, default=100.0,
        help="SGD on a batch-mean loss: about word2vec.c's 0.025 per pair x batch x (1 + negatives)",
    )
    parser.add_argument("--embedding-dim", type=positive_int, default=128)
    parser.add_argument("--window-size", type=positive_int, default=4, help="context words on each side")
    parser.add_argument("--negative-samples", type=positive_int, default=4, help="negative words per pair")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/word2vec")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from kerasdl.evaluation.report import format_report
    from kerasdl.tasks.word_embedding import WordVectors
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    # 1. The model, and how the task draws its skip-gram pairs from the text.
    config = TrainConfig(
        "word2vec", data=args.data, epochs=args.epochs, batch_size=args.batch_size,
        optimizer="sgd", learning_rate=args.learning_rate, lr_schedule="cosine", seed=args.seed,
        model_params={"embedding_dim": args.embedding_dim},
        task_params={"window_size": args.window_size, "negative_samples": args.negative_samples},
    )
    try:
        # 2. Train (resumes if interrupted; a finished run is reused) and judge the vectors.
        run, metrics = train_once(config, Path(args.out), verbose="auto")
        print(format_report(metrics))
        # 3. Query the vectors: nearest words by cosine, and analogies (a small corpus gives rough ones).
        words = WordVectors.from_run(run.path)
    except KerasdlError as err:
        raise SystemExit(f"word_embeddings: error: {err}") from None
    for probe in PROBES:
        if probe in words.vocabulary:
            print(f"{probe}: {', '.join(n['word'] for n in words.neighbours(probe, 8))}")
    for a, b, c in ANALOGIES:
        if {a, b, c} <= set(words.vocabulary):
            print(f"{a} : {b} :: {c} : {', '.join(n['word'] for n in words.analogy(a, b, c, 5))}")
    print(f"projector files (projector.tensorflow.org, Load): {run.path / 'vectors.tsv'}, {run.path / 'metadata.tsv'}")
    print(f"PCA map of words: {run.plots_dir / 'word_pca.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
